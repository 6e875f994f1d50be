/**
 * The app's reactive state and the actions on it. It owns the WebSocket connection and runs the sync
 * algorithm after every `auth_ok`; the merge rules themselves live in `convs.ts` (no I/O, unit-tested).
 *
 * Reconnect is resync: after each `auth_ok` the store resends unacknowledged messages (same cmid, so the
 * server answers with the original ack), sends `sync`, pulls every conversation that moved, and refetches
 * friends and requests, whose pushes may have been missed while offline.
 */
import { computed, reactive, watch } from 'vue'
import { ApiError, type Api } from '../api/rest'
import { Connection, WsError, type ConnStatus, type ConnectionOptions } from '../api/socket'
import {
  DEFAULT_LIMITS,
  convKind,
  groupConvId,
  groupIdOf,
  peerOf,
  privateConvId,
  type AckFrame,
  type CallPushFrame,
  type ClientFrame,
  type ConvId,
  type FriendFrame,
  type FriendRequest,
  type Group,
  type GroupMember,
  type GroupRole,
  type InvitePolicy,
  type Limits,
  type MediaKind,
  type Message,
  type MessagesFrame,
  type Receipts,
  type SearchResults,
  type ReceiptsResultFrame,
  type PushFrame,
  type SendFrame,
  type ServerFrame,
  type SyncResultFrame,
  type Upload,
  type User,
  type UserId,
} from '../api/types'
import {
  PULL_LIMIT,
  activityTs,
  applyAck,
  applyReadFrame,
  applySyncRow,
  historyCursor,
  isCountable,
  markRead,
  markRecalled,
  mentionsMe,
  newConv,
  prependHistory,
  readableSeq,
  receive,
  resetWindow,
  type ConvState,
  type Outgoing,
} from './convs'
import { formatBytes, kindFor, markDone, markFailed, newUpload, setProgress, type UploadItem } from './uploads'
import { extractMentions, type Picked } from '../util/mentions'
import { groupTypingAllowed, replySnapshot } from './actions'

/** What the store needs from a connection; `Connection` in production, a fake in tests. */
export interface ConnectionLike {
  readonly status: ConnStatus
  start(): void
  stop(): void
  reconnectNow(): void
  request<T extends ServerFrame>(frame: ClientFrame, timeoutMs?: number): Promise<T>
  send(frame: ClientFrame): boolean
}

export interface StoreDeps {
  api: Api
  wsUrl: string
  createConnection?: (opts: ConnectionOptions) => ConnectionLike
  now?: () => number
  /** Is the page in front of the user (tab visible)? Reading and notifications depend on it. */
  isVisible?: () => boolean
  /** Show a system notification for an incoming message. */
  notify?: (n: { title: string; body: Message; conv: ConvId }) => void
  newCmid?: () => string
  /** Where unsent messages survive a reload (localStorage in the browser). */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>
  /** This tab's device id (util/device.ts): every tab is its own live session. */
  device?: { readonly value: string; renew(): string }
}

export interface Toast {
  id: number
  /** An i18n key, or an error code (`err.<code>` is tried first). */
  key: string
  params?: Record<string, string | number>
  kind: 'info' | 'error'
}

/** A typing indicator lasts this long without another `typing` frame (protocol.md: ~5 s). */
export const TYPING_SHOW_MS = 5000
/** Send at most one `typing` frame per conversation this often. */
export const TYPING_THROTTLE_MS = 3000
/** An unanswered send is retried with the same frame this many times before it is shown as failed. */
const SEND_ATTEMPTS = 3
const HISTORY_PAGE = 50
/** A read-receipt count is reused this long before it is asked again. */
export const RECEIPTS_TTL_MS = 15_000
/** At most this many `receipts` requests at a time (hovering over a long list must not flood the server). */
export const RECEIPTS_MAX_INFLIGHT = 2
/** Receipt counts kept (oldest dropped first). */
const RECEIPTS_KEEP = 200
const MEMBER_PAGE = 100

/** A group's member list, loaded page by page (by user id). */
export interface MemberList {
  byId: Record<UserId, GroupMember>
  order: UserId[]
  nextAfter: number | null
  complete: boolean
  loading: boolean
}

export type CachedReceipts = Receipts & { at: number }

export type ChatStore = ReturnType<typeof createChatStore>

export function createChatStore(deps: StoreDeps) {
  const { api } = deps
  const now = deps.now ?? Date.now
  const isVisible = deps.isVisible ?? (() => true)
  const newCmid =
    deps.newCmid ??
    (() => `c-${globalThis.crypto?.randomUUID?.() ?? `${now().toString(36)}-${Math.random().toString(36).slice(2)}`}`)

  const state = reactive({
    me: null as User | null,
    status: 'idle' as ConnStatus,
    retryInMs: 0,
    /** The close code behind the last `waiting` or `stopped` status, if any. */
    closeCode: null as number | null,
    /** The first sync after login has completed: the conversation list is real. */
    synced: false,
    convs: {} as Record<ConvId, ConvState>,
    users: {} as Record<UserId, User>,
    friends: {} as Record<UserId, { since: number }>,
    online: {} as Record<UserId, boolean>,
    incoming: [] as FriendRequest[],
    outgoing: [] as FriendRequest[],
    activeConv: null as ConvId | null,
    /** The message a search result opened the conversation at: shown highlighted, scrolled into view. */
    highlight: null as { conv: ConvId; seq: number } | null,
    typing: {} as Record<ConvId, { user: UserId; until: number }>,
    loadingHistory: {} as Record<ConvId, boolean>,
    toasts: [] as Toast[],
    /** Why the user was logged out, for the login screen. */
    endedReason: null as string | null,
    /** The server's limits (`auth_ok.limits`). */
    limits: { ...DEFAULT_LIMITS } as Limits,
    groups: {} as Record<number, Group>,
    /** Groups I am no longer in (quit or kicked): the history stays, the composer closes. */
    leftGroups: {} as Record<number, boolean>,
    members: {} as Record<number, MemberList>,
    /** Read receipts of my group messages, by `conv#seq`. */
    receipts: {} as Record<string, CachedReceipts>,
    /** Files being uploaded (or failed to), shown in their conversation until they are sent. */
    uploads: [] as UploadItem[],
    /** The access token used in media URLs (`?access_token=`), kept in step with the session. */
    mediaToken: '',
    /** My private aliases for people (issue 15): shown instead of their names everywhere. */
    remarks: {} as Record<UserId, string>,
    /** When people went offline (ms), as far as their privacy lets me see. */
    lastSeen: {} as Record<UserId, number>,
  })

  let conn: ConnectionLike | null = null
  const pulling = new Set<ConvId>()
  const repull = new Set<ConvId>()
  const typingSentAt = new Map<ConvId, number>()
  const typingTimers = new Map<ConvId, ReturnType<typeof setTimeout>>()
  const userFetches = new Map<UserId, Promise<void>>()
  let toastId = 0
  let friendsRefresh: Promise<void> | null = null
  let friendsAgain = false
  /** Conversations whose running pull was started by live news (its messages may notify). */
  const livePulls = new Set<ConvId>()
  const groupFetches = new Map<number, Promise<void>>()
  const memberLoads = new WeakMap<object, Promise<void>>()
  const memberReloads = new Map<number, Promise<void>>()
  const memberReloadAgain = new Set<number>()
  const groupRefreshes = new Map<number, boolean>()
  let groupRefreshTimer: ReturnType<typeof setTimeout> | null = null
  const receiptsInflight = new Set<string>()
  const uploadFiles = new Map<string, Blob>()
  const uploadAborts = new Map<string, () => void>()
  let uploadSeq = 0
  let mediaTokenRefresh: Promise<boolean> | null = null

  const meId = () => state.me?.id ?? -1

  // ---- derived ---------------------------------------------------------------------------------------

  const conversationList = computed(() =>
    Object.values(state.convs)
      .filter((c) => c.messages.length > 0 || c.ahead.length > 0 || c.outbox.length > 0 || c.conv === state.activeConv)
      .sort((a, b) => activityTs(b) - activityTs(a) || b.conv.localeCompare(a.conv)),
  )

  const totalUnread = computed(() => Object.values(state.convs).reduce((n, c) => n + c.unread, 0))

  const contacts = computed(() =>
    Object.keys(state.friends)
      .map(Number)
      .map((id) => state.users[id])
      .filter((u): u is User => !!u)
      .sort(
        (a, b) =>
          Number(!!state.online[b.id]) - Number(!!state.online[a.id]) ||
          displayName(a).localeCompare(displayName(b)),
      ),
  )

  function displayName(u: User | UserId | null | undefined): string {
    const user = typeof u === 'number' ? state.users[u] : u
    if (!user) return typeof u === 'number' ? `#${u}` : ''
    return state.remarks[user.id] || user.nickname || user.username
  }

  function convTitle(conv: ConvId): string {
    const c = state.convs[conv]
    const gid = groupIdOf(conv)
    if (gid !== null) return state.groups[gid]?.name ?? `# ${gid}`
    return displayName(c?.peer ?? peerOf(conv, meId()))
  }

  /** Whether a conversation is with the server's own account (notices): shown with a badge. */
  function isSystemConv(conv: ConvId): boolean {
    if (groupIdOf(conv) !== null) return false
    const peer = state.convs[conv]?.peer ?? peerOf(conv, meId())
    return peer !== null && !!state.users[peer]?.system
  }

  /** The avatar upload id of a conversation (the peer's, or the group's). */
  function convAvatar(conv: ConvId): string | null {
    const gid = groupIdOf(conv)
    if (gid !== null) return state.groups[gid]?.avatar ?? null
    const peer = state.convs[conv]?.peer ?? peerOf(conv, meId())
    return peer !== null ? (state.users[peer]?.avatar ?? null) : null
  }

  /** A sender's name in a conversation: their group nickname when set, else their own name. */
  function senderName(conv: ConvId, user: UserId): string {
    const gid = groupIdOf(conv)
    const nick = gid !== null ? state.members[gid]?.byId[user]?.nickname : ''
    return nick || displayName(user)
  }

  const groupList = computed(() =>
    Object.values(state.groups)
      .filter((g) => !state.leftGroups[g.id])
      .sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id),
  )

  function myMember(gid: number): GroupMember | undefined {
    return state.members[gid]?.byId[meId()]
  }

  function myRole(gid: number): GroupRole {
    if (state.groups[gid]?.owner === meId()) return 'owner'
    return myMember(gid)?.role ?? 'member'
  }

  /** Why I cannot write in this conversation right now, or null. */
  function writeBlock(conv: ConvId): { key: 'left' | 'dismissed' | 'mutedAll' | 'muted'; until?: number } | null {
    const gid = groupIdOf(conv)
    if (gid === null) return null
    if (state.leftGroups[gid]) return { key: 'left' }
    const g = state.groups[gid]
    if (!g) return null
    if (g.dismissed) return { key: 'dismissed' }
    const role = myRole(gid)
    if (role !== 'member') return null
    if (g.muted_all) return { key: 'mutedAll' }
    const until = myMember(gid)?.muted_until ?? 0
    if (until > now()) return { key: 'muted', until }
    return null
  }

  function isDnd(conv: ConvId): boolean {
    const gid = groupIdOf(conv)
    return gid !== null && !!myMember(gid)?.dnd
  }

  function isTyping(conv: ConvId): UserId | null {
    const t = state.typing[conv]
    return t && t.until > now() ? t.user : null
  }

  // ---- session ---------------------------------------------------------------------------------------

  api.onSessionEnded = (code) => endSession(code)

  /** Resume a stored session (page load). Returns false when the user must log in. */
  function boot(): boolean {
    const s = api.session.value
    if (!s) return false
    state.me = s.user
    remember(s.user)
    state.mediaToken = s.access_token
    restoreOutbox()
    connect()
    return true
  }

  async function login(username: string, password: string): Promise<void> {
    const u = await api.login(username, password)
    afterLogin(u)
  }

  /** Finish a single sign-on: the callback's one-time ticket for a session. */
  async function ssoLogin(ticket: string): Promise<void> {
    afterLogin(await api.ssoExchange(ticket))
  }

  async function register(username: string, password: string, nickname?: string, invite?: string): Promise<void> {
    const u = await api.register(username, password, nickname, invite)
    afterLogin(u)
  }

  function afterLogin(u: User): void {
    reset()
    state.me = u
    remember(u)
    state.mediaToken = api.session.value?.access_token ?? ''
    restoreOutbox()
    connect()
  }

  // New media URLs use the newest token; elements already loaded keep theirs (their bytes are cached).
  api.session.onChange((s) => {
    if (s?.access_token) state.mediaToken = s.access_token
  })

  /** A URL for an upload (or its thumbnail) that an `<img>` can load. */
  function mediaUrl(id: string, thumb = false): string {
    return api.mediaUrl(id, state.mediaToken, thumb)
  }

  /** After a media element failed to load: get a fresh token. Resolves true if it changed (worth a retry). */
  function refreshMediaToken(): Promise<boolean> {
    mediaTokenRefresh ??= (async () => {
      const before = state.mediaToken
      try {
        const token = await api.session.accessToken()
        state.mediaToken = token
        return token !== before
      } catch {
        return false
      } finally {
        mediaTokenRefresh = null
      }
    })()
    return mediaTokenRefresh
  }

  // ---- unsent messages survive a reload ------------------------------------------------------------------
  // Saved per user; restored as "sending" and resent with the same cmid after the next auth_ok, so a message
  // typed just before a reload or a crash is delivered once, never lost and never doubled.

  const outboxKey = () => (state.me ? `hubbub.outbox.${state.me.id}` : null)

  function restoreOutbox(): void {
    const key = outboxKey()
    if (!key || !deps.storage) return
    let saved: Outgoing[] = []
    try {
      saved = JSON.parse(deps.storage.getItem(key) ?? '[]') as Outgoing[]
    } catch {
      return
    }
    for (const o of Array.isArray(saved) ? saved : []) {
      if (typeof o?.cmid !== 'string' || typeof o.text !== 'string' || typeof o.conv !== 'string') continue
      const c = ensureConv(o.conv, null)
      if (!c.outbox.some((x) => x.cmid === o.cmid)) c.outbox.push({ ...o, status: 'sending' })
    }
  }

  watch(
    () => Object.values(state.convs).flatMap((c) => c.outbox.map((o) => ({ ...o }))),
    (all) => {
      const key = outboxKey()
      if (!key || !deps.storage) return
      try {
        if (all.length) deps.storage.setItem(key, JSON.stringify(all))
        else deps.storage.removeItem(key)
      } catch {
        /* storage full or blocked: the outbox still lives in memory */
      }
    },
    { deep: true },
  )

  async function logout(): Promise<void> {
    const key = outboxKey()
    if (key) deps.storage?.removeItem(key)
    conn?.stop()
    conn = null
    await api.logout()
    reset()
  }

  function endSession(reason: string): void {
    conn?.stop()
    conn = null
    api.session.clear()
    reset()
    state.endedReason = reason
  }

  function reset(): void {
    state.me = null
    state.synced = false
    state.convs = {}
    state.friends = {}
    state.online = {}
    state.incoming = []
    state.outgoing = []
    state.activeConv = null
    state.typing = {}
    state.loadingHistory = {}
    state.status = 'idle'
    state.endedReason = null
    state.groups = {}
    state.leftGroups = {}
    state.members = {}
    state.receipts = {}
    state.remarks = {}
    state.lastSeen = {}
    for (const u of state.uploads) if (u.preview) revokePreview(u.preview)
    for (const abort of uploadAborts.values()) abort()
    state.uploads = []
    uploadFiles.clear()
    uploadAborts.clear()
    state.limits = { ...DEFAULT_LIMITS }
    pulling.clear()
    repull.clear()
    livePulls.clear()
    groupFetches.clear()
    receiptsInflight.clear()
  }

  /** The server echoed our device id: it keeps one slot per tab, so a 4409 means a copy of this tab. */
  let deviceKnown = false

  function connect(): void {
    const device = deps.device
    const opts: ConnectionOptions = {
      url: deps.wsUrl,
      terminal: 'web',
      device: device ? () => device.value : undefined,
      getToken: () => api.session.accessToken(),
      refreshToken: () => api.session.refresh(),
      onReady: (auth) => {
        if (auth.limits) state.limits = { ...DEFAULT_LIMITS, ...auth.limits }
        deviceKnown = !!auth.device
        state.me = auth.user
        remember(auth.user)
        api.session.updateUser(auth.user)
        void onConnected()
        callReady?.()
      },
      onPush: (f) => onPush(f),
      onStatus: (s, d) => {
        state.status = s
        state.retryInMs = d?.retryInMs ?? 0
        state.closeCode = d?.code ?? null
        // A duplicated tab started with our id and took the slot: take a new id and come back at once.
        if (s === 'replaced' && device && deviceKnown) {
          device.renew()
          setTimeout(() => conn?.reconnectNow(), 0)
        }
      },
      onEnded: (reason) => endSession(reason),
    }
    conn = deps.createConnection ? deps.createConnection(opts) : new Connection(opts)
    conn.start()
    void refreshFriends()
  }

  /** Skip the backoff (the browser is online again, or "use here" after another tab took over). */
  function reconnectNow(): void {
    conn?.reconnectNow()
  }

  // ---- sync ------------------------------------------------------------------------------------------

  async function onConnected(): Promise<void> {
    // Unacknowledged sends first: the server answers a repeated cmid with the original ack.
    for (const c of Object.values(state.convs)) for (const o of c.outbox) if (o.status === 'sending') void flush(o)
    void refreshFriends()
    void refreshGroups()
    await runSync()
  }

  async function runSync(): Promise<void> {
    if (!conn) return
    let r: SyncResultFrame
    try {
      r = await conn.request<SyncResultFrame>({ type: 'sync' })
    } catch {
      return // the connection dropped; the next auth_ok syncs again
    }
    for (const row of r.conversations) {
      const c = ensureConv(row.conv, row.peer)
      const { pullAfter } = applySyncRow(c, row)
      if (row.last && row.last.type === 'system') noteSystemUsers(row.last)
      if (c.peer !== null) void ensureUser(c.peer)
      if (row.last) void ensureUser(row.last.sender)
      if (pullAfter !== null) void pull(row.conv)
    }
    state.synced = true
    const active = state.activeConv && state.convs[state.activeConv]
    if (active && active.messages.length < 20 && historyCursor(active) !== null) void loadOlder(active.conv)
    markActiveRead()
  }

  /** Pull `after_seq: have` until nothing newer is missing. One pull loop per conversation at a time. */
  async function pull(conv: ConvId): Promise<void> {
    if (!conn) return
    if (pulling.has(conv)) {
      repull.add(conv)
      return
    }
    pulling.add(conv)
    try {
      const first = state.convs[conv]
      // An empty window far behind (a hot group never opened here): start at the newest page, not at seq 1.
      if (first && first.have === 0 && first.messages.length === 0 && first.ahead.length === 0 && first.maxSeq > PULL_LIMIT) {
        const r = await conn.request<MessagesFrame>({ type: 'history', conv, limit: HISTORY_PAGE })
        const newest = r.messages[r.messages.length - 1]
        if (newest && first.have === 0 && first.messages.length === 0) {
          resetWindow(first, newest)
          prependHistory(first, r.messages.slice(0, -1), r.has_more)
          for (const m of r.messages) void ensureUser(m.sender)
        }
      }
      for (let round = 0; round < 1000; round++) {
        const c = state.convs[conv]
        if (!c || !conn) return
        repull.delete(conv)
        const r = await conn.request<MessagesFrame>({ type: 'pull', conv, after_seq: c.have, limit: PULL_LIMIT })
        const res = receive(c, r.messages, meId())
        afterAppend(conv, res.appended, livePulls.has(conv))
        if (r.has_more || repull.has(conv)) continue
        if (res.gapAfter !== null && r.messages.length > 0) continue
        break
      }
    } catch (e) {
      // Disconnected: the next sync fills the hole. Refused: I left the group.
      if (e instanceof WsError && e.code === 'forbidden') {
        const gid = groupIdOf(conv)
        if (gid !== null) void ensureGroup(gid, true)
      }
    } finally {
      pulling.delete(conv)
      livePulls.delete(conv)
    }
  }

  async function loadOlder(conv: ConvId): Promise<number> {
    const c = state.convs[conv]
    if (!c || !conn || state.loadingHistory[conv]) return 0
    const before = historyCursor(c)
    if (before === null) return 0
    state.loadingHistory[conv] = true
    try {
      const r = await conn.request<MessagesFrame>({ type: 'history', conv, before_seq: before, limit: HISTORY_PAGE })
      for (const m of r.messages) {
        void ensureUser(m.sender)
        if (m.type === 'system') noteSystemUsers(m)
      }
      return prependHistory(c, r.messages, r.has_more)
    } catch {
      return 0
    } finally {
      state.loadingHistory[conv] = false
    }
  }

  // ---- pushes ----------------------------------------------------------------------------------------

  /** Frames other stores handle (store/social.ts: profile, remark, block, prefs, receipts). */
  const pushListeners = new Set<(f: PushFrame) => void>()
  function onAnyPush(fn: (f: PushFrame) => void): () => void {
    pushListeners.add(fn)
    return () => pushListeners.delete(fn)
  }
  /** When each remark last changed here (a push, or this tab's own edit), so a friends list or profile asked
   * for before that, whose answer arrives after it, does not put the old remark back. */
  const remarkChangedAt = new Map<UserId, number>()
  /** A remark as a push or an edit says it (no `askedAt`), or as a fetch asked at `askedAt` saw it. */
  function noteRemark(user: UserId, remark: string, askedAt?: number): void {
    if (askedAt === undefined) remarkChangedAt.set(user, performance.now())
    else if ((remarkChangedAt.get(user) ?? -1) > askedAt) return
    if (remark) state.remarks[user] = remark
    else delete state.remarks[user]
  }

  function onPush(f: PushFrame): void {
    for (const fn of pushListeners) fn(f)
    switch (f.type) {
      case 'msg': {
        const m = f.msg
        const c = ensureConv(m.conv, null)
        void ensureUser(m.sender)
        const res = receive(c, [m], meId())
        if (state.typing[m.conv]?.user === m.sender) delete state.typing[m.conv]
        afterAppend(m.conv, res.appended, true)
        if (res.gapAfter !== null) void pull(m.conv)
        return
      }
      case 'news': {
        // A hot group moved: pull what is missing. `pull` runs one loop per conversation and loops again when
        // more news came meanwhile, so a burst of news costs one pull at a time.
        const c = ensureConv(f.conv, null)
        c.maxSeq = Math.max(c.maxSeq, f.seq)
        if (f.mention && f.seq > c.readSeq) c.mention = true
        if (f.seq > c.have) {
          livePulls.add(f.conv)
          void pull(f.conv)
        }
        return
      }
      case 'read': {
        const c = state.convs[f.conv]
        if (c) applyReadFrame(c, f.user, f.seq, meId())
        return
      }
      case 'typing': {
        if (f.user === meId()) return
        state.typing[f.conv] = { user: f.user, until: now() + TYPING_SHOW_MS }
        clearTimeout(typingTimers.get(f.conv))
        typingTimers.set(
          f.conv,
          setTimeout(() => {
            if ((state.typing[f.conv]?.until ?? 0) <= now()) delete state.typing[f.conv]
          }, TYPING_SHOW_MS + 50),
        )
        return
      }
      case 'presence':
        state.online[f.user] = f.online
        if (f.last_seen) state.lastSeen[f.user] = f.last_seen
        return
      case 'friend':
        onFriendEvent(f)
        return
      case 'call_incoming':
      case 'call_ringing':
      case 'call_accepted':
      case 'call_ended':
      case 'call_sdp':
      case 'call_ice':
        callSink?.(f)
        return
    }
  }

  // ---- calls: the signalling goes to the call store (store/calls.ts), over this connection -------------
  let callSink: ((f: CallPushFrame) => void) | null = null
  let callReady: (() => void) | null = null
  /** Called after every `auth_ok`: a call in progress follows the new connection (`call_resume`). */
  function onCallReady(cb: () => void): void {
    callReady = cb
  }
  /** Where call frames go (the call store registers itself). */
  function onCallFrame(sink: (f: CallPushFrame) => void): void {
    callSink = sink
  }
  /** A call request over the WebSocket (rejects with WsError on an `error` reply or when offline). */
  function callRequest<T extends ServerFrame>(frame: ClientFrame): Promise<T> {
    if (!conn) return Promise.reject(new WsError('disconnected', 'not connected'))
    return conn.request<T>(frame)
  }

  function afterAppend(conv: ConvId, appended: Message[], live: boolean): void {
    if (appended.length === 0) return
    for (const m of appended) if (m.type === 'system') onSystemMessage(m)
    if (conv === state.activeConv) markActiveRead()
    if (!live || !deps.notify) return
    const me = meId()
    const dnd = isDnd(conv)
    for (const m of appended) {
      if (dnd && !mentionsMe(m, me)) continue
      if (isCountable(m, me) && (!isVisible() || conv !== state.activeConv)) {
        deps.notify({ title: convTitle(conv), body: m, conv })
      }
    }
  }

  // ---- groups ----------------------------------------------------------------------------------------

  /** Load a group's profile once (or again with `force`); a 404 means I am not in it (any more). */
  function ensureGroup(id: number, force = false): Promise<void> {
    if (!force && state.groups[id]) return Promise.resolve()
    let p = groupFetches.get(id)
    if (!p) {
      p = api
        .group(id)
        .then((g) => {
          state.groups[id] = g
          delete state.leftGroups[id]
        })
        .catch((e: unknown) => {
          if (e instanceof ApiError && (e.code === 'not_found' || e.code === 'forbidden')) state.leftGroups[id] = true
        })
        .finally(() => groupFetches.delete(id))
      groupFetches.set(id, p)
    }
    return p
  }

  async function refreshGroups(): Promise<void> {
    try {
      const groups = await api.groups()
      const seen = new Set<number>()
      for (const g of groups) {
        seen.add(g.id)
        state.groups[g.id] = g
        delete state.leftGroups[g.id]
        ensureConv(g.conv || groupConvId(g.id), null)
      }
      for (const id of Object.keys(state.groups).map(Number)) if (!seen.has(id)) state.leftGroups[id] = true
    } catch {
      /* offline: the next reconnect refreshes */
    }
  }

  /** Load the next page of a group's members (or the first, with `reset`). A page already loading is
   * awaited, not asked again. */
  function loadMembers(id: number, reset = false): Promise<void> {
    let ml = state.members[id]
    if (!ml || reset) {
      state.members[id] = { byId: {}, order: [], nextAfter: 0, complete: false, loading: false }
      ml = state.members[id]!
    }
    const list = ml
    if (list.loading) return memberLoads.get(list) ?? Promise.resolve()
    if (list.complete) return Promise.resolve()
    list.loading = true
    const p = (async () => {
      try {
        const page = await api.groupMembers(id, list.nextAfter ?? 0, MEMBER_PAGE)
        for (const m of page.members) {
          remember(m.user)
          if (!list.byId[m.user.id]) list.order.push(m.user.id)
          list.byId[m.user.id] = m
        }
        list.nextAfter = page.next_after
        list.complete = page.next_after === null
      } catch (e) {
        if (e instanceof ApiError && e.code === 'not_found') state.leftGroups[id] = true
        list.complete = true
      } finally {
        list.loading = false
        memberLoads.delete(list)
      }
    })()
    memberLoads.set(list, p)
    return p
  }

  /** Page through the members until my own row is loaded (my role, mute, nickname, do-not-disturb). */
  async function ensureMyMembership(id: number): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const ml = state.members[id]
      if (ml && (ml.byId[meId()] || ml.complete)) return
      await loadMembers(id)
    }
  }

  /** Reload the member pages already shown (after a change). One reload per group at a time; a change during
   * a reload runs one more. */
  function reloadMembers(id: number): Promise<void> {
    const running = memberReloads.get(id)
    if (running) {
      memberReloadAgain.add(id)
      return running
    }
    const p = (async () => {
      try {
        do {
          memberReloadAgain.delete(id)
          const shown = Math.max(state.members[id]?.order.length ?? 0, 1)
          await loadMembers(id, true)
          for (let i = 0; i < 50; i++) {
            const ml = state.members[id]
            if (!ml || ml.complete || ml.order.length >= shown) break
            await loadMembers(id)
          }
          await ensureMyMembership(id)
        } while (memberReloadAgain.has(id))
      } finally {
        memberReloads.delete(id)
      }
    })()
    memberReloads.set(id, p)
    return p
  }

  function noteSystemUsers(m: Message): void {
    const b = m.body as { users?: unknown; actor?: unknown }
    if (typeof b.actor === 'number') void ensureUser(b.actor)
    if (Array.isArray(b.users)) for (const u of b.users.slice(0, 10)) if (typeof u === 'number') void ensureUser(u)
  }

  const MEMBER_EVENTS = new Set(['created', 'joined', 'left', 'kicked', 'owner_changed', 'admin_added', 'admin_removed', 'muted', 'unmuted'])

  /** A group changed (a `system` message): update what the client shows about it. */
  function onSystemMessage(m: Message): void {
    const id = groupIdOf(m.conv)
    if (id === null) return
    noteSystemUsers(m)
    const b = m.body as { event?: unknown; users?: unknown }
    const users = Array.isArray(b.users) ? b.users : []
    const me = meId()
    if ((b.event === 'kicked' || b.event === 'left') && users.includes(me)) {
      state.leftGroups[id] = true
      delete state.members[id]
      return
    }
    if ((b.event === 'joined' || b.event === 'created') && users.includes(me)) delete state.leftGroups[id]
    if (b.event === 'dismissed') {
      const g = state.groups[id]
      if (g) g.dismissed = true
    }
    // Coalesce: a burst of changes refreshes the profile (and the member list, if loaded) once.
    groupRefreshes.set(id, (groupRefreshes.get(id) ?? false) || MEMBER_EVENTS.has(String(b.event)))
    groupRefreshTimer ??= setTimeout(() => {
      groupRefreshTimer = null
      for (const [gid, members] of groupRefreshes) {
        void ensureGroup(gid, true)
        if (members && state.members[gid]) void reloadMembers(gid)
      }
      groupRefreshes.clear()
    }, 60)
  }

  function openGroupError(e: unknown, id: number): void {
    const code = e instanceof ApiError || e instanceof WsError ? e.code : 'internal'
    toast(code, {}, 'error')
    if (code === 'group_dismissed' || code === 'not_found' || code === 'forbidden') void ensureGroup(id, true)
  }

  /** Run a group action; on success keep the returned group, fetch the notice it made, refresh members. */
  async function groupAction(id: number, run: () => Promise<unknown>, members = false): Promise<boolean> {
    try {
      const r = await run()
      if (r && typeof r === 'object' && 'member_count' in r) state.groups[id] = r as Group
      void pull(groupConvId(id))
      if (members) await reloadMembers(id)
      return true
    } catch (e) {
      openGroupError(e, id)
      return false
    }
  }

  async function createGroup(name: string, members: UserId[]): Promise<ConvId> {
    const g = await api.createGroup({ name: name.trim(), members })
    state.groups[g.id] = g
    const conv = g.conv || groupConvId(g.id)
    ensureConv(conv, null)
    openConv(conv)
    void pull(conv)
    return conv
  }

  const inviteMembers = (id: number, users: UserId[]) => groupAction(id, () => api.invite(id, users), true)
  const kick = (id: number, user: UserId) => groupAction(id, () => api.removeMember(id, user), true)
  const muteMember = (id: number, user: UserId, seconds: number) =>
    groupAction(id, () => api.mute(id, user, seconds), true)
  const muteAll = (id: number, muted: boolean) => groupAction(id, () => api.muteAll(id, muted))
  const setAdmin = (id: number, user: UserId, admin: boolean) =>
    groupAction(id, () => api.setAdmin(id, user, admin), true)
  const transferOwner = (id: number, user: UserId) => groupAction(id, () => api.transferOwner(id, user), true)
  const editGroup = (
    id: number,
    patch: {
      name?: string
      notice?: string
      avatar?: string | null
      invite_policy?: InvitePolicy
      public?: boolean
      join_approval?: boolean
    },
  ) => groupAction(id, () => api.editGroup(id, patch))

  async function setGroupPrefs(id: number, patch: { nickname?: string; dnd?: boolean }): Promise<boolean> {
    try {
      const m = await api.groupPrefs(id, patch)
      const ml = state.members[id]
      if (ml) {
        if (!ml.byId[m.user.id]) ml.order.push(m.user.id)
        ml.byId[m.user.id] = m
      }
      return true
    } catch (e) {
      openGroupError(e, id)
      return false
    }
  }

  /** Quit (or, as owner, dismiss) a group; the conversation leaves the list. */
  async function leaveGroup(id: number, dismiss: boolean): Promise<boolean> {
    try {
      if (dismiss) await api.dismissGroup(id)
      else await api.removeMember(id, meId())
    } catch (e) {
      openGroupError(e, id)
      return false
    }
    const conv = groupConvId(id)
    if (dismiss) {
      const g = state.groups[id]
      if (g) g.dismissed = true
      void pull(conv)
      return true
    }
    state.leftGroups[id] = true
    delete state.members[id]
    if (state.activeConv === conv) state.activeConv = null
    delete state.convs[conv]
    return true
  }

  /** Who read my group message `seq` ("read by 3 of 5"): asked on demand, cached briefly, a few at a time. */
  async function loadReceipts(conv: ConvId, seq: number, force = false): Promise<void> {
    const key = `${conv}#${seq}`
    const have = state.receipts[key]
    if (!force && have && now() - have.at < RECEIPTS_TTL_MS) return
    if (!conn || receiptsInflight.has(key) || receiptsInflight.size >= RECEIPTS_MAX_INFLIGHT) return
    receiptsInflight.add(key)
    try {
      const r = await conn.request<ReceiptsResultFrame>({ type: 'receipts', conv, seq })
      state.receipts[key] = { conv, seq, read: r.read, total: r.total, readers: r.readers.slice(0, 100), at: now() }
      const keys = Object.keys(state.receipts)
      if (keys.length > RECEIPTS_KEEP) {
        keys.sort((a, b) => state.receipts[a]!.at - state.receipts[b]!.at)
        for (const k of keys.slice(0, keys.length - RECEIPTS_KEEP)) delete state.receipts[k]
      }
    } catch {
      /* offline or refused: hovering again asks again */
    } finally {
      receiptsInflight.delete(key)
    }
  }

  function receiptsOf(conv: ConvId, seq: number): CachedReceipts | null {
    return state.receipts[`${conv}#${seq}`] ?? null
  }

  // ---- uploads -----------------------------------------------------------------------------------------

  function makePreview(file: Blob): string | undefined {
    try {
      return typeof URL.createObjectURL === 'function' ? URL.createObjectURL(file) : undefined
    } catch {
      return undefined
    }
  }

  function revokePreview(url: string): void {
    try {
      URL.revokeObjectURL(url)
    } catch {
      /* not an object URL */
    }
  }

  /**
   * Upload a file into a conversation and send it when the upload is done. Returns the upload's local id.
   * Progress and failures show in the conversation (`state.uploads`).
   */
  function sendFile(
    conv: ConvId,
    file: Blob & { name?: string },
    opts: { kind?: MediaKind; name?: string; width?: number; height?: number; caption?: string; duration?: number } = {},
  ): string {
    const kind = kindFor({ type: file.type, name: opts.name ?? file.name ?? '' }, opts.kind)
    const item = newUpload(`u${++uploadSeq}`, conv, { name: opts.name ?? file.name ?? '', size: file.size, type: file.type }, kind, now())
    if (kind === 'image' || kind === 'video') item.preview = makePreview(file)
    if (opts.caption) item.caption = opts.caption
    if (opts.duration) item.duration = opts.duration
    if (opts.width && opts.height) {
      item.width = opts.width
      item.height = opts.height
    }
    state.uploads.push(item)
    uploadFiles.set(item.id, file)
    startUpload(item.id)
    return item.id
  }

  function startUpload(id: string): void {
    const item = state.uploads.find((u) => u.id === id)
    const file = uploadFiles.get(id)
    if (!item || !file) return
    item.status = 'uploading'
    item.sent = 0
    delete item.error
    const { promise, abort } = api.upload(file, item.kind, item.name, (sent, total) => setProgress(item, sent, total), item.duration)
    uploadAborts.set(id, abort)
    promise.then(
      (up) => {
        uploadAborts.delete(id)
        markDone(item, up)
        dropUpload(id)
        sendMedia(item.conv, up, item.caption)
      },
      (e: unknown) => {
        uploadAborts.delete(id)
        const code = e instanceof ApiError ? e.code : 'internal'
        if (code === 'aborted') return dropUpload(id)
        markFailed(item, code, e instanceof Error ? e.message : '')
        if (item.limit) toast('upload.tooLarge', { name: item.name, limit: formatBytes(item.limit) }, 'error')
        else toast(code, {}, 'error')
      },
    )
  }

  function retryUpload(id: string): void {
    startUpload(id)
  }

  function cancelUpload(id: string): void {
    const abort = uploadAborts.get(id)
    if (abort) abort()
    else dropUpload(id)
  }

  function dropUpload(id: string): void {
    const item = state.uploads.find((u) => u.id === id)
    if (item?.preview) revokePreview(item.preview)
    state.uploads = state.uploads.filter((u) => u.id !== id)
    uploadFiles.delete(id)
  }

  function uploadsIn(conv: ConvId): UploadItem[] {
    return state.uploads.filter((u) => u.conv === conv)
  }

  /** Send an uploaded file as an image / file / voice / video message. */
  function sendMedia(conv: ConvId, up: Upload, caption?: string): void {
    if (!state.me) return
    const c = ensureConv(conv, null)
    const type: MediaKind = up.kind
    const body: Record<string, unknown> = { upload: up.upload }
    if (caption) body.caption = caption
    c.outbox.push({
      cmid: newCmid(),
      conv,
      to: convKind(conv) === 'private' ? c.peer : null,
      type,
      text: up.name,
      body,
      view: { ...up, ...(caption ? { caption } : {}) },
      ts: now(),
      status: 'sending',
    })
    void flush(c.outbox[c.outbox.length - 1]!)
  }

  /** Upload an image and make it my avatar. */
  async function setMyAvatar(file: Blob & { name?: string }): Promise<void> {
    const up = await api.upload(file, 'image', file.name || 'avatar.png').promise
    const u = await api.updateMe({ avatar: up.upload })
    state.me = u
    remember(u)
  }

  /** Upload an image and make it a group's avatar. */
  async function setGroupAvatar(id: number, file: Blob & { name?: string }): Promise<boolean> {
    let up: Upload
    try {
      up = await api.upload(file, 'image', file.name || 'group.png').promise
    } catch (e) {
      openGroupError(e, id)
      return false
    }
    return editGroup(id, { avatar: up.upload })
  }

  function onFriendEvent(f: FriendFrame): void {
    const me = meId()
    const req = f.request
    if (req) {
      remember(req.from)
      remember(req.to)
    }
    if (f.user) remember(f.user)
    switch (f.event) {
      case 'request':
        if (!req) break
        if (req.to.id === me && !state.incoming.some((r) => r.id === req.id)) {
          state.incoming.unshift(req)
          toast('toast.friendRequest', { name: displayName(req.from) })
        }
        if (req.from.id === me && !state.outgoing.some((r) => r.id === req.id)) state.outgoing.unshift(req)
        break
      case 'accepted':
      case 'declined': {
        if (req) dropRequest(req.id)
        const other = req ? (req.from.id === me ? req.to : req.from) : f.user
        if (f.event === 'accepted' && other) {
          state.friends[other.id] = { since: req?.ts ?? now() }
          if (req?.from.id === me) toast('toast.accepted', { name: displayName(other) })
        }
        break
      }
      case 'removed': {
        const other = f.user?.id ?? (req ? (req.from.id === me ? req.to.id : req.from.id) : null)
        if (other !== null) delete state.friends[other]
        break
      }
    }
    void refreshFriends()
  }

  function dropRequest(id: number): void {
    state.incoming = state.incoming.filter((r) => r.id !== id)
    state.outgoing = state.outgoing.filter((r) => r.id !== id)
  }

  // ---- reading ---------------------------------------------------------------------------------------

  /** If the open conversation is in front of the user, report it read up to the newest held message. */
  function markActiveRead(): void {
    const conv = state.activeConv
    if (!conv || !isVisible() || !conn || conn.status !== 'online') return
    const c = state.convs[conv]
    if (!c) return
    const seq = readableSeq(c)
    if (seq <= c.readSeq) {
      c.unread = 0
      return
    }
    markRead(c, seq, meId())
    conn.request({ type: 'read', conv, seq }).catch(() => {
      /* the next sync brings the server's read_seq back and we send again */
    })
  }

  // ---- conversations -----------------------------------------------------------------------------------

  function ensureConv(conv: ConvId, peer: UserId | null): ConvState {
    let c = state.convs[conv]
    if (!c) {
      state.convs[conv] = newConv(conv, peer ?? peerOf(conv, meId()))
      c = state.convs[conv]!
      if (c.peer !== null) void ensureUser(c.peer)
      const gid = groupIdOf(conv)
      if (gid !== null) void ensureGroup(gid)
    }
    return c
  }

  function openConv(conv: ConvId | null): void {
    state.activeConv = conv
    if (!conv) return
    const c = ensureConv(conv, null)
    if (c.messages.length < 20 && historyCursor(c) !== null) void loadOlder(conv)
    const gid = groupIdOf(conv)
    if (gid !== null) void ensureMyMembership(gid)
    markActiveRead()
  }

  /**
   * Open `conv` at message `seq` (a search result): the window already holds it, or reaches it once the page
   * around it is joined to the window's front; a page far older than the window replaces it, and the newer
   * messages come back by the usual pull.
   */
  function searchMessages(q: string, opts: { conv?: ConvId; cursor?: string } = {}): Promise<SearchResults> {
    return api.search(q, { ...opts, limit: 20 })
  }

  async function jumpTo(conv: ConvId, seq: number): Promise<void> {
    openConv(conv)
    state.highlight = { conv, seq }
    const c = ensureConv(conv, null)
    if (c.messages.some((m) => m.seq === seq)) return
    let page
    try {
      page = await api.around(conv, seq)
    } catch {
      toast('msgsearch.failed', {}, 'error')
      return
    }
    const msgs = page.messages
    const newest = msgs[msgs.length - 1]
    if (!newest) return
    for (const m of msgs) void ensureUser(m.sender)
    const lo = c.messages[0]?.seq
    if (lo !== undefined && newest.seq >= lo - 1) {
      prependHistory(c, msgs, page.has_older)
    } else {
      resetWindow(c, newest)
      prependHistory(c, msgs.slice(0, -1), page.has_older)
      void pull(conv)
    }
  }

  function openChatWith(user: UserId): ConvId {
    const conv = privateConvId(meId(), user)
    openConv(conv)
    return conv
  }

  // ---- sending ----------------------------------------------------------------------------------------

  /** Send a text; in groups, `picked` are the members chosen in the @mention picker; `replyTo` is the message
   * it answers (the server fills the quote; the snapshot shows it until then). */
  function sendText(conv: ConvId, raw: string, picked: readonly Picked[] = [], replyTo?: Message): boolean {
    const text = raw.replace(/\s+$/, '')
    if (!text.trim() || !state.me) return false
    if ([...text].length > state.limits.max_text_chars) {
      toast('err.too_long', { n: state.limits.max_text_chars }, 'error')
      return false
    }
    const c = ensureConv(conv, null)
    const gid = groupIdOf(conv)
    const mentions = gid !== null ? extractMentions(text, picked, myRole(gid) !== 'member') : {}
    const out: Outgoing = {
      cmid: newCmid(),
      conv,
      to: convKind(conv) === 'private' ? c.peer : null,
      type: 'text',
      text,
      ts: now(),
      status: 'sending',
    }
    if (mentions.mentions || mentions.mention_all) out.body = { text, ...mentions }
    if (replyTo) {
      out.body = { text, ...mentions, reply: { seq: replyTo.seq } }
      out.view = { text, ...mentions, reply: replySnapshot(replyTo) }
    }
    c.outbox.push(out)
    typingSentAt.delete(conv)
    void flush(c.outbox[c.outbox.length - 1]!)
    return true
  }

  function sendFrame(o: Outgoing): SendFrame {
    const f: SendFrame = { type: 'send', cmid: o.cmid, msg_type: o.type, body: o.body ?? { text: o.text } }
    if (o.to !== null) f.to = o.to
    else f.conv = o.conv
    return f
  }

  async function flush(o: Outgoing): Promise<void> {
    for (let attempt = 0; attempt < SEND_ATTEMPTS; attempt++) {
      if (!conn || conn.status !== 'online') return // resent after the next auth_ok
      try {
        const ack = await conn.request<AckFrame>(sendFrame(o))
        const c = state.convs[o.conv]
        if (!c) return
        const res = applyAck(c, ack, meId())
        if (res.gapAfter !== null) void pull(o.conv)
        markActiveRead()
        return
      } catch (e) {
        const code = e instanceof WsError ? e.code : 'internal'
        if (code === 'disconnected') return // resent after the next auth_ok
        if (code === 'timeout' || code === 'unavailable' || code === 'internal') continue
        setFailed(o, code)
        if (code === 'muted' || code === 'group_dismissed' || code === 'forbidden') {
          toast(code, {}, 'error')
          const gid = groupIdOf(o.conv)
          if (gid !== null) {
            void ensureGroup(gid, true)
            if (code === 'muted') void reloadMembers(gid)
          }
        }
        return
      }
    }
    setFailed(o, 'timeout')
  }

  function setFailed(o: Outgoing, code: string): void {
    const c = state.convs[o.conv]
    const live = c?.outbox.find((x) => x.cmid === o.cmid)
    if (!live) return
    live.status = 'failed'
    live.error = code
  }

  function retry(conv: ConvId, cmid: string): void {
    const o = state.convs[conv]?.outbox.find((x) => x.cmid === cmid)
    if (!o) return
    o.status = 'sending'
    delete o.error
    void flush(o)
  }

  function discard(conv: ConvId, cmid: string): void {
    const c = state.convs[conv]
    if (c) c.outbox = c.outbox.filter((x) => x.cmid !== cmid)
  }

  async function recall(conv: ConvId, seq: number): Promise<void> {
    if (!conn) return
    try {
      await conn.request({ type: 'recall', conv, seq })
      const c = state.convs[conv]
      if (c) markRecalled(c, seq)
    } catch (e) {
      toast(e instanceof WsError ? e.code : 'internal', {}, 'error')
    }
  }

  /** Call on input in the composer; sends at most one `typing` per TYPING_THROTTLE_MS. */
  function typing(conv: ConvId): void {
    const gid = groupIdOf(conv)
    if (!conn || (gid !== null && !groupTypingAllowed(state.groups[gid]))) return
    const last = typingSentAt.get(conv) ?? 0
    if (now() - last < TYPING_THROTTLE_MS) return
    if (conn.send({ type: 'typing', conv })) typingSentAt.set(conv, now())
  }

  // ---- people -----------------------------------------------------------------------------------------

  function remember(u: User): void {
    state.users[u.id] = u
  }

  function ensureUser(id: UserId): Promise<void> {
    if (state.users[id]) return Promise.resolve()
    let p = userFetches.get(id)
    if (!p) {
      p = api
        .user(id)
        .then(remember)
        .catch(() => {})
        .finally(() => userFetches.delete(id))
      userFetches.set(id, p)
    }
    return p
  }

  /** Friends and requests from the server. One fetch at a time; a call made while one is in flight (a
   * push that arrived meanwhile) runs it once more after it, and the promise settles after that: the answer
   * of a fetch begun before a change must not be the last word (it overwrote a friend just accepted). */
  function refreshFriends(): Promise<void> {
    if (friendsRefresh) {
      friendsAgain = true
      return friendsRefresh
    }
    friendsRefresh = (async () => {
      try {
        do {
          friendsAgain = false
          await fetchFriends()
        } while (friendsAgain)
      } finally {
        friendsRefresh = null
      }
    })()
    return friendsRefresh
  }

  async function fetchFriends(): Promise<void> {
    try {
      const askedAt = performance.now()
      const [friends, reqs] = await Promise.all([api.friends(), api.friendRequests()])
      const next: Record<UserId, { since: number }> = {}
      for (const f of friends) {
        remember(f.user)
        next[f.user.id] = { since: f.since }
        state.online[f.user.id] = f.online
        if (f.remark !== undefined) noteRemark(f.user.id, f.remark, askedAt)
        if (f.last_seen) state.lastSeen[f.user.id] = f.last_seen
      }
      state.friends = next
      for (const r of [...reqs.incoming, ...reqs.outgoing]) {
        remember(r.from)
        remember(r.to)
      }
      state.incoming = reqs.incoming
      state.outgoing = reqs.outgoing
    } catch {
      /* offline: the next reconnect refreshes */
    }
  }

  async function searchUsers(q: string): Promise<User[]> {
    const users = await api.searchUsers(q)
    users.forEach(remember)
    return users
  }

  async function requestFriend(to: UserId, note: string): Promise<void> {
    const r = await api.requestFriend(to, note.trim() || undefined)
    if (!state.outgoing.some((x) => x.id === r.id)) state.outgoing.unshift(r)
    toast('toast.requestSent', { name: displayName(r.to) })
  }

  async function answerRequest(id: number, accept: boolean): Promise<void> {
    try {
      const r = accept ? await api.acceptRequest(id) : await api.declineRequest(id)
      dropRequest(id)
      if (accept) {
        remember(r.from)
        state.friends[r.from.id] = { since: now() }
      }
      void refreshFriends()
    } catch (e) {
      toast(e instanceof ApiError ? e.code : 'internal', {}, 'error')
      void refreshFriends()
    }
  }

  async function removeFriend(id: UserId): Promise<void> {
    await api.removeFriend(id)
    delete state.friends[id]
  }

  async function updateProfile(patch: { nickname?: string; signature?: string; avatar?: string | null }): Promise<void> {
    const u = await api.updateMe(patch)
    state.me = u
    remember(u)
  }

  // ---- toasts ----------------------------------------------------------------------------------------

  function toast(key: string, params: Record<string, string | number> = {}, kind: Toast['kind'] = 'info'): void {
    const t: Toast = { id: ++toastId, key, params, kind }
    state.toasts.push(t)
    setTimeout(() => {
      state.toasts = state.toasts.filter((x) => x.id !== t.id)
    }, 4500)
  }

  return {
    state,
    /** The REST client, for settings pages that call one route and show its answer (exports, retention). */
    api,
    conversationList,
    totalUnread,
    contacts,
    groupList,
    displayName,
    convTitle,
    isSystemConv,
    convAvatar,
    senderName,
    myMember,
    myRole,
    writeBlock,
    isDnd,
    isTyping,
    mediaUrl,
    refreshMediaToken,
    ensureGroup,
    refreshGroups,
    loadMembers,
    ensureMyMembership,
    createGroup,
    inviteMembers,
    kick,
    muteMember,
    muteAll,
    setAdmin,
    transferOwner,
    editGroup,
    setGroupPrefs,
    leaveGroup,
    loadReceipts,
    receiptsOf,
    sendFile,
    sendMedia,
    retryUpload,
    cancelUpload,
    uploadsIn,
    setMyAvatar,
    setGroupAvatar,
    boot,
    login,
    ssoLogin,
    register,
    logout,
    reconnectNow,
    runSync,
    pull,
    loadOlder,
    openConv,
    jumpTo,
    searchMessages,
    openChatWith,
    markActiveRead,
    sendText,
    retry,
    discard,
    recall,
    typing,
    ensureUser,
    refreshFriends,
    searchUsers,
    requestFriend,
    answerRequest,
    removeFriend,
    updateProfile,
    toast,
    onCallFrame,
    onCallReady,
    callRequest,
    onAnyPush,
    noteRemark,
    remember,
    /** A request over the WebSocket (rejects with WsError on an `error` reply or when offline). */
    request: callRequest,
    /** For tests: feed a push as if it came from the socket. */
    _onPush: onPush,
  }
}
