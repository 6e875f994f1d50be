/**
 * Message actions (protocol.md, "Message actions"), the rules with no I/O: how `edit`, `reaction` and `pin`
 * events in the seq change the message they name, how a hidden (deleted-for-me) message looks, what the menu
 * offers for a message, the typing line of a group, and the recall countdown. The store (messageActions.ts)
 * owns the socket and calls these; the tests drive them directly.
 */
import type { ConvId, Message, UserId } from '../api/types'

/** Event types in the seq: bookkeeping that changes another message (never unread, never a bubble). */
export const EVENT_TYPES: ReadonlySet<string> = new Set(['edit', 'reaction', 'pin'])

/** The reactions offered in the menu before the full picker. */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '🙏'] as const

/** Defaults when `auth_ok.limits` does not say (protocol.md). */
export const EDIT_WINDOW_S = 86_400
export const MAX_REACTIONS = 20
export const FORWARD_MAX_ITEMS = 20
export const FORWARD_MAX_TARGETS = 10
/** Groups above this size get no typing indicators (protocol.md: `group_typing_max_members`). */
export const GROUP_TYPING_MAX = 20

export interface ReplyRef {
  seq: number
  sender: UserId
  type: string
  text?: string
  upload?: string
}

export interface Reaction {
  emoji: string
  count: number
  /** The first users who reacted (the server keeps 10). */
  users: UserId[]
}

export interface ForwardRef {
  sender?: UserId
  ts: number
}

/** A message's server-owned body keys, read defensively (a peer's message may carry anything). */
export function replyOf(m: Pick<Message, 'body'>): ReplyRef | null {
  const r = (m.body as { reply?: unknown }).reply as Partial<ReplyRef> | undefined
  return r && typeof r === 'object' && Number.isInteger(r.seq) ? (r as ReplyRef) : null
}

export function reactionsOf(m: Pick<Message, 'body'>): Reaction[] {
  const list = (m.body as { reactions?: unknown }).reactions
  return Array.isArray(list) ? (list as Reaction[]).filter((r) => r && typeof r.emoji === 'string' && r.count > 0) : []
}

export function forwardOf(m: Pick<Message, 'body'>): ForwardRef | null {
  const f = (m.body as { forward?: unknown }).forward
  return f && typeof f === 'object' ? (f as ForwardRef) : null
}

export function editedAt(m: Pick<Message, 'body'>): number | null {
  const e = (m.body as { edited?: unknown }).edited
  return typeof e === 'number' && e > 0 ? e : null
}

/** Deleted for me (on this terminal or another): the seq stays, the body is `{hidden: true}`. */
export function isHidden(m: Pick<Message, 'body'>): boolean {
  return (m.body as { hidden?: unknown }).hidden === true
}

export function isEvent(m: Pick<Message, 'type'>): boolean {
  return EVENT_TYPES.has(m.type)
}

/** A message people act on: not a notice, not recalled, not hidden, already stored (has a seq). */
export function isActionable(m: Message): boolean {
  return (
    m.seq > 0 &&
    !m.recalled &&
    !isHidden(m) &&
    !isEvent(m) &&
    m.type !== 'recall' &&
    m.type !== 'system' &&
    m.type !== 'notice'
  )
}

/**
 * Apply one event from the seq to the messages held. Only live, in-order events are applied (push and pull):
 * a `history` page already carries every message's current body, and replaying its events would undo newer ones.
 */
export function applyEvent(held: readonly Message[], ev: Message): void {
  const b = ev.body as { seq?: unknown }
  const seq = Number(b.seq)
  if (!Number.isInteger(seq)) return
  const target = held.find((m) => m.seq === seq)
  if (!target || target.recalled || isHidden(target)) return
  if (ev.type === 'edit') applyEdit(target, ev)
  else if (ev.type === 'reaction') applyReaction(target, ev)
}

function applyEdit(target: Message, ev: Message): void {
  const b = ev.body as { text?: unknown; edited?: unknown; mentions?: unknown; mention_all?: unknown }
  if (typeof b.text !== 'string') return
  const at = typeof b.edited === 'number' ? b.edited : ev.ts
  const before = editedAt(target)
  if (before !== null && before > at) return // a newer edit is already shown
  const next: Record<string, unknown> = { ...target.body, text: b.text, edited: at }
  delete next.mentions
  delete next.mention_all
  if (Array.isArray(b.mentions)) next.mentions = b.mentions
  if (b.mention_all === true) next.mention_all = true
  target.body = next
}

function applyReaction(target: Message, ev: Message): void {
  const b = ev.body as { emoji?: unknown; on?: unknown; count?: unknown }
  if (typeof b.emoji !== 'string') return
  const count = typeof b.count === 'number' ? b.count : null
  setReaction(target, b.emoji, ev.sender, b.on !== false, count)
}

/**
 * Add or remove `user`'s `emoji` on a message (an event, or my own optimistic toggle). `count` is the server's
 * total after the change when known; otherwise the count moves by one if the user list shows a change.
 */
export function setReaction(target: Message, emoji: string, user: UserId, on: boolean, count: number | null): void {
  const list = reactionsOf(target).map((r) => ({ ...r, users: [...r.users] }))
  let r = list.find((x) => x.emoji === emoji)
  if (!r) {
    if (!on) return
    r = { emoji, count: 0, users: [] }
    list.push(r)
  }
  const had = r.users.includes(user)
  if (on && !had) r.users.push(user)
  if (!on && had) r.users = r.users.filter((u) => u !== user)
  if (count !== null) r.count = count
  else if (on && !had) r.count += 1
  else if (!on && had) r.count -= 1
  r.count = Math.max(r.count, r.users.length)
  target.body = { ...target.body, reactions: list.filter((x) => x.count > 0) }
}

/** Did I react with this emoji? (the server lists the first 10 who reacted: enough for a person's own.) */
export function reactedBy(r: Reaction, me: UserId): boolean {
  return r.users.includes(me)
}

/** Mark held messages hidden (a `hidden` push, or my own `hide` answered). */
export function hideSeqs(held: readonly Message[], seqs: readonly number[]): number {
  const set = new Set(seqs)
  let n = 0
  for (const m of held) {
    if (set.has(m.seq) && !isHidden(m)) {
      m.body = { hidden: true }
      n++
    }
  }
  return n
}

/** The snapshot a reply shows before the server's copy arrives (the server fills the same fields). */
export function replySnapshot(m: Message): ReplyRef {
  const ref: ReplyRef = { seq: m.seq, sender: m.sender, type: m.type }
  const b = m.body as { text?: unknown; upload?: unknown; caption?: unknown }
  if (m.type === 'text' && typeof b.text === 'string') ref.text = [...b.text].slice(0, 100).join('')
  if (typeof b.upload === 'string') ref.upload = b.upload
  if (typeof b.caption === 'string') ref.text = [...b.caption].slice(0, 100).join('')
  return ref
}

/** How a quoted reply's original stands now, from what this terminal holds. */
export function quoteState(held: readonly Message[], ref: ReplyRef): 'ok' | 'recalled' | 'deleted' {
  const m = held.find((x) => x.seq === ref.seq)
  if (!m) return 'ok'
  if (m.recalled) return 'recalled'
  if (isHidden(m)) return 'deleted'
  return 'ok'
}

export interface MenuContext {
  me: UserId
  now: number
  recallWindowMs: number
  editWindowMs: number
  /** May I pin here? (private: yes; group: by role and pin policy) */
  canPin: boolean
  /** May I write here? (forward targets are checked separately) */
  canWrite: boolean
  /** I may recall someone else's message (group owner/admin over a lower rank). */
  canModerate: boolean
}

export interface MenuOffer {
  react: boolean
  reply: boolean
  edit: boolean
  copy: boolean
  forward: boolean
  pin: boolean
  select: boolean
  hide: boolean
  recall: boolean
  /** ms left to recall my own message (0 when moderating or not offered). */
  recallLeftMs: number
}

/** What the message menu offers for one message. */
export function menuFor(m: Message, ctx: MenuContext): MenuOffer {
  const ok = isActionable(m)
  const mine = m.sender === ctx.me
  const recallLeftMs = mine && ok ? Math.max(0, ctx.recallWindowMs - (ctx.now - m.ts)) : 0
  const editable =
    ok && mine && m.type === 'text' && ctx.canWrite && (ctx.editWindowMs <= 0 || ctx.now - m.ts < ctx.editWindowMs)
  return {
    react: ok,
    reply: ok && ctx.canWrite,
    edit: editable,
    copy: ok && (m.type === 'text' || m.type === 'notice'),
    forward: ok,
    pin: ok && ctx.canPin,
    select: ok,
    hide: m.seq > 0 && !isHidden(m) && !isEvent(m),
    recall: ok && (recallLeftMs > 0 || (!mine && ctx.canModerate)),
    recallLeftMs,
  }
}

/** "1:05" for a countdown. */
export function formatLeft(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000))
  if (s >= 3600) return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

// ---- typing in groups -------------------------------------------------------------------------------------

/** Who is typing where: conv → user → until (ms). */
export type Typers = Record<ConvId, Record<UserId, number>>

export function noteTyping(typers: Typers, conv: ConvId, user: UserId, until: number): void {
  const m = (typers[conv] ??= {})
  m[user] = until
}

/** Someone's message arrived: they stopped typing. */
export function stopTyping(typers: Typers, conv: ConvId, user: UserId): void {
  const m = typers[conv]
  if (m) delete m[user]
}

/** The users typing in a conversation now, longest typing first (stable order for the line). */
export function typingUsers(typers: Typers, conv: ConvId, now: number): UserId[] {
  const m = typers[conv]
  if (!m) return []
  return Object.entries(m)
    .filter(([, until]) => until > now)
    .map(([u]) => Number(u))
    .sort((a, b) => a - b)
}

/** The typing line: nobody, "A is typing", "A and B are typing", "several people are typing". */
export function typingLine(names: readonly string[]): { key: 'none' | 'one' | 'two' | 'many'; a?: string; b?: string } {
  if (names.length === 0) return { key: 'none' }
  if (names.length === 1) return { key: 'one', a: names[0] }
  if (names.length === 2) return { key: 'two', a: names[0], b: names[1] }
  return { key: 'many' }
}

// ---- multi-select ------------------------------------------------------------------------------------------

/** Toggle a seq in a selection kept ascending (forward keeps the conversation's order). */
export function toggleSeq(list: readonly number[], seq: number, max = Infinity): number[] {
  if (list.includes(seq)) return list.filter((s) => s !== seq)
  if (list.length >= max) return [...list]
  return [...list, seq].sort((a, b) => a - b)
}

/** Typing indicators go to a group only while it is small and not push-pull (protocol.md: otherwise refused). */
export function groupTypingAllowed(g: { member_count: number; hot: boolean } | undefined): boolean {
  return !!g && !g.hot && g.member_count <= GROUP_TYPING_MAX
}
