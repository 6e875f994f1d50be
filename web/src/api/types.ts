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
}

/** Known message types; anything else is rendered as a placeholder. */
export type MessageType = 'text' | 'recall' | 'image' | 'file' | 'voice' | 'video' | 'system' | (string & {})

export interface Message {
  id: string
  conv: ConvId
  seq: number
  sender: UserId
  type: MessageType
  /** `{text}` for text, `{seq}` for a recall notice, `{}` once recalled; other types add fields later. */
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
}

export type Terminal = 'web' | 'mobile' | 'desktop'

// ---- WebSocket frames: client -> server ----------------------------------------------------------

export type Rid = string | number

export type ClientFrame =
  | { type: 'auth'; token: string; terminal: Terminal }
  | { type: 'ping' }
  | SendFrame
  | { type: 'sync'; rid?: Rid }
  | { type: 'pull'; rid?: Rid; conv: ConvId; after_seq: number; limit?: number }
  | { type: 'history'; rid?: Rid; conv: ConvId; before_seq?: number; limit?: number }
  | { type: 'read'; rid?: Rid; conv: ConvId; seq: number }
  | { type: 'recall'; rid?: Rid; conv: ConvId; seq: number }
  | { type: 'typing'; conv: ConvId }

export interface SendFrame {
  type: 'send'
  rid?: Rid
  cmid: string
  to?: UserId
  conv?: ConvId
  msg_type: 'text'
  body: { text: string }
}

// ---- WebSocket frames: server -> client ----------------------------------------------------------

export interface AuthOkFrame { type: 'auth_ok'; user: User; terminal: Terminal; heartbeat: number; ts: number }
export interface PongFrame { type: 'pong'; ts: number }
export interface AckFrame extends Ack { type: 'ack'; rid?: Rid }
export interface SyncResultFrame { type: 'sync_result'; rid?: Rid; conversations: ConversationRow[] }
export interface MessagesFrame { type: 'messages'; rid?: Rid; conv: ConvId; messages: Message[]; has_more: boolean }
export interface OkFrame { type: 'ok'; rid?: Rid }
export interface ErrorFrame { type: 'error'; rid?: Rid; code: string; message: string; retry_after?: number }
export interface MsgFrame { type: 'msg'; msg: Message }
export interface ReadFrame { type: 'read'; conv: ConvId; user: UserId; seq: number }
export interface TypingFrame { type: 'typing'; conv: ConvId; user: UserId }
export interface PresenceFrame { type: 'presence'; user: UserId; online: boolean; terminals: Terminal[] }
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
  | MsgFrame
  | ReadFrame
  | TypingFrame
  | PresenceFrame
  | FriendFrame

/** Frames the server pushes without being asked (no rid). */
export type PushFrame = MsgFrame | ReadFrame | TypingFrame | PresenceFrame | FriendFrame

/** WebSocket close codes (protocol.md, "Close codes"). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  tooBig: 1009,
  protocol: 4400,
  unauthorized: 4401,
  revoked: 4403,
  heartbeatTimeout: 4408,
  replaced: 4409,
  slowConsumer: 4429,
  draining: 4503,
} as const

export function privateConvId(a: UserId, b: UserId): ConvId {
  return a < b ? `p:${a}:${b}` : `p:${b}:${a}`
}

export type ConvKind = 'private' | 'group'

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
