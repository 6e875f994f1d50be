/**
 * Turn a conversation's window into rows for the chat view: day separators, messages grouped by sender
 * (consecutive, same day, a few minutes apart), recalled messages as centred notices, and the outbox last.
 */
import type { Message, UserId } from '../api/types'
import type { ConvState, Outgoing } from './convs'
import type { UploadItem } from './uploads'
import { isEvent, isHidden } from './actions'

export type TimelineRow =
  | { kind: 'day'; key: string; ts: number }
  /** A recalled message; `by` is who recalled it when that was not the sender (a group's owner or admin). */
  | { kind: 'notice'; key: string; msg: Message; mine: boolean; by?: UserId }
  /** A `system` message (group changes): centred text, no bubble. */
  | { kind: 'system'; key: string; msg: Message }
  /** A `pin` event: "Alice pinned a message", a centred line that jumps to the message. */
  | { kind: 'pin'; key: string; msg: Message }
  | { kind: 'msg'; key: string; msg: Message; mine: boolean; first: boolean; last: boolean }
  | { kind: 'out'; key: string; out: Outgoing; first: boolean; last: boolean }
  /** A file still uploading (or failed to): a bubble with a progress bar. */
  | { kind: 'upload'; key: string; item: UploadItem; first: boolean; last: boolean }

/** Messages of one sender closer together than this share a group (one avatar, one name). */
export const GROUP_GAP_MS = 5 * 60 * 1000

export function dayKey(ts: number): string {
  const d = new Date(ts)
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`
}

export function buildTimeline(state: ConvState, me: UserId, uploads: readonly UploadItem[] = []): TimelineRow[] {
  const rows: TimelineRow[] = []
  let prevDay = ''
  let prev: { sender: UserId; ts: number; row: TimelineRow } | null = null

  const place = (sender: UserId, ts: number, make: (first: boolean) => TimelineRow) => {
    const day = dayKey(ts)
    if (day !== prevDay) {
      rows.push({ kind: 'day', key: `d:${day}`, ts })
      prevDay = day
      prev = null
    }
    const grouped = prev !== null && prev.sender === sender && ts - prev.ts < GROUP_GAP_MS
    if (grouped && prev && (prev.row.kind === 'msg' || prev.row.kind === 'out' || prev.row.kind === 'upload')) {
      prev.row.last = false
    }
    const row = make(!grouped)
    rows.push(row)
    prev = row.kind === 'notice' || row.kind === 'system' || row.kind === 'pin' ? null : { sender, ts, row }
  }

  const all = [...state.messages, ...state.ahead]
  const recallers = new Map<number, UserId>()
  for (const m of all) if (m.type === 'recall') recallers.set(Number((m.body as { seq?: unknown }).seq), m.sender)
  for (const m of all) {
    if (m.type === 'recall') continue // bookkeeping: its target is shown recalled
    if (isHidden(m)) continue // deleted for me
    if (m.type === 'pin') {
      place(m.sender, m.ts, () => ({ kind: 'pin', key: `m:${m.seq}`, msg: m }))
      continue
    }
    if (isEvent(m)) continue // edits and reactions: shown on their message
    const mine = m.sender === me
    if (m.type === 'system') {
      place(m.sender, m.ts, () => ({ kind: 'system', key: `m:${m.seq}`, msg: m }))
      continue
    }
    if (m.recalled) {
      const by = recallers.get(m.seq)
      const other = by !== undefined && by !== m.sender ? { by } : {}
      place(m.sender, m.ts, () => ({ kind: 'notice', key: `m:${m.seq}`, msg: m, mine, ...other }))
      continue
    }
    // Keyed by cmid when there is one, so an acknowledged outgoing message keeps its element.
    const key = m.cmid ? `c:${m.sender}:${m.cmid}` : `m:${m.seq}`
    place(m.sender, m.ts, (first) => ({ kind: 'msg', key, msg: m, mine, first, last: true }))
  }
  for (const o of state.outbox) {
    place(me, o.ts, (first) => ({ kind: 'out', key: `c:${me}:${o.cmid}`, out: o, first, last: true }))
  }
  for (const u of uploads) {
    if (u.conv !== state.conv) continue
    place(me, u.ts, (first) => ({ kind: 'upload', key: `u:${u.id}`, item: u, first, last: true }))
  }
  return rows
}
