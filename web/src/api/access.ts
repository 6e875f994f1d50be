/**
 * Access control and moderation over REST (protocol.md, "Registration and invites", "Join links and the group
 * directory", "Reports", "Admin console"): thin typed wrappers over `Api.authed`.
 */
import type { Api } from './rest'
import type { Group, GroupMember, Message, User, UserId } from './types'

export type RegistrationMode = 'open' | 'invite' | 'closed'

export interface ServerInfo {
  registration: RegistrationMode
  user_invites: boolean
}
export interface MyAccess {
  admin: boolean
  can_invite: boolean
}
export interface Invite {
  code: string
  created_by: UserId
  max_uses: number
  uses: number
  expires_at: number
  revoked: boolean
  note: string
  created_at: number
}
export interface GroupLink {
  code: string
  group_id: number
  created_by: UserId
  max_uses: number
  uses: number
  expires_at: number
  revoked: boolean
  created_at: number
}
export interface GroupCard {
  id: number
  name: string
  avatar: string | null
  member_count: number
  public: boolean
  join_approval: boolean
}
export interface LinkCard {
  code: string
  group: GroupCard
  member: boolean
  expires_at: number
}
export interface JoinRequest {
  id: number
  group_id: number
  user: User
  link: string
  status: 'pending' | 'approved' | 'declined'
  created_at: number
  decided_by: UserId | null
  decided_at: number | null
}
export interface JoinResult {
  group: Group | null
  request: JoinRequest | null
}
export type ReportKind = 'message' | 'user' | 'group'
export interface Report {
  id: number
  reporter: UserId
  kind: ReportKind
  target: string
  reason: string
  snapshot: { message?: Message; sender?: User | null; user?: User; group?: Group }
  status: 'open' | 'actioned' | 'dismissed'
  outcome: string
  handled_by: UserId | null
  handled_at: number | null
  note: string
  created_at: number
}
export interface UserRecord {
  user: User
  banned: boolean
  is_admin: boolean
  created_at: number
  banned_until: number
  ban_reason: string
  deleted: boolean
}
export interface ServerSettings {
  registration: RegistrationMode
  user_invites: boolean
  user_invite_max_uses: number
  user_invites_per_day: number
}
export interface AuditEntry {
  id: number
  ts: number
  actor: UserId
  action: string
  target: string
  reason: string
  address: string
  detail: Record<string, unknown>
}
/** One thing that happened to a traced message (`GET /admin/trace`); never its body. */
export interface TraceStep {
  step: 'received' | 'stored' | 'published' | 'delivered' | 'pulled' | 'read'
  at: number
  node: string
  conv?: string
  seq?: number
  user?: UserId
  users?: UserId[]
  terminals?: string[]
  after?: number
  upto?: number
  mode?: string
  cmid?: string
}
export interface Timeline {
  message: string
  conv: string | null
  seq: number | null
  sender: UserId | null
  steps: TraceStep[]
}
export interface NodeLoad {
  node: string
  alive: boolean
  [k: string]: unknown
}
export interface Stats {
  node: string
  figures: { name: string; value: number; labels: Record<string, string> }[]
  nodes: NodeLoad[]
  totals: Record<string, number>
}
export type ReportAction = 'recall' | 'ban' | 'freeze' | 'dismiss_group' | 'dismiss'

const q = (params: Record<string, string | number | undefined>): string => {
  const s = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, String(v))
  const text = s.toString()
  return text ? `?${text}` : ''
}
const enc = encodeURIComponent

/** What every user can do: sign-up rules, invites, links, requests, the directory, reports. */
export class AccessApi {
  constructor(private readonly api: Api) {}

  server = () => this.api.call<ServerInfo>('GET', '/server')
  myAccess = () => this.api.authed<MyAccess>('GET', '/me/access')
  createInvite = (b: { max_uses: number; ttl_s: number; note?: string }) => this.api.authed<Invite>('POST', '/invites', b)
  myInvites = () => this.api.authed<{ invites: Invite[] }>('GET', '/invites').then((r) => r.invites)
  directory = (text: string) =>
    this.api.authed<{ groups: GroupCard[] }>('GET', `/groups/directory${q({ q: text })}`).then((r) => r.groups)
  joinPublic = (id: number) => this.api.authed<JoinResult>('POST', `/groups/${id}/join`)
  links = (id: number) => this.api.authed<{ links: GroupLink[] }>('GET', `/groups/${id}/links`).then((r) => r.links)
  createLink = (id: number, b: { max_uses: number; ttl_s: number }) =>
    this.api.authed<GroupLink>('POST', `/groups/${id}/links`, b)
  revokeLink = (id: number, code: string) => this.api.authed<void>('DELETE', `/groups/${id}/links/${enc(code)}`)
  linkCard = (code: string) => this.api.authed<LinkCard>('GET', `/links/${enc(code)}`)
  joinByLink = (code: string) => this.api.authed<JoinResult>('POST', `/links/${enc(code)}/join`)
  requests = (id: number) =>
    this.api.authed<{ requests: JoinRequest[] }>('GET', `/groups/${id}/requests`).then((r) => r.requests)
  answer = (id: number, rid: number, approve: boolean) =>
    this.api.authed<JoinRequest>('POST', `/groups/${id}/requests/${rid}/${approve ? 'approve' : 'decline'}`)
  report = (b: { kind: ReportKind; target: string; reason: string }) => this.api.authed<Report>('POST', '/reports', b)
  myReports = () => this.api.authed<{ reports: Report[] }>('GET', '/reports').then((r) => r.reports)
}

/** The admin console's calls (`/api/v1/admin/*`): the server checks the caller is an admin on each. */
export class AdminApi {
  constructor(private readonly api: Api) {}

  stats = () => this.api.authed<Stats>('GET', '/admin/stats')
  users = (text: string, after = 0) =>
    this.api.authed<{ users: UserRecord[]; next_after: number | null }>('GET', `/admin/users${q({ q: text, after })}`)
  user = (id: UserId) => this.api.authed<UserRecord>('GET', `/admin/users/${id}`)
  createUser = (b: { username: string; password: string; nickname?: string; admin?: boolean }) =>
    this.api.authed<UserRecord>('POST', '/admin/users', b)
  ban = (id: UserId, seconds: number, reason: string) =>
    this.api.authed<UserRecord>('PUT', `/admin/users/${id}/ban`, { seconds, reason })
  unban = (id: UserId) => this.api.authed<UserRecord>('DELETE', `/admin/users/${id}/ban`)
  logout = (id: UserId, reason = '') => this.api.authed<{ sessions: number }>('POST', `/admin/users/${id}/logout`, { reason })
  resetPassword = (id: UserId) => this.api.authed<{ password: string }>('POST', `/admin/users/${id}/password`, {})
  setAdmin = (id: UserId, admin: boolean) => this.api.authed<UserRecord>(admin ? 'PUT' : 'DELETE', `/admin/users/${id}/admin`)
  deleteUser = (id: UserId, reason: string) =>
    this.api.authed<UserRecord>('DELETE', `/admin/users/${id}${q({ reason })}`)
  groups = (text: string, after = 0) =>
    this.api.authed<{ groups: Group[]; next_after: number | null }>('GET', `/admin/groups${q({ q: text, after })}`)
  members = (id: number) =>
    this.api.authed<{ members: GroupMember[]; next_after: number | null }>('GET', `/admin/groups/${id}/members`)
  freeze = (id: number, frozen: boolean, reason = '') =>
    frozen
      ? this.api.authed<Group>('PUT', `/admin/groups/${id}/freeze`, { reason })
      : this.api.authed<Group>('DELETE', `/admin/groups/${id}/freeze${q({ reason })}`)
  dismiss = (id: number, reason = '') => this.api.authed<Group>('DELETE', `/admin/groups/${id}${q({ reason })}`)
  transfer = (id: number, user: UserId, reason = '') =>
    this.api.authed<Group>('POST', `/admin/groups/${id}/owner`, { user, reason })
  reports = (status: string) =>
    this.api.authed<{ reports: Report[]; next_before: number | null }>('GET', `/admin/reports${q({ status })}`)
  resolve = (id: number, b: { action: ReportAction; note?: string; ban_seconds?: number }) =>
    this.api.authed<Report>('POST', `/admin/reports/${id}/resolve`, b)
  words = () => this.api.authed<{ words: string[]; mode: string }>('GET', '/admin/words')
  changeWords = (add: string[], remove: string[]) =>
    this.api.authed<{ words: string[]; mode: string }>('POST', '/admin/words', { add, remove })
  notice = (text: string, user?: UserId) =>
    this.api.authed<{ sent: number }>('POST', '/admin/notices', user ? { text, user } : { text })
  settings = () => this.api.authed<ServerSettings>('GET', '/admin/settings')
  changeSettings = (patch: Partial<ServerSettings>) => this.api.authed<ServerSettings>('PATCH', '/admin/settings', patch)
  invites = () => this.api.authed<{ invites: Invite[] }>('GET', '/admin/invites').then((r) => r.invites)
  createInvite = (b: { max_uses: number; ttl_s: number; note?: string }) =>
    this.api.authed<Invite>('POST', '/admin/invites', b)
  revokeInvite = (code: string) => this.api.authed<Invite>('DELETE', `/admin/invites/${enc(code)}`)
  trace = (f: { id?: string; sender?: number; cmid?: string }) =>
    this.api.authed<Timeline>('GET', `/admin/trace${q(f)}`)
  audit = (f: { action?: string; target?: string; actor?: number; before?: number }) =>
    this.api.authed<{ entries: AuditEntry[]; next_before: number | null }>('GET', `/admin/audit${q(f)}`)
  /** The JSON-lines export, fetched with the token (a plain link could not carry it) and saved as a file. */
  async exportAudit(f: { action?: string; target?: string }): Promise<Blob> {
    const token = await this.api.session.accessToken()
    const res = await fetch(`/api/v1/admin/audit/export${q(f)}`, { headers: { Authorization: `Bearer ${token}` } })
    if (!res.ok) throw new Error(`export failed: ${res.status}`)
    return await res.blob()
  }
}
