/**
 * Per-conversation state and the sync/merge rules of protocol.md ("Sync algorithm"), with no I/O.
 *
 * Each function takes a ConvState, changes it in place (so Vue's reactivity sees the change when the state
 * is reactive) and returns what the caller must do next (for example "pull after seq N"). The store owns the
 * socket and acts on these results; the tests drive these functions directly.
 *
 * The window: a conversation holds a contiguous run of messages `messages[0].seq .. have`. Seqs are gap-free
 * per conversation, so anything above `have + 1` waits in `ahead` until a pull fills the hole, and anything
 * at or below `have` is a duplicate. A fresh page load does not pull whole histories: an empty window starts
 * at the conversation's last message (from `sync_result`) and older messages come from `history` when the
 * user scrolls back.
 */
import type { Ack, ConversationRow, ConvId, MediaKind, Message, UserId } from '../api/types'
import { applyEvent, isEvent, isHidden } from './actions'

/** A window more than this many messages behind is reset to the newest message, the rest loads on scroll. */
export const RESET_GAP = 500
/** Pull batch size (protocol.md: ≤ 200, 100 by default). */
export const PULL_LIMIT = 100

export interface Outgoing {
  cmid: string
  conv: ConvId
  /** Set for private conversations: sends go `to` the peer so the first message creates the conversation. */
  to: UserId | null
  type: 'text' | MediaKind
  /** The text (text messages), or the file name / caption shown in previews (media). */
  text: string
  /** The wire body when it is more than `{text}`: mentions, or `{upload, caption?}` for media. */
  body?: Record<string, unknown>
  /** What the message shows until the server's copy arrives (media: the `Upload` the upload returned). */
  view?: Record<string, unknown>
  /** Client time when composed; orders the outbox and shows a time until the ack brings the server's. */
  ts: number
  status: 'sending' | 'failed'
  error?: string
}

export interface ConvState {
  conv: ConvId
  peer: UserId | null
  /** Contiguous, ascending by seq, ending at `have`. */
  messages: Message[]
  /** Received above `have + 1`; ascending; merged when the gap is filled. */
  ahead: Message[]
  /** Highest seq held contiguously (0: none). */
  have: number
  /** Highest seq known to exist. */
  maxSeq: number
  /** My read position. */
  readSeq: number
  /** The peer's read position (private conversations): drives the "read" tick. */
  peerReadSeq: number
  unread: number
  /** Seqs up to here are already reflected in `unread` (the server counted them in `sync_result`). */
  unreadBase: number
  /** Older messages exist before `messages[0]`. */
  hasMoreBefore: boolean
  /** My messages sent but not yet acknowledged. */
  outbox: Outgoing[]
  /** A message newer than `readSeq` @mentions me (or @all). */
  mention: boolean
}

export function newConv(conv: ConvId, peer: UserId | null): ConvState {
  return {
    conv,
    peer,
    messages: [],
    ahead: [],
    have: 0,
    maxSeq: 0,
    readSeq: 0,
    peerReadSeq: 0,
    unread: 0,
    unreadBase: 0,
    hasMoreBefore: false,
    outbox: [],
    mention: false,
  }
}

/** Messages that count towards unread and notifications: from others, and not notices (protocol.md:
 * `system` and `recall` never count). */
export function isCountable(m: Message, me: UserId): boolean {
  return m.sender !== me && m.type !== 'recall' && m.type !== 'system' && !isEvent(m) && !isHidden(m)
}

/** Does this message @mention me (by id, or @all)? Only others' messages can. */
export function mentionsMe(m: Message, me: UserId): boolean {
  if (m.sender === me || m.type !== 'text' || m.recalled) return false
  const b = m.body as { mentions?: unknown; mention_all?: unknown }
  if (b.mention_all === true) return true
  return Array.isArray(b.mentions) && b.mentions.includes(me)
}

/**
 * Apply one `sync_result` row. Returns the seq to pull after, or null when the window is up to date.
 * An empty (or hopelessly stale) window restarts at the row's last message instead of pulling everything.
 */
export function applySyncRow(state: ConvState, row: ConversationRow): { pullAfter: number | null } {
  if (row.peer !== null && row.peer !== undefined) state.peer = row.peer
  state.maxSeq = Math.max(state.maxSeq, row.max_seq)
  // The server's read position is the truth after a (re)connect: a `read` we sent may have been lost.
  state.readSeq = row.read_seq
  state.peerReadSeq = Math.max(state.peerReadSeq, row.peer_read_seq)
  // The server's count is authoritative at this point; messages up to max_seq are in it already.
  state.unread = row.unread
  state.unreadBase = Math.max(state.unreadBase, row.max_seq)
  state.mention = !!row.mention
  applyFloor(state, row.floor ?? 0)
  const empty = state.messages.length === 0 && state.ahead.length === 0
  if (row.last && row.max_seq > state.have && (empty || row.max_seq - state.have > RESET_GAP)) {
    resetWindow(state, row.last)
    applyFloor(state, row.floor ?? 0)
    return { pullAfter: null }
  }
  return { pullAfter: row.max_seq > state.have ? state.have : null }
}

/**
 * Retention removed every message at or below `floor` on the server: drop what we hold of them, count them
 * as held (nothing waits for those seqs), and stop offering older history there.
 */
export function applyFloor(state: ConvState, floor: number): void {
  if (floor <= 0) return
  state.messages = state.messages.filter((m) => m.seq > floor)
  state.ahead = state.ahead.filter((m) => m.seq > floor)
  if (state.have < floor) {
    state.have = floor
    // Messages waiting above the floor may now be contiguous with it.
    while (state.ahead.length > 0 && state.ahead[0]!.seq === state.have + 1) {
      state.messages.push(state.ahead.shift()!)
      state.have += 1
    }
  }
  const first = state.messages[0]
  if (!first || first.seq <= floor + 1) state.hasMoreBefore = false
}

/** Restart an (empty or stale) window at `newest`; older messages then come from `history`. */
export function resetWindow(state: ConvState, newest: Message): void {
  state.messages = [newest]
  state.ahead = []
  state.have = newest.seq
  state.maxSeq = Math.max(state.maxSeq, newest.seq)
  state.hasMoreBefore = newest.seq > 1
  dropFromOutbox(state, newest)
}

export interface ReceiveResult {
  /** Messages newly appended to the window, in order (what to notify about, what to scroll to). */
  appended: Message[]
  /** The hole to pull (`pull after_seq`), or null when nothing is missing. */
  gapAfter: number | null
}

/**
 * Merge messages from a push, a pull or an ack, in any order: duplicates are dropped, the next seq is
 * appended, later seqs wait in `ahead` until the hole is filled.
 */
export function receive(state: ConvState, msgs: readonly Message[], me: UserId): ReceiveResult {
  const appended: Message[] = []
  for (const m of msgs) {
    if (m.conv !== state.conv || !Number.isInteger(m.seq) || m.seq < 1) continue
    state.maxSeq = Math.max(state.maxSeq, m.seq)
    dropFromOutbox(state, m)
    if (m.seq <= state.have) {
      // A duplicate. It may still carry news about a message we hold (recalled since we got it).
      if (m.recalled) markRecalled(state, m.seq)
      continue
    }
    if (m.seq - state.have > RESET_GAP) {
      state.messages = []
      state.ahead = state.ahead.filter((a) => a.seq > m.seq)
      state.have = m.seq - 1
      state.hasMoreBefore = true
    }
    if (m.seq === state.have + 1) {
      append(state, m, me, appended)
      while (state.ahead.length > 0 && state.ahead[0]!.seq <= state.have + 1) {
        const next = state.ahead.shift()!
        if (next.seq === state.have + 1) append(state, next, me, appended)
      }
    } else if (!state.ahead.some((a) => a.seq === m.seq)) {
      const i = state.ahead.findIndex((a) => a.seq > m.seq)
      state.ahead.splice(i === -1 ? state.ahead.length : i, 0, m)
    }
  }
  return { appended, gapAfter: state.ahead.length > 0 ? state.have : null }
}

function append(state: ConvState, m: Message, me: UserId, appended: Message[]): void {
  state.messages.push(m)
  state.have = m.seq
  appended.push(m)
  if (m.type === 'recall') applyRecallNotice(state, m)
  else if (isEvent(m)) applyEvent(state.messages, m)
  if (isCountable(m, me) && m.seq > state.readSeq && m.seq > state.unreadBase) state.unread++
  if (m.seq > state.readSeq && mentionsMe(m, me)) state.mention = true
  state.unreadBase = Math.max(state.unreadBase, m.seq)
}

function applyRecallNotice(state: ConvState, notice: Message): void {
  const target = Number((notice.body as { seq?: unknown }).seq)
  if (Number.isInteger(target)) markRecalled(state, target)
}

/** Mark a held message recalled: it keeps its seq, loses its body. Unknown seqs are ignored (history will
 * bring them already recalled). */
export function markRecalled(state: ConvState, seq: number): void {
  for (const list of [state.messages, state.ahead]) {
    const m = list.find((x) => x.seq === seq)
    if (m && !m.recalled) {
      m.recalled = true
      m.body = {}
    }
  }
}

/** The seq a `history` request should ask before, or null when the window starts at the beginning. */
export function historyCursor(state: ConvState): number | null {
  if (!state.hasMoreBefore) return null
  const lo = state.messages[0]?.seq ?? state.have + 1
  return lo > 1 ? lo : null
}

/** Merge an older page (`history` reply) in front of the window. Returns how many were added. */
export function prependHistory(state: ConvState, msgs: readonly Message[], hasMore: boolean): number {
  let lo = state.messages[0]?.seq ?? state.have + 1
  const older: Message[] = []
  let broken = false
  for (const m of [...msgs].sort((a, b) => b.seq - a.seq)) {
    if (m.conv !== state.conv || m.seq >= lo) continue
    if (m.seq !== lo - 1) {
      broken = true
      break
    }
    older.unshift(m)
    lo = m.seq
  }
  if (state.messages.length === 0 && older.length > 0) state.have = Math.max(state.have, older[older.length - 1]!.seq)
  state.messages.unshift(...older)
  for (const m of older) if (m.type === 'recall') applyRecallNotice(state, m)
  // An empty page ends the scroll-back even if the server claims more: never loop on a page we cannot use.
  state.hasMoreBefore = lo > 1 && older.length > 0 && (hasMore || broken)
  return older.length
}

/**
 * I read up to `seq` (here, or on another terminal). Returns true if the position moved.
 * Unread becomes exact when the whole unread range is held, and never grows.
 */
export function markRead(state: ConvState, seq: number, me: UserId): boolean {
  if (seq <= state.readSeq) return false
  state.readSeq = seq
  if (seq >= state.maxSeq) {
    state.unread = 0
    state.mention = false
    return true
  }
  const lo = state.messages[0]?.seq ?? Infinity
  const fullyHeld = lo <= seq + 1 && state.have >= state.maxSeq
  const newer = [...state.messages, ...state.ahead].filter((m) => m.seq > seq)
  const held = newer.filter((m) => isCountable(m, me)).length
  state.unread = fullyHeld ? held : Math.min(state.unread, state.maxSeq - seq)
  if (fullyHeld) state.mention = newer.some((m) => mentionsMe(m, me))
  return true
}

/** A `read` push: my other terminal read (sync my position) or the peer read (receipt). */
export function applyReadFrame(state: ConvState, user: UserId, seq: number, me: UserId): void {
  if (user === me) markRead(state, seq, me)
  else state.peerReadSeq = Math.max(state.peerReadSeq, seq)
}

/** Turn my acknowledged outgoing message into a real message and merge it. */
export function applyAck(state: ConvState, ack: Ack, me: UserId): ReceiveResult {
  const out = state.outbox.find((o) => o.cmid === ack.cmid)
  if (!out) return { appended: [], gapAfter: state.ahead.length > 0 ? state.have : null }
  const msg: Message = {
    id: ack.id,
    conv: state.conv,
    seq: ack.seq,
    sender: me,
    type: out.type,
    body: out.view ?? out.body ?? { text: out.text },
    ts: ack.ts,
    cmid: ack.cmid,
    recalled: false,
  }
  return receive(state, [msg], me)
}

function dropFromOutbox(state: ConvState, m: Message): void {
  if (m.cmid && state.outbox.length > 0) {
    const i = state.outbox.findIndex((o) => o.cmid === m.cmid)
    if (i !== -1) state.outbox.splice(i, 1)
  }
}

/** The newest message held (a recall notice included), for previews and ordering. */
export function latestMessage(state: ConvState): Message | null {
  return state.ahead[state.ahead.length - 1] ?? state.messages[state.messages.length - 1] ?? null
}

/** When the conversation last saw activity (ms): orders the conversation list. */
export function activityTs(state: ConvState): number {
  const m = latestMessage(state)
  const o = state.outbox[state.outbox.length - 1]
  return Math.max(m?.ts ?? 0, o?.ts ?? 0)
}

/** The highest seq worth a read receipt: the newest held message. */
export function readableSeq(state: ConvState): number {
  return Math.max(state.have, state.ahead[state.ahead.length - 1]?.seq ?? 0)
}

export type Delivery = 'sending' | 'failed' | 'sent' | 'read'

export function deliveryOf(state: ConvState, item: Message | Outgoing): Delivery {
  if ('status' in item) return item.status
  return item.seq <= state.peerReadSeq ? 'read' : 'sent'
}

/** Time within which the server accepts a recall when it does not say (protocol.md: default 2 minutes). */
export const RECALL_WINDOW_MS = 2 * 60 * 1000

/** `windowMs` comes from `auth_ok.limits.recall_window_s`. */
export function canRecall(m: Message, me: UserId, now: number, windowMs = RECALL_WINDOW_MS): boolean {
  return (
    m.sender === me && !m.recalled && m.type !== 'recall' && m.type !== 'system' && now - m.ts < windowMs
  )
}
