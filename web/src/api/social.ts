/**
 * Sessions, profiles, blocking and chat preferences over REST (protocol.md, "Sessions, profiles, blocking
 * and chat preferences"): thin typed wrappers over `Api.authed`, and the push frames that keep them live.
 */
import type { Api } from './rest'
import type { ConvId, Terminal, User, UserId } from './types'

export type LastSeenPrivacy = 'everyone' | 'friends' | 'nobody'

export interface Profile {
  user: User
  remark: string
  friend: boolean
  blocked: boolean
  blocked_me: boolean
  online: boolean
  terminals: Terminal[]
  last_seen: number | null
}
export interface Privacy {
  last_seen: LastSeenPrivacy
}
export interface Block {
  user: User
  since: number
}
export interface SessionInfo {
  id: string
  created_at: number
  last_active: number
  current: boolean
  /** Its live connections now (may be absent from servers that do not report them). */
  online?: { terminal: Terminal; device?: string }[]
}
export interface ChatPrefs {
  conv: ConvId
  /** Pin time in ms (0: not pinned): pinned chats sort by it, newest first. */
  pinned: number
  muted: boolean
  archived: boolean
  marked_unread: boolean
  updated_at?: number
}
export type ChatPrefsPatch = Partial<Pick<ChatPrefs, 'muted' | 'archived' | 'marked_unread'>> & { pinned?: boolean }

export type SocialPush =
  | { type: 'profile'; user: User }
  | { type: 'remark'; user: UserId; remark: string }
  | { type: 'block'; event: 'blocked' | 'unblocked'; user: User }
  | { type: 'prefs'; prefs: ChatPrefs }
  | { type: 'receipts'; conv: ConvId; counts: { seq: number; read: number; total: number }[] }

export class SocialApi {
  constructor(private readonly api: Api) {}

  profile = (id: UserId) => this.api.authed<Profile>('GET', `/users/${id}/profile`)
  setRemark = (id: UserId, remark: string) =>
    this.api.authed<{ user: UserId; remark: string }>('PUT', `/contacts/${id}/remark`, { remark })
  privacy = () => this.api.authed<Privacy>('GET', '/me/privacy')
  setPrivacy = (p: Partial<Privacy>) => this.api.authed<Privacy>('PATCH', '/me/privacy', p)

  blocks = () => this.api.authed<{ blocks: Block[] }>('GET', '/blocks').then((r) => r.blocks)
  block = (id: UserId) => this.api.authed<Block>('PUT', `/blocks/${id}`)
  unblock = (id: UserId) => this.api.authed<void>('DELETE', `/blocks/${id}`)

  chatPrefs = () => this.api.authed<{ prefs: ChatPrefs[] }>('GET', '/me/chat_prefs').then((r) => r.prefs)
  setChatPrefs = (conv: ConvId, patch: ChatPrefsPatch) =>
    this.api.authed<ChatPrefs>('PATCH', `/conversations/${encodeURIComponent(conv)}/prefs`, patch)

  sessions = () => this.api.authed<{ sessions: SessionInfo[] }>('GET', '/me/sessions').then((r) => r.sessions)
  endSession = (id: string) => this.api.authed<void>('DELETE', `/me/sessions/${encodeURIComponent(id)}`)
  logoutOthers = () => this.api.authed<{ ended: number }>('POST', '/me/sessions/logout_others')
  /** A wrong old password is 401 `unauthorized` and must not end the session: like `closeAccount`, this goes
   * around `authed`'s 401 handling, after a call through it that refreshes an expired access token. */
  async changePassword(oldPassword: string, newPassword: string, logoutOthers: boolean): Promise<void> {
    await this.api.me()
    const body = { old_password: oldPassword, new_password: newPassword, logout_others: logoutOthers }
    await this.api.call<void>('POST', '/auth/password', body, this.api.session.value?.access_token)
  }
}
