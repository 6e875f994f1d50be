/**
 * Wire types, transcribed from docs/protocol.md. Keep this file a faithful copy of the contract:
 * the rest of the client depends on these names only.
 */

export type UserId = number
/** `p:<a>:<b>` (private, a < b) or `g:<group id>`. */
export type ConvId = string

export interface User {
  id: UserId
  username: string
  nickname: string
  signature: string
  avatar: string | null
  /** The server's own account (the sender of notices): shown with a badge; its name is reserved. */
  system?: boolean
  /** A closed account: show "Deleted user" (protocol.md, "Closing an account"). */
  deleted?: boolean
  /** A bot account (docs/integrations.md): shown with a "bot" badge. */
  bot?: boolean
}

/** A single sign-on provider for the login page (protocol.md, "Integrations"). */
export interface SsoProvider {
  id: string
  name: string
  /** Open this URL to sign in. */
  start: string
}

/** Known message types; anything else is rendered as a placeholder. */
export type MessageType = 'text' | 'recall' | 'image' | 'file' | 'voice' | 'video' | 'system' | (string & {})

export interface Message {
  id: string
  conv: ConvId
  seq: number
  sender: UserId
  type: MessageType
  /** `{text, mentions?, mention_all?}` for text, `{seq}` for a recall notice, `{event, actor, …}` for system,
   * an `Upload` (+ `caption`, `poster`) for media, `{}` once recalled. */
  body: Record<string, unknown>
  ts: number
  cmid: string | null
  recalled: boolean
}

export interface Tokens {
  user: User
  access_token: string
  refresh_token: string
  expires_in: number
}

export interface FriendRequest {
  id: number
  from: User
  to: User
  note: string
  status: 'pending' | 'accepted' | 'declined'
  ts: number
}

export interface Friend {
  user: User
  since: number
  online: boolean
  /** My private alias for them ("" none) and when they were last online (issue 15; when I may see it). */
  remark?: string
  last_seen?: number | null
}

export interface Ack {
  cmid: string
  id: string
  conv: ConvId
  seq: number
  ts: number
}

/** One row of the conversation list (`GET /conversations`, `sync_result`). */
export interface ConversationRow {
  conv: ConvId
  peer: UserId | null
  max_seq: number
  read_seq: number
  peer_read_seq: number
  unread: number
  last: Message | null
  /** A message newer than read_seq @mentions me (groups). */
  mention?: boolean
  /** The group id for `g:` conversations, else null. */
  group?: number | null
  /** Retention removed every message at or below this seq (protocol.md, "Retention and the purged floor"). */
  floor?: number
}

export type Terminal = 'web' | 'mobile' | 'desktop'

// ---- groups ------------------------------------------------------------------------------------------

export type GroupRole = 'owner' | 'admin' | 'member'
export type InvitePolicy = 'members' | 'admins'

export interface Group {
  id: number
  conv: ConvId
  name: string
  avatar: string | null
  notice: string
  owner: UserId
  invite_policy: InvitePolicy
  muted_all: boolean
  dismissed: boolean
  member_count: number
  created_at: number
  hot: boolean
  /** Frozen by a server admin: read-only. */
  frozen?: boolean
  /** Listed in the public directory (issue 20). */
  public?: boolean
  /** Joins by link or from the directory need an admin's approval. */
  join_approval?: boolean
  /** Who may pin messages (issue 14): `admins` (default) or `members`. */
  pin_policy?: 'admins' | 'members'
}

export interface GroupMember {
  user: User
  role: GroupRole
  nickname: string
  dnd: boolean
  /** ms since the epoch; 0 when not muted. */
  muted_until: number
  joined_at: number
}

export interface Receipts {
  conv: ConvId
  seq: number
  read: number
  total: number
  readers: UserId[]
}

/** `body.event` of a `system` message (protocol.md, "Group system messages"). */
export type SystemEvent =
  | 'created'
  | 'joined'
  | 'left'
  | 'kicked'
  | 'owner_changed'
  | 'admin_added'
  | 'admin_removed'
  | 'muted'
  | 'unmuted'
  | 'muted_all'
  | 'unmuted_all'
  | 'edited'
  | 'dismissed'

// ---- media (docs/media.md) -----------------------------------------------------------------------------

export type MediaKind = 'image' | 'file' | 'voice' | 'video'

export interface Upload {
  upload: string
  kind: MediaKind
  name: string
  size: number
  mime: string
  width?: number
  height?: number
  thumb?: { width: number; height: number }
  duration?: number
}

/** The server's limits (`auth_ok.limits`). */
export interface Limits {
  max_text_chars: number
  max_frame_bytes: number
  recall_window_s: number
  /** Message actions (protocol.md): absent from older servers, the client then uses the documented defaults. */
  edit_window_s?: number
  max_reactions?: number
  forward_max_items?: number
  forward_max_targets?: number
}

export const DEFAULT_LIMITS: Limits = { max_text_chars: 4000, max_frame_bytes: 65536, recall_window_s: 120 }

// ---- WebSocket frames: client -> server ----------------------------------------------------------

export type Rid = string | number

export type ClientFrame =
  | { type: 'visibility'; state: 'foreground' | 'background'; rid?: string | number }
  | { type: 'auth'; token: string; terminal: Terminal; device?: string }
  | { type: 'ping' }
  | SendFrame
  | { type: 'sync'; rid?: Rid }
  | { type: 'pull'; rid?: Rid; conv: ConvId; after_seq: number; limit?: number }
  | { type: 'history'; rid?: Rid; conv: ConvId; before_seq?: number; limit?: number }
  | { type: 'read'; rid?: Rid; conv: ConvId; seq: number }
  | { type: 'recall'; rid?: Rid; conv: ConvId; seq: number }
  | { type: 'typing'; conv: ConvId }
  | { type: 'receipts'; rid?: Rid; conv: ConvId; seq: number }
  | ActionFrame
  | { type: 'call_invite'; rid?: Rid; to: UserId; media: CallMedia }
  | {
      type: 'call_ring' | 'call_accept' | 'call_reject' | 'call_cancel' | 'call_hangup' | 'call_resume'
      rid?: Rid
      call: string
    }
  | { type: 'call_sdp'; rid?: Rid; call: string; kind: 'offer' | 'answer'; sdp: string }
  | { type: 'call_ice'; rid?: Rid; call: string; candidate: RTCIceCandidateInit | null }

// ---- calls (protocol.md, "Calls") ------------------------------------------------------------------
export type CallMedia = 'audio' | 'video'
export interface CallInfo {
  id: string
  caller: UserId
  callee: UserId
  media: CallMedia
  state: 'ringing' | 'active' | 'ended'
  created_at: number
  accepted_at?: number
}
export type CallEndReason = 'hangup' | 'declined' | 'cancelled' | 'timeout' | 'answered_elsewhere' | 'lost'
export interface CallInvitedFrame { type: 'call_invited'; rid?: Rid; call: CallInfo }
export interface CallIncomingFrame { type: 'call_incoming'; call: CallInfo }
export interface CallRingingFrame { type: 'call_ringing'; call: string }
export interface CallAcceptedFrame { type: 'call_accepted'; call: string; media: CallMedia }
export interface CallEndedFrame { type: 'call_ended'; call: string; reason: CallEndReason; duration_ms?: number; by?: UserId }
export interface CallSdpFrame { type: 'call_sdp'; call: string; kind: 'offer' | 'answer'; sdp: string }
export interface CallIceFrame { type: 'call_ice'; call: string; candidate?: RTCIceCandidateInit }
export type CallPushFrame =
  | CallIncomingFrame
  | CallRingingFrame
  | CallAcceptedFrame
  | CallEndedFrame
  | CallSdpFrame
  | CallIceFrame
/** The body of a `call` message: the record a call leaves in the private conversation. */
export interface CallRecord {
  kind: 'missed' | 'declined' | 'cancelled' | 'completed'
  media: CallMedia
  call: string
  duration_ms?: number
}
export interface IceServers {
  ice_servers: RTCIceServer[]
  ttl_s: number
  ice_transport_policy?: RTCIceTransportPolicy
}

export interface SendFrame {
  type: 'send'
  rid?: Rid
  cmid: string
  to?: UserId
  conv?: ConvId
  msg_type: 'text' | MediaKind
  body: Record<string, unknown>
}

// ---- WebSocket frames: server -> client ----------------------------------------------------------

export interface AuthOkFrame {
  type: 'auth_ok'
  user: User
  terminal: Terminal
  heartbeat: number
  ts: number
  limits?: Limits
  /** This tab's device id, echoed (issue 15), and the id of the login's session. */
  device?: string
  session?: string
}
export interface PongFrame { type: 'pong'; ts: number }
export interface AckFrame extends Ack { type: 'ack'; rid?: Rid }
export interface SyncResultFrame { type: 'sync_result'; rid?: Rid; conversations: ConversationRow[] }
export interface MessagesFrame { type: 'messages'; rid?: Rid; conv: ConvId; messages: Message[]; has_more: boolean }
export interface OkFrame { type: 'ok'; rid?: Rid }
export interface ErrorFrame { type: 'error'; rid?: Rid; code: string; message: string; retry_after?: number }
export interface MsgFrame { type: 'msg'; msg: Message }
export interface ReceiptsResultFrame extends Receipts { type: 'receipts_result'; rid?: Rid }
/** A hot group has messages up to `seq`: pull what is missing (push-pull delivery). */
export interface NewsFrame { type: 'news'; conv: ConvId; seq: number; mention?: boolean }
export interface ReadFrame { type: 'read'; conv: ConvId; user: UserId; seq: number }
export interface TypingFrame { type: 'typing'; conv: ConvId; user: UserId }
export interface PresenceFrame { type: 'presence'; user: UserId; online: boolean; terminals: Terminal[]; last_seen?: number }
export interface FriendFrame {
  type: 'friend'
  event: 'request' | 'accepted' | 'declined' | 'removed'
  request?: FriendRequest
  user?: User
}

export type ServerFrame =
  | AuthOkFrame
  | PongFrame
  | AckFrame
  | SyncResultFrame
  | MessagesFrame
  | OkFrame
  | ErrorFrame
  | ReceiptsResultFrame
  | MsgFrame
  | NewsFrame
  | ReadFrame
  | TypingFrame
  | PresenceFrame
  | FriendFrame
  | CallInvitedFrame
  | CallPushFrame
  | SocialPush
  | ForwardedFrame
  | HiddenFrame

/** Sessions, profiles, blocks and chat preferences (issue 15): handled by store/social.ts. */
import type { SocialPush } from './social'

/** Frames the server pushes without being asked (no rid). */
export type PushFrame =
  | MsgFrame
  | NewsFrame
  | ReadFrame
  | TypingFrame
  | PresenceFrame
  | FriendFrame
  | CallPushFrame
  | HiddenFrame
  | SocialPush

// ---- message actions (protocol.md, "Message actions") ------------------------------------------------
export type ActionFrame =
  | { type: 'edit'; rid?: Rid; aid: string; conv: ConvId; seq: number; text: string; mentions?: UserId[]; mention_all?: boolean }
  | { type: 'react'; rid?: Rid; conv: ConvId; seq: number; emoji: string; on?: boolean }
  | { type: 'pin'; rid?: Rid; conv: ConvId; seq: number; on?: boolean }
  | { type: 'forward'; rid?: Rid; aid: string; items: { conv: ConvId; seq: number }[]; targets: ConvId[]; show_sender?: boolean }
  | { type: 'hide'; rid?: Rid; conv: ConvId; seqs: number[] }
/** The reply to `forward`: one ack per item and target (targets outer, items in order). */
export interface ForwardedFrame { type: 'forwarded'; rid?: Rid; acks: Ack[] }
/** I deleted these messages for me (on this terminal or another). */
export interface HiddenFrame { type: 'hidden'; conv: ConvId; seqs: number[] }
export interface Pin { seq: number; by: UserId; ts: number; message: Message }
export interface EditVersion { text: string; ts: number }

/** WebSocket close codes (protocol.md, "Close codes"). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  protocol: 4400,
  unauthorized: 4401,
  revoked: 4403,
  heartbeatTimeout: 4508,
  replaced: 4409,
  /** Too many sessions of this user: this idlest one was closed; reconnect only when asked. */
  evicted: 4410,
  slowConsumer: 4529,
  tooManyConnections: 4530,
  draining: 4503,
} as const

/**
 * Close codes by range (protocol.md, "Close codes"): 4000–4499 are terminal (reconnecting would repeat the
 * same refusal), everything else — 4500–4999, 1xxx, a code never seen before — means "reconnect with backoff".
 */
export function isTerminalClose(code: number): boolean {
  return code >= 4000 && code <= 4499
}

export function privateConvId(a: UserId, b: UserId): ConvId {
  return a < b ? `p:${a}:${b}` : `p:${b}:${a}`
}

export type ConvKind = 'private' | 'group'

export function groupConvId(id: number): ConvId {
  return `g:${id}`
}

/** The group id of a `g:<id>` conversation, or null. */
export function groupIdOf(conv: ConvId): number | null {
  const m = /^g:(\d+)$/.exec(conv)
  return m ? Number(m[1]) : null
}

export function convKind(conv: ConvId): ConvKind {
  return conv.startsWith('g:') ? 'group' : 'private'
}

/** The other member of a private conversation, or null for a group or a malformed id. */
export function peerOf(conv: ConvId, me: UserId): UserId | null {
  const m = /^p:(\d+):(\d+)$/.exec(conv)
  if (!m) return null
  const a = Number(m[1])
  const b = Number(m[2])
  return a === me ? b : a
}

/** An export of my data (protocol.md, "Exports"). */
export interface ExportView {
  id: string
  kind: 'user' | 'conversation'
  subject: string
  status: 'pending' | 'building' | 'ready' | 'failed' | 'expired'
  size: number
  created_at: number
  finished_at: number
  expires_at: number
  failure: string
  /** A signed link (no token needed) while ready. */
  download_url: string | null
}

/** A conversation's retention (protocol.md, "Retention and the purged floor"); days 0 = for ever. */
export interface Retention {
  conv: string
  days: number
  own: number | null
  server_default: number
  floor: number
  can_edit: boolean
}

/** `GET /search` (protocol.md, "Search"). `highlights` are [start, end) code-point ranges in `text`. */
export interface SearchResult {
  message: Message
  text: string
  highlights: [number, number][]
}
export interface SearchResults {
  results: SearchResult[]
  next_cursor: string | null
  /** False when a query of only short terms stopped at its scan bound: `next_cursor` reads further back. */
  complete: boolean
}
export interface AroundPage {
  messages: Message[]
  has_older: boolean
  has_newer: boolean
}

// ---- integrations (docs/integrations.md; routes in platform/routes_integrations.py) ----------------------
/** What a bot token may do: `send` messages, `read` its conversations, its own `profile`. */
export type BotScope = 'send' | 'read' | 'profile'
export const BOT_SCOPES: readonly BotScope[] = ['send', 'read', 'profile']
/** What an outgoing webhook hears: every `message`, the `mention`s of a bot, `member` changes. */
export type HookEvent = 'message' | 'mention' | 'member'
export const HOOK_EVENTS: readonly HookEvent[] = ['message', 'mention', 'member']

export interface Bot {
  user: User
  owner_id: UserId
  created_at: number
}
/** A bot token as listed to its owner: never the secret, which the issuing answer carries once. */
export interface BotToken {
  id: number
  bot_id: UserId
  scopes: BotScope[]
  name: string
  created_at: number
  revoked: boolean
}
export interface IssuedToken {
  token: BotToken
  secret: string
}
export interface IncomingHook {
  id: number
  conv: ConvId
  bot_id: UserId
  owner_id: UserId
  name: string
  created_at: number
  revoked: boolean
}
export interface CreatedIncoming {
  hook: IncomingHook
  /** The secret path (`/api/v1/hooks/hbw_...`): shown once; whoever knows it posts as the bot. */
  url: string
}
export interface OutgoingHook {
  id: number
  owner_id: UserId
  conv: ConvId
  url: string
  /** The HMAC key its deliveries are signed with. */
  secret: string
  events: HookEvent[]
  bot_id: UserId | null
  cursor_seq: number
  /** False once `webhook_max_failures` attempts in a row failed; `enable` resumes it. */
  enabled: boolean
  failures: number
  next_attempt_at: number
  created_at: number
}
export interface Delivery {
  webhook_id: number
  event_id: string
  event: string
  attempt: number
  /** HTTP status; 0 when no answer came (refused address, timeout, connection error). */
  status: number
  ok: boolean
  response: string
  duration_ms: number
  ts: number
  node: string
}
