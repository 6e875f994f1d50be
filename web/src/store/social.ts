/**
 * The social side of issue 15 on the client: chat preferences (pin, mute, archive, mark unread), blocks,
 * remarks, live profiles, pushed group read counts, privacy, sessions and the password. It listens to the
 * chat store's pushes and reloads what pushes may have missed after every reconnect.
 */
import { computed, inject, reactive, watch, type InjectionKey } from 'vue'
import { ApiError, type Api } from '../api/rest'
import { SocialApi, type Block, type ChatPrefs, type ChatPrefsPatch, type Privacy, type Profile, type SocialPush } from '../api/social'
import { groupIdOf, type ConvId, type PushFrame, type UserId } from '../api/types'
import type { ChatStore } from './chat'
import type { ConvState } from './convs'

const NO_PREFS: ChatPrefs = { conv: '', pinned: 0, muted: false, archived: false, marked_unread: false }

/** Pinned chats first (newest pin first), then the rest in the chat store's order; archived ones apart. */
export function arrangeChats(list: readonly ConvState[], prefs: Record<ConvId, ChatPrefs>): { main: ConvState[]; archived: ConvState[] } {
  const pinned: ConvState[] = []
  const rest: ConvState[] = []
  const archived: ConvState[] = []
  for (const c of list) {
    const p = prefs[c.conv]
    if (p?.archived) archived.push(c)
    else if (p?.pinned) pinned.push(c)
    else rest.push(c)
  }
  pinned.sort((a, b) => (prefs[b.conv]?.pinned ?? 0) - (prefs[a.conv]?.pinned ?? 0))
  return { main: [...pinned, ...rest], archived }
}

export function createSocialStore(chat: ChatStore, api: Api) {
  const social = new SocialApi(api)
  const state = reactive({
    prefs: {} as Record<ConvId, ChatPrefs>,
    blocks: {} as Record<UserId, Block>,
    privacy: null as Privacy | null,
    /** The person whose profile card is open. */
    card: null as UserId | null,
    settingsOpen: false,
    showArchived: false,
  })

  chat.onAnyPush((f: PushFrame) => onPush(f as SocialPush))

  function onPush(f: SocialPush): void {
    switch (f.type) {
      case 'profile': {
        chat.remember(f.user)
        if (chat.state.me?.id === f.user.id) chat.state.me = f.user
        return
      }
      case 'remark':
        chat.noteRemark(f.user, f.remark)
        return
      case 'block':
        if (f.event === 'blocked') state.blocks[f.user.id] = { user: f.user, since: Date.now() }
        else delete state.blocks[f.user.id]
        return
      case 'prefs':
        state.prefs[f.prefs.conv] = f.prefs
        return
      case 'receipts':
        for (const c of f.counts) {
          const key = `${f.conv}#${c.seq}`
          const before = chat.state.receipts[key]
          chat.state.receipts[key] = { conv: f.conv, seq: c.seq, read: c.read, total: c.total, readers: before?.readers ?? [], at: Date.now() }
        }
        return
    }
  }

  async function load(): Promise<void> {
    try {
      const [prefs, blocks] = await Promise.all([social.chatPrefs(), social.blocks()])
      state.prefs = Object.fromEntries(prefs.map((p) => [p.conv, p]))
      state.blocks = Object.fromEntries(blocks.map((b) => [b.user.id, b]))
      for (const b of blocks) chat.remember(b.user)
    } catch {
      /* offline or an older server: the next reconnect tries again */
    }
  }
  // After every (re)connect: pushes sent while offline are not replayed.
  watch(
    () => chat.state.status === 'online',
    (online) => {
      if (online) void load()
    },
    { immediate: true },
  )
  watch(
    () => chat.state.me?.id,
    () => {
      state.prefs = {}
      state.blocks = {}
      state.privacy = null
      state.card = null
      state.settingsOpen = false
    },
  )
  // Opening a chat marked unread clears the mark (reading it does too, on the server, when there is news).
  watch(
    () => chat.state.activeConv,
    (conv) => {
      if (conv && state.prefs[conv]?.marked_unread) void setPrefs(conv, { marked_unread: false })
    },
  )

  const prefsOf = (conv: ConvId): ChatPrefs => state.prefs[conv] ?? { ...NO_PREFS, conv }
  /** Muted: the chat's own mute, or a group's do-not-disturb (the server keeps them as one). */
  const isMuted = (conv: ConvId): boolean => !!state.prefs[conv]?.muted || chat.isDnd(conv)
  const isBlocked = (user: UserId | null | undefined): boolean => user !== null && user !== undefined && !!state.blocks[user]
  const arranged = computed(() => arrangeChats(chat.conversationList.value, state.prefs))

  function fail(e: unknown): void {
    chat.toast(e instanceof ApiError ? e.code : 'internal', {}, 'error')
  }

  async function setPrefs(conv: ConvId, patch: ChatPrefsPatch): Promise<boolean> {
    const before = state.prefs[conv]
    const next = { ...prefsOf(conv), ...patch, pinned: patch.pinned === undefined ? prefsOf(conv).pinned : patch.pinned ? Date.now() : 0 }
    state.prefs[conv] = next
    try {
      state.prefs[conv] = await social.setChatPrefs(conv, patch)
      const gid = groupIdOf(conv)
      if (gid !== null && patch.muted !== undefined) void chat.loadMembers(gid, true) // mute is the group's dnd
      return true
    } catch (e) {
      if (before) state.prefs[conv] = before
      else delete state.prefs[conv]
      fail(e)
      return false
    }
  }

  async function block(user: UserId): Promise<boolean> {
    try {
      const b = await social.block(user)
      state.blocks[user] = b
      chat.remember(b.user)
      return true
    } catch (e) {
      fail(e)
      return false
    }
  }
  async function unblock(user: UserId): Promise<boolean> {
    try {
      await social.unblock(user)
      delete state.blocks[user]
      return true
    } catch (e) {
      fail(e)
      return false
    }
  }

  async function setRemark(user: UserId, remark: string): Promise<boolean> {
    try {
      const r = await social.setRemark(user, remark)
      chat.noteRemark(user, r.remark)
      return true
    } catch (e) {
      fail(e)
      return false
    }
  }

  async function profile(user: UserId): Promise<Profile | null> {
    try {
      const askedAt = performance.now()
      const p = await social.profile(user)
      chat.remember(p.user)
      chat.noteRemark(user, p.remark, askedAt)
      if (p.last_seen) chat.state.lastSeen[user] = p.last_seen
      return p
    } catch (e) {
      fail(e)
      return null
    }
  }

  async function loadPrivacy(): Promise<void> {
    try {
      state.privacy = await social.privacy()
    } catch (e) {
      fail(e)
    }
  }
  async function setPrivacy(p: Partial<Privacy>): Promise<void> {
    try {
      state.privacy = await social.setPrivacy(p)
    } catch (e) {
      fail(e)
    }
  }

  return {
    state,
    api: social,
    arranged,
    prefsOf,
    isMuted,
    isBlocked,
    setPrefs,
    block,
    unblock,
    setRemark,
    profile,
    loadPrivacy,
    setPrivacy,
    load,
    openCard: (user: UserId) => (state.card = user),
    _onPush: onPush,
  }
}

export type SocialStore = ReturnType<typeof createSocialStore>
export const SocialKey: InjectionKey<SocialStore> = Symbol('hubbub-social')

export function useSocial(): SocialStore {
  const s = inject(SocialKey)
  if (!s) throw new Error('social store not provided')
  return s
}
