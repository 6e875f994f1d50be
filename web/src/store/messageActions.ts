/**
 * Message actions on the wire and the UI state around them: the reply or edit the composer is working on,
 * the multi-selection, the pinned list per conversation, who is typing in groups, and the dialogs (forward,
 * edit history, recall confirmation). The merge rules are in actions.ts; this module only talks to the server
 * and keeps the results where the components read them. One instance per chat store (`useActions`).
 */
import { reactive, watch } from 'vue'
import { ApiError } from '../api/rest'
import { WsError } from '../api/socket'
import { editHistory, hiddenSeqs, pins as fetchPins, reactionUsers } from '../api/actions'
import { groupIdOf, type ConvId, type EditVersion, type ForwardedFrame, type Message, type Pin, type UserId } from '../api/types'
import { extractMentions, type Picked } from '../util/mentions'
import { useStore, type ChatStore } from '.'
import { TYPING_SHOW_MS } from './chat'
import {
  EDIT_WINDOW_S,
  FORWARD_MAX_ITEMS,
  FORWARD_MAX_TARGETS,
  hideSeqs,
  isHidden,
  menuFor,
  noteTyping,
  reactedBy,
  reactionsOf,
  setReaction,
  stopTyping,
  toggleSeq,
  typingUsers,
  type MenuOffer,
  type Typers,
} from './actions'

export interface Composing {
  kind: 'reply' | 'edit'
  msg: Message
}

export type ActionStore = ReturnType<typeof createActionStore>

export function createActionStore(chat: ChatStore, deps: { now?: () => number; newAid?: () => string } = {}) {
  const now = deps.now ?? Date.now
  const newAid = deps.newAid ?? (() => `a-${globalThis.crypto?.randomUUID?.() ?? `${now().toString(36)}-${Math.random().toString(36).slice(2)}`}`)

  const state = reactive({
    typers: {} as Typers,
    /** What the composer of each conversation is doing: replying to or editing a message. */
    composing: {} as Record<ConvId, Composing>,
    /** Multi-select mode: the conversation and the seqs chosen (ascending). */
    selection: null as { conv: ConvId; seqs: number[] } | null,
    pins: {} as Record<ConvId, Pin[]>,
    /** The forward dialog: what is being forwarded. */
    forwarding: null as { items: { conv: ConvId; seq: number }[] } | null,
    /** The edit-history dialog. */
    history: null as { conv: ConvId; seq: number; edits: EditVersion[] | null; failed: boolean } | null,
    /** The recall confirmation. */
    recalling: null as Message | null,
    /** Seqs I hid per conversation, as far as this terminal knows (pushes and `GET …/hidden`). */
    hidden: {} as Record<ConvId, number[]>,
    /** Re-rendered every second while a countdown is shown. */
    clock: now(),
  })
  const typingTimers = new Map<string, ReturnType<typeof setTimeout>>()
  const pinLoads = new Map<ConvId, Promise<void>>()

  const me = () => chat.state.me?.id ?? -1
  const held = (conv: ConvId): Message[] => {
    const c = chat.state.convs[conv]
    return c ? [...c.messages, ...c.ahead] : []
  }
  const fail = (e: unknown) => chat.toast(e instanceof WsError || e instanceof ApiError ? e.code : 'internal', {}, 'error')

  chat.onAnyPush((f) => {
    switch (f.type) {
      case 'hidden': {
        remember(f.conv, f.seqs)
        hideSeqs(held(f.conv), f.seqs)
        if (state.selection?.conv === f.conv) state.selection.seqs = state.selection.seqs.filter((s) => !f.seqs.includes(s))
        return
      }
      case 'typing': {
        if (f.user === me() || groupIdOf(f.conv) === null) return
        noteTyping(state.typers, f.conv, f.user, now() + TYPING_SHOW_MS)
        const key = `${f.conv}#${f.user}`
        clearTimeout(typingTimers.get(key))
        typingTimers.set(
          key,
          setTimeout(() => {
            if ((state.typers[f.conv]?.[f.user] ?? 0) <= now()) stopTyping(state.typers, f.conv, f.user)
          }, TYPING_SHOW_MS + 50),
        )
        return
      }
      case 'msg':
        stopTyping(state.typers, f.msg.conv, f.msg.sender)
        return
    }
  })

  // A `hidden` push missed while offline (or while another tab held the connection) is caught up when the
  // open conversation is (re)loaded: the messages already held here would otherwise stay visible.
  watch(
    () => [chat.state.status === 'online' && chat.state.synced, chat.state.activeConv] as const,
    ([ready, conv]) => {
      if (ready && conv) void refreshHidden(conv)
    },
    { immediate: true },
  )
  async function refreshHidden(conv: ConvId): Promise<void> {
    try {
      const r = await hiddenSeqs(chat.api, conv)
      remember(conv, r.seqs)
      hideSeqs(held(conv), r.seqs)
    } catch {
      /* offline: the next open tries again */
    }
  }
  function remember(conv: ConvId, seqs: readonly number[]): void {
    state.hidden[conv] = [...new Set([...(state.hidden[conv] ?? []), ...seqs])]
  }
  // Messages that arrive later (a window restarted at the conversation's `last`, a history page) are hidden too.
  watch(
    () => {
      const conv = chat.state.activeConv
      const c = conv ? chat.state.convs[conv] : undefined
      return c && state.hidden[c.conv]?.length ? `${c.conv}|${c.messages.length}|${c.have}|${state.hidden[c.conv]!.length}` : ''
    },
    (key) => {
      const conv = key ? chat.state.activeConv : null
      if (conv) hideSeqs(held(conv), state.hidden[conv] ?? [])
    },
  )

  // ---- derived ---------------------------------------------------------------------------------------

  function typingNames(conv: ConvId): string[] {
    void state.clock
    return typingUsers(state.typers, conv, now()).map((u) => chat.senderName(conv, u))
  }

  /** May I pin in this conversation? Private: either side; group: owner/admins, or all when the policy says so. */
  function canPin(conv: ConvId): boolean {
    const gid = groupIdOf(conv)
    if (gid === null) return true
    if (chat.writeBlock(conv)?.key === 'left' || chat.state.groups[gid]?.dismissed) return false
    return chat.state.groups[gid]?.pin_policy === 'members' || chat.myRole(gid) !== 'member'
  }

  function offer(m: Message, canModerate: boolean): MenuOffer {
    const limits = chat.state.limits
    return menuFor(m, {
      me: me(),
      now: now(),
      recallWindowMs: limits.recall_window_s * 1000,
      editWindowMs: (limits.edit_window_s ?? EDIT_WINDOW_S) * 1000,
      canPin: canPin(m.conv),
      canWrite: !chat.writeBlock(m.conv),
      canModerate,
    })
  }

  function isPinned(conv: ConvId, seq: number): boolean {
    return (state.pins[conv] ?? []).some((p) => p.seq === seq)
  }

  // ---- reply and edit ----------------------------------------------------------------------------------

  function startReply(m: Message): void {
    state.composing[m.conv] = { kind: 'reply', msg: m }
  }
  function startEdit(m: Message): void {
    state.composing[m.conv] = { kind: 'edit', msg: m }
  }
  function cancelCompose(conv: ConvId): void {
    delete state.composing[conv]
  }

  /** The composer's Enter: send (as a reply when one is chosen) or save an edit. True when the text is taken. */
  function submit(conv: ConvId, text: string, picked: readonly Picked[]): boolean {
    const c = state.composing[conv]
    if (c?.kind === 'edit') {
      if (!text.trim()) return false
      void saveEdit(c.msg, text, picked)
      delete state.composing[conv]
      return true
    }
    const ok = chat.sendText(conv, text, picked, c?.kind === 'reply' ? c.msg : undefined)
    if (ok) delete state.composing[conv]
    return ok
  }

  async function saveEdit(m: Message, raw: string, picked: readonly Picked[]): Promise<boolean> {
    const text = raw.replace(/\s+$/, '')
    if (text === String((m.body as { text?: unknown }).text ?? '')) return true
    const gid = groupIdOf(m.conv)
    // Names already mentioned stay mentioned when the edit keeps them.
    const before = ((m.body as { mentions?: unknown }).mentions as UserId[] | undefined) ?? []
    const known: Picked[] = [...picked, ...before.map((id) => ({ id, name: chat.senderName(m.conv, id) }))]
    const mentions = gid !== null ? extractMentions(text, known, chat.myRole(gid) !== 'member') : {}
    try {
      await chat.request({ type: 'edit', aid: newAid(), conv: m.conv, seq: m.seq, text, ...mentions })
      return true
    } catch (e) {
      fail(e)
      return false
    }
  }

  async function openHistory(m: Message): Promise<void> {
    state.history = { conv: m.conv, seq: m.seq, edits: null, failed: false }
    try {
      const r = await editHistory(chat.api, m.conv, m.seq)
      if (state.history?.seq === m.seq && state.history.conv === m.conv) state.history.edits = r.edits
    } catch {
      if (state.history) state.history.failed = true
    }
  }

  // ---- reactions -----------------------------------------------------------------------------------------

  /** Toggle my reaction: shown at once, undone if the server refuses. */
  async function react(m: Message, emoji: string): Promise<void> {
    const mine = reactionsOf(m).find((r) => r.emoji === emoji)
    const on = !(mine && reactedBy(mine, me()))
    const target = held(m.conv).find((x) => x.seq === m.seq) ?? m
    setReaction(target, emoji, me(), on, null)
    try {
      await chat.request({ type: 'react', conv: m.conv, seq: m.seq, emoji, on })
    } catch (e) {
      setReaction(target, emoji, me(), !on, null)
      fail(e)
    }
  }

  /** Everyone who reacted with `emoji` (the message lists only the first 10). */
  async function whoReacted(m: Message, emoji: string): Promise<UserId[]> {
    const out: UserId[] = []
    let after = 0
    for (let page = 0; page < 10; page++) {
      const r = await reactionUsers(chat.api, m.conv, m.seq, emoji, after)
      out.push(...r.users)
      if (r.next_after === null) break
      after = r.next_after
    }
    for (const u of out) void chat.ensureUser(u)
    return out
  }

  // ---- pins ---------------------------------------------------------------------------------------------

  function loadPins(conv: ConvId): Promise<void> {
    let p = pinLoads.get(conv)
    if (!p) {
      p = fetchPins(chat.api, conv)
        .then((r) => {
          state.pins[conv] = r.pins
          for (const pin of r.pins) void chat.ensureUser(pin.message.sender)
        })
        .catch(() => {})
        .finally(() => pinLoads.delete(conv))
      pinLoads.set(conv, p)
    }
    return p
  }

  async function pin(m: Message, on: boolean): Promise<void> {
    try {
      await chat.request({ type: 'pin', conv: m.conv, seq: m.seq, on })
      await loadPins(m.conv)
    } catch (e) {
      fail(e)
    }
  }

  // ---- forward --------------------------------------------------------------------------------------------

  function openForward(items: { conv: ConvId; seq: number }[]): void {
    state.forwarding = { items: items.slice(0, chat.state.limits.forward_max_items ?? FORWARD_MAX_ITEMS) }
  }

  const maxTargets = () => chat.state.limits.forward_max_targets ?? FORWARD_MAX_TARGETS

  /** Forward to every target at once (the server checks all of it before storing any). */
  async function forward(targets: ConvId[], showSender: boolean): Promise<boolean> {
    const f = state.forwarding
    if (!f || targets.length === 0) return false
    try {
      const r = await chat.request<ForwardedFrame>({
        type: 'forward',
        aid: newAid(),
        items: f.items,
        targets: targets.slice(0, maxTargets()),
        show_sender: showSender,
      })
      state.forwarding = null
      state.selection = null
      for (const conv of new Set(r.acks.map((a) => a.conv))) void chat.pull(conv)
      chat.toast('act.forwarded', { n: targets.length })
      return true
    } catch (e) {
      fail(e)
      return false
    }
  }

  // ---- delete for me, recall ------------------------------------------------------------------------------

  async function hide(conv: ConvId, seqs: number[]): Promise<void> {
    if (seqs.length === 0) return
    try {
      await chat.request({ type: 'hide', conv, seqs: seqs.slice(0, 100) })
      remember(conv, seqs)
      hideSeqs(held(conv), seqs)
      state.selection = null
      const composing = state.composing[conv]
      if (composing && seqs.includes(composing.msg.seq)) delete state.composing[conv]
    } catch (e) {
      fail(e)
    }
  }

  function askRecall(m: Message): void {
    state.recalling = m
  }
  async function confirmRecall(): Promise<void> {
    const m = state.recalling
    state.recalling = null
    if (m) await chat.recall(m.conv, m.seq)
  }

  // ---- multi-select -----------------------------------------------------------------------------------------

  function startSelect(m: Message): void {
    state.selection = { conv: m.conv, seqs: [m.seq] }
  }
  function toggleSelect(m: Message): void {
    const s = state.selection
    if (!s || s.conv !== m.conv || isHidden(m)) return
    s.seqs = toggleSeq(s.seqs, m.seq, chat.state.limits.forward_max_items ?? FORWARD_MAX_ITEMS)
  }
  function endSelect(): void {
    state.selection = null
  }

  /** Tick the clock used by countdowns (recall time left, typing expiry) while something shows one. */
  function tick(): void {
    state.clock = now()
  }

  return {
    state,
    typingNames,
    canPin,
    offer,
    isPinned,
    startReply,
    startEdit,
    cancelCompose,
    submit,
    saveEdit,
    openHistory,
    react,
    whoReacted,
    loadPins,
    pin,
    openForward,
    maxTargets,
    forward,
    hide,
    askRecall,
    confirmRecall,
    startSelect,
    toggleSelect,
    endSelect,
    tick,
  }
}

const instances = new WeakMap<object, ActionStore>()

/** The action store of the app's chat store (made on first use, one per chat store). */
export function useActions(): ActionStore {
  const chat = useStore()
  let a = instances.get(chat)
  if (!a) {
    a = createActionStore(chat)
    instances.set(chat, a)
  }
  return a
}
