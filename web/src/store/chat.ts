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
  convKind,
  peerOf,
  privateConvId,
  type AckFrame,
  type ClientFrame,
  type ConvId,
  type FriendFrame,
  type FriendRequest,
  type Message,
  type MessagesFrame,
  type PushFrame,
  type SendFrame,
  type ServerFrame,
  type SyncResultFrame,
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
  newConv,
  prependHistory,
  readableSeq,
  receive,
  type ConvState,
  type Outgoing,
} from './convs'

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
    /** The first sync after login has completed: the conversation list is real. */
    synced: false,
    convs: {} as Record<ConvId, ConvState>,
    users: {} as Record<UserId, User>,
    friends: {} as Record<UserId, { since: number }>,
    online: {} as Record<UserId, boolean>,
    incoming: [] as FriendRequest[],
    outgoing: [] as FriendRequest[],
    activeConv: null as ConvId | null,
    typing: {} as Record<ConvId, { user: UserId; until: number }>,
    loadingHistory: {} as Record<ConvId, boolean>,
    toasts: [] as Toast[],
    /** Why the user was logged out, for the login screen. */
    endedReason: null as string | null,
  })

  let conn: ConnectionLike | null = null
  const pulling = new Set<ConvId>()
  const repull = new Set<ConvId>()
  const typingSentAt = new Map<ConvId, number>()
  const typingTimers = new Map<ConvId, ReturnType<typeof setTimeout>>()
  const userFetches = new Map<UserId, Promise<void>>()
  let toastId = 0
  let friendsRefresh: Promise<void> | null = null

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
    return user.nickname || user.username
  }

  function convTitle(conv: ConvId): string {
    const c = state.convs[conv]
    if (convKind(conv) === 'group') return `# ${conv.slice(2)}` // groups land later: their name comes from the group
    return displayName(c?.peer ?? peerOf(conv, meId()))
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
    restoreOutbox()
    connect()
    return true
  }

  async function login(username: string, password: string): Promise<void> {
    const u = await api.login(username, password)
    afterLogin(u)
  }

  async function register(username: string, password: string, nickname?: string): Promise<void> {
    const u = await api.register(username, password, nickname)
    afterLogin(u)
  }

  function afterLogin(u: User): void {
    reset()
    state.me = u
    remember(u)
    restoreOutbox()
    connect()
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
    pulling.clear()
    repull.clear()
  }

  function connect(): void {
    const opts: ConnectionOptions = {
      url: deps.wsUrl,
      terminal: 'web',
      getToken: () => api.session.accessToken(),
      refreshToken: () => api.session.refresh(),
      onReady: (auth) => {
        state.me = auth.user
        remember(auth.user)
        api.session.updateUser(auth.user)
        void onConnected()
      },
      onPush: (f) => onPush(f),
      onStatus: (s, d) => {
        state.status = s
        state.retryInMs = d?.retryInMs ?? 0
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
      for (let round = 0; round < 1000; round++) {
        const c = state.convs[conv]
        if (!c || !conn) return
        repull.delete(conv)
        const r = await conn.request<MessagesFrame>({ type: 'pull', conv, after_seq: c.have, limit: PULL_LIMIT })
        const res = receive(c, r.messages, meId())
        afterAppend(conv, res.appended, false)
        if (r.has_more || repull.has(conv)) continue
        if (res.gapAfter !== null && r.messages.length > 0) continue
        break
      }
    } catch {
      // Disconnected or refused: the next sync fills the hole.
    } finally {
      pulling.delete(conv)
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
      for (const m of r.messages) void ensureUser(m.sender)
      return prependHistory(c, r.messages, r.has_more)
    } catch {
      return 0
    } finally {
      state.loadingHistory[conv] = false
    }
  }

  // ---- pushes ----------------------------------------------------------------------------------------

  function onPush(f: PushFrame): void {
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
        return
      case 'friend':
        onFriendEvent(f)
        return
    }
  }

  function afterAppend(conv: ConvId, appended: Message[], live: boolean): void {
    if (appended.length === 0) return
    if (conv === state.activeConv) markActiveRead()
    if (!live || !deps.notify) return
    const me = meId()
    for (const m of appended) {
      if (isCountable(m, me) && (!isVisible() || conv !== state.activeConv)) {
        deps.notify({ title: convTitle(conv), body: m, conv })
      }
    }
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
    }
    return c
  }

  function openConv(conv: ConvId | null): void {
    state.activeConv = conv
    if (!conv) return
    const c = ensureConv(conv, null)
    if (c.messages.length < 20 && historyCursor(c) !== null) void loadOlder(conv)
    markActiveRead()
  }

  function openChatWith(user: UserId): ConvId {
    const conv = privateConvId(meId(), user)
    openConv(conv)
    return conv
  }

  // ---- sending ----------------------------------------------------------------------------------------

  function sendText(conv: ConvId, raw: string): boolean {
    const text = raw.replace(/\s+$/, '')
    if (!text.trim() || !state.me) return false
    if ([...text].length > 4000) {
      toast('err.too_long', {}, 'error')
      return false
    }
    const c = ensureConv(conv, null)
    const out: Outgoing = {
      cmid: newCmid(),
      conv,
      to: convKind(conv) === 'private' ? c.peer : null,
      type: 'text',
      text,
      ts: now(),
      status: 'sending',
    }
    c.outbox.push(out)
    typingSentAt.delete(conv)
    void flush(c.outbox[c.outbox.length - 1]!)
    return true
  }

  function sendFrame(o: Outgoing): SendFrame {
    const f: SendFrame = { type: 'send', cmid: o.cmid, msg_type: 'text', body: { text: o.text } }
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
    if (convKind(conv) !== 'private' || !conn) return
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

  function refreshFriends(): Promise<void> {
    friendsRefresh ??= (async () => {
      try {
        const [friends, reqs] = await Promise.all([api.friends(), api.friendRequests()])
        const next: Record<UserId, { since: number }> = {}
        for (const f of friends) {
          remember(f.user)
          next[f.user.id] = { since: f.since }
          state.online[f.user.id] = f.online
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
      } finally {
        friendsRefresh = null
      }
    })()
    return friendsRefresh
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

  async function updateProfile(patch: { nickname?: string; signature?: string }): Promise<void> {
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
    conversationList,
    totalUnread,
    contacts,
    displayName,
    convTitle,
    isTyping,
    boot,
    login,
    register,
    logout,
    reconnectNow,
    runSync,
    pull,
    loadOlder,
    openConv,
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
    /** For tests: feed a push as if it came from the socket. */
    _onPush: onPush,
  }
}
