/**
 * REST client for `/api/v1` (protocol.md, "REST API"). Every call returns the parsed body or throws an
 * ApiError carrying the server's machine-readable `code`. An authenticated call that meets
 * `401 token_expired` refreshes the session once and retries.
 */
import { Session, SessionExpired } from './session'
import type {
  Ack,
  Bot,
  BotScope,
  BotToken,
  CreatedIncoming,
  Delivery,
  HookEvent,
  IncomingHook,
  IssuedToken,
  OutgoingHook,
  ConversationRow,
  ConvId,
  ExportView,
  Friend,
  FriendRequest,
  Group,
  GroupMember,
  IceServers,
  InvitePolicy,
  MediaKind,
  Message,
  AroundPage,
  SearchResults,
  Receipts,
  Retention,
  SsoProvider,
  Tokens,
  Upload,
  User,
  UserId,
} from './types'

export class ApiError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
    public readonly retryAfter?: number,
  ) {
    super(message)
  }
}

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'

export class Api {
  readonly session: Session
  /** Called when the server says the session is over (revoked, or refresh refused). */
  onSessionEnded: (code: string) => void = () => {}

  constructor(
    storage: Storage,
    private readonly base = '',
    private readonly fetchImpl: typeof fetch = (...a) => fetch(...a),
  ) {
    this.session = new Session(storage, (rt) => this.call<Tokens>('POST', '/auth/refresh', { refresh_token: rt }))
  }

  // ---- auth -----------------------------------------------------------------------------------------
  async register(username: string, password: string, nickname?: string, invite?: string): Promise<User> {
    const body: Record<string, string> = { username, password }
    if (nickname) body.nickname = nickname
    if (invite) body.invite = invite
    return this.session.set(await this.call<Tokens>('POST', '/auth/register', body)).user
  }

  async login(username: string, password: string): Promise<User> {
    return this.session.set(await this.call<Tokens>('POST', '/auth/login', { username, password })).user
  }

  /** Single sign-on: the login page's buttons, and the one-time ticket of the callback exchanged for tokens. */
  ssoProviders = () => this.call<{ providers: SsoProvider[] }>('GET', '/auth/oidc/providers')
  async ssoExchange(ticket: string): Promise<User> {
    return this.session.set(await this.call<Tokens>('POST', '/auth/oidc/exchange', { ticket })).user
  }

  async logout(): Promise<void> {
    const s = this.session.value
    this.session.clear()
    if (s) await this.call<void>('POST', '/auth/logout', { refresh_token: s.refresh_token }).catch(() => {})
  }

  // ---- profile and users ----------------------------------------------------------------------------
  me = () => this.authed<User>('GET', '/me')
  async updateMe(patch: { nickname?: string; signature?: string; avatar?: string | null }): Promise<User> {
    const u = await this.authed<User>('PATCH', '/me', patch)
    this.session.updateUser(u)
    return u
  }
  user = (id: UserId) => this.authed<User>('GET', `/users/${id}`)
  /** Close my account (protocol.md, "Closing an account"): the session ends with it. A wrong password is
   * 401 `unauthorized` but must not end the session, so this goes around `authed`'s 401 handling (after a
   * call through it, which refreshes an expired access token). */
  async closeAccount(password: string): Promise<void> {
    await this.me()
    await this.call<void>('DELETE', '/me', { password }, this.session.value?.access_token)
  }

  // ---- data lifecycle -------------------------------------------------------------------------------
  requestExport = () => this.authed<ExportView>('POST', '/exports')
  exports = () => this.authed<{ exports: ExportView[] }>('GET', '/exports').then((r) => r.exports)
  retention = (conv: ConvId) => this.authed<Retention>('GET', `/conversations/${encodeURIComponent(conv)}/retention`)
  setRetention = (conv: ConvId, days: number | null) =>
    this.authed<Retention>('PUT', `/conversations/${encodeURIComponent(conv)}/retention`, { days })
  searchUsers = (q: string, limit = 20) =>
    this.authed<{ users: User[] }>('GET', `/users?q=${encodeURIComponent(q)}&limit=${limit}`).then((r) => r.users)

  // ---- friends --------------------------------------------------------------------------------------
  friends = () => this.authed<{ friends: Friend[] }>('GET', '/friends').then((r) => r.friends)
  removeFriend = (id: UserId) => this.authed<void>('DELETE', `/friends/${id}`)
  friendRequests = () => this.authed<{ incoming: FriendRequest[]; outgoing: FriendRequest[] }>('GET', '/friends/requests')
  requestFriend = (to: UserId, note?: string) =>
    this.authed<FriendRequest>('POST', '/friends/requests', note ? { to, note } : { to })
  acceptRequest = (id: number) => this.authed<FriendRequest>('POST', `/friends/requests/${id}/accept`)
  declineRequest = (id: number) => this.authed<FriendRequest>('POST', `/friends/requests/${id}/decline`)

  // ---- messages (the WebSocket is the usual path; these are the fallbacks) ----------------------------
  send = (m: { cmid: string; to?: UserId; conv?: ConvId; type: 'text' | MediaKind; body: Record<string, unknown> }) =>
    this.authed<Ack>('POST', '/messages', m)
  conversations = () =>
    this.authed<{ conversations: ConversationRow[] }>('GET', '/conversations').then((r) => r.conversations)
  messages = (conv: ConvId, q: { after_seq?: number; before_seq?: number; limit?: number }) => {
    const qs = new URLSearchParams()
    for (const [k, v] of Object.entries(q)) if (v !== undefined) qs.set(k, String(v))
    return this.authed<{ messages: Message[]; has_more: boolean }>(
      'GET',
      `/conversations/${encodeURIComponent(conv)}/messages?${qs}`,
    )
  }

  // ---- calls ----------------------------------------------------------------------------------------
  /** STUN/TURN servers, with TURN credentials for this user valid for `ttl_s` seconds. */
  iceServers = () => this.authed<IceServers>('GET', '/calls/ice')

  // ---- groups ---------------------------------------------------------------------------------------
  groups = () => this.authed<{ groups: Group[] }>('GET', '/groups').then((r) => r.groups)
  group = (id: number) => this.authed<Group>('GET', `/groups/${id}`)
  createGroup = (b: { name: string; members: UserId[]; notice?: string; avatar?: string }) =>
    this.authed<Group>('POST', '/groups', b)
  editGroup = (
    id: number,
    patch: {
      name?: string
      notice?: string
      avatar?: string | null
      invite_policy?: InvitePolicy
      hot?: boolean
      public?: boolean
      join_approval?: boolean
    },
  ) => this.authed<Group>('PATCH', `/groups/${id}`, patch)
  dismissGroup = (id: number) => this.authed<void>('DELETE', `/groups/${id}`)
  groupMembers = (id: number, after = 0, limit = 100) =>
    this.authed<{ members: GroupMember[]; next_after: number | null }>(
      'GET',
      `/groups/${id}/members?after=${after}&limit=${limit}`,
    )
  invite = (id: number, users: UserId[]) => this.authed<Group>('POST', `/groups/${id}/members`, { users })
  /** Kick `user`, or quit when it is me. */
  removeMember = (id: number, user: UserId) => this.authed<void>('DELETE', `/groups/${id}/members/${user}`)
  transferOwner = (id: number, user: UserId) => this.authed<Group>('POST', `/groups/${id}/owner`, { user })
  setAdmin = (id: number, user: UserId, admin: boolean) =>
    this.authed<Group>(admin ? 'PUT' : 'DELETE', `/groups/${id}/admins/${user}`)
  mute = (id: number, user: UserId, seconds: number) =>
    this.authed<Group>('POST', `/groups/${id}/mutes`, { user, seconds })
  muteAll = (id: number, muted: boolean) => this.authed<Group>('POST', `/groups/${id}/mute_all`, { muted })
  groupPrefs = (id: number, patch: { nickname?: string; dnd?: boolean }) =>
    this.authed<GroupMember>('PATCH', `/groups/${id}/me`, patch)
  /** Search the messages I may read (protocol.md, "Search"); `conv` limits it to one conversation. */
  search = (q: string, opts: { conv?: ConvId; cursor?: string; limit?: number } = {}) => {
    const qs = new URLSearchParams({ q })
    if (opts.conv) qs.set('conv', opts.conv)
    if (opts.cursor) qs.set('cursor', opts.cursor)
    if (opts.limit) qs.set('limit', String(opts.limit))
    return this.authed<SearchResults>('GET', `/search?${qs}`)
  }

  /** The page of history around `seq`, to open a conversation at a search result. */
  around = (conv: ConvId, seq: number, before = 25, after = 25) =>
    this.authed<AroundPage>(
      'GET',
      `/conversations/${encodeURIComponent(conv)}/messages/${seq}/around?before=${before}&after=${after}`,
    )

  receipts = (id: number, seq: number) => this.authed<Receipts>('GET', `/groups/${id}/messages/${seq}/receipts`)

  // ---- integrations (docs/integrations.md): bots, their tokens, incoming and outgoing webhooks -------------
  bots = () => this.authed<{ bots: Bot[] }>('GET', '/bots').then((r) => r.bots)
  createBot = (username: string, nickname?: string) =>
    this.authed<Bot>('POST', '/bots', nickname ? { username, nickname } : { username })
  botTokens = (bot: UserId) => this.authed<{ tokens: BotToken[] }>('GET', `/bots/${bot}/tokens`).then((r) => r.tokens)
  /** The answer's `secret` is the only time the token is shown: the server keeps it hashed. */
  issueBotToken = (bot: UserId, scopes: BotScope[], name = '') =>
    this.authed<IssuedToken>('POST', `/bots/${bot}/tokens`, { scopes, name })
  revokeBotToken = (bot: UserId, token: number) => this.authed<void>('DELETE', `/bots/${bot}/tokens/${token}`)
  incomingHooks = () => this.authed<{ hooks: IncomingHook[] }>('GET', '/webhooks/incoming').then((r) => r.hooks)
  /** The answer's `url` is the only time the hook's secret path is shown. */
  createIncomingHook = (b: { conv: ConvId; bot_id: UserId; name?: string }) =>
    this.authed<CreatedIncoming>('POST', '/webhooks/incoming', b)
  revokeIncomingHook = (id: number) => this.authed<void>('DELETE', `/webhooks/incoming/${id}`)
  outgoingHooks = () => this.authed<{ hooks: OutgoingHook[] }>('GET', '/webhooks/outgoing').then((r) => r.hooks)
  createOutgoingHook = (b: { conv: ConvId; url: string; events: HookEvent[]; bot_id?: UserId }) =>
    this.authed<OutgoingHook>('POST', '/webhooks/outgoing', b)
  deleteOutgoingHook = (id: number) => this.authed<void>('DELETE', `/webhooks/outgoing/${id}`)
  enableOutgoingHook = (id: number) => this.authed<OutgoingHook>('POST', `/webhooks/outgoing/${id}/enable`)
  /** The last attempts, newest first (at most 50). */
  hookDeliveries = (id: number, limit = 20) =>
    this.authed<{ deliveries: Delivery[] }>('GET', `/webhooks/outgoing/${id}/deliveries?limit=${limit}`).then(
      (r) => r.deliveries,
    )

  // ---- media ----------------------------------------------------------------------------------------
  /**
   * Upload a file with progress (XMLHttpRequest: fetch cannot report upload progress). The raw bytes are the
   * body; kind and name go in the query. `abort()` cancels; the promise then rejects with code `aborted`.
   */
  upload(
    file: Blob,
    kind: MediaKind,
    name: string,
    onProgress: (sent: number, total: number) => void = () => {},
    /** Seconds, for voice and video: the server keeps it when the file does not say (protocol.md). */
    duration?: number,
  ): { promise: Promise<Upload>; abort: () => void } {
    let xhr: XMLHttpRequest | null = null
    let aborted = false
    const attempt = (token: string) =>
      new Promise<Upload>((resolve, reject) => {
        const x = new XMLHttpRequest()
        xhr = x
        const dur = duration && duration > 0 ? `&duration=${duration.toFixed(1)}` : ''
        x.open('POST', `${this.base}/api/v1/uploads?kind=${kind}&name=${encodeURIComponent(name)}${dur}`)
        x.setRequestHeader('Authorization', `Bearer ${token}`)
        x.setRequestHeader('Content-Type', 'application/octet-stream')
        x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size)
        x.onload = () => {
          let data: unknown
          try {
            data = JSON.parse(x.responseText)
          } catch {
            data = undefined
          }
          if (x.status >= 200 && x.status < 300) resolve(data as Upload)
          else {
            const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error
            reject(new ApiError(x.status, err?.code ?? `http_${x.status}`, err?.message ?? x.statusText))
          }
        }
        x.onerror = () => reject(new ApiError(0, 'network', 'network error'))
        x.onabort = () => reject(new ApiError(0, 'aborted', 'upload cancelled'))
        x.send(file)
      })
    const promise = (async () => {
      const token = await this.session.accessToken()
      if (aborted) throw new ApiError(0, 'aborted', 'upload cancelled')
      try {
        return await attempt(token)
      } catch (e) {
        if (!(e instanceof ApiError) || e.code !== 'token_expired' || aborted) throw e
        return await attempt((await this.session.refresh()).access_token)
      }
    })()
    return {
      promise,
      abort: () => {
        aborted = true
        xhr?.abort()
      },
    }
  }

  /** A URL for `<img src>` / `<audio src>`: the token goes in the query (media.md, "Download"). */
  mediaUrl(id: string, token: string, thumb = false): string {
    const safe = encodeURIComponent(id)
    return `${this.base}/api/v1/uploads/${safe}${thumb ? '/thumb' : ''}?access_token=${encodeURIComponent(token)}`
  }

  // ---- plumbing -------------------------------------------------------------------------------------
  /** An authenticated call: refresh before if the token is about to expire, and once more on token_expired. */
  async authed<T>(method: Method, path: string, body?: unknown): Promise<T> {
    try {
      const token = await this.session.accessToken()
      try {
        return await this.call<T>(method, path, body, token)
      } catch (e) {
        if (!(e instanceof ApiError) || e.code !== 'token_expired') throw e
        const fresh = await this.session.refresh()
        return await this.call<T>(method, path, body, fresh.access_token)
      }
    } catch (e) {
      if (e instanceof SessionExpired) {
        this.onSessionEnded(e.code)
        throw new ApiError(401, e.code, 'session ended')
      }
      if (e instanceof ApiError && e.status === 401 && (e.code === 'token_revoked' || e.code === 'unauthorized')) {
        this.session.clear()
        this.onSessionEnded(e.code)
      }
      throw e
    }
  }

  async call<T>(method: Method, path: string, body?: unknown, token?: string): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (token) headers.Authorization = `Bearer ${token}`
    let res: Response
    try {
      res = await this.fetchImpl(`${this.base}/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (e) {
      throw new ApiError(0, 'network', (e as Error).message || 'network error')
    }
    if (res.status === 204) return undefined as T
    const text = await res.text()
    let data: unknown = undefined
    if (text) {
      try {
        data = JSON.parse(text)
      } catch {
        /* not JSON: handled below */
      }
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string; retry_after?: number } } | undefined)?.error
      throw new ApiError(res.status, err?.code ?? 'http_' + res.status, err?.message ?? res.statusText, err?.retry_after)
    }
    return data as T
  }
}
