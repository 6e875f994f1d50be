import { describe, expect, it } from 'vitest'
import type { Message } from '../api/types'
import {
  applyEvent,
  formatLeft,
  hideSeqs,
  menuFor,
  noteTyping,
  quoteState,
  reactionsOf,
  replySnapshot,
  setReaction,
  stopTyping,
  toggleSeq,
  typingLine,
  typingUsers,
  type MenuContext,
  type Typers,
} from './actions'
import { newConv, receive } from './convs'
import { buildTimeline } from './timeline'

const CONV = 'g:1'
const ME = 1
const msg = (seq: number, sender: number, type: string, body: Record<string, unknown>, ts = 1000 + seq): Message => ({
  id: `m${seq}`,
  conv: CONV,
  seq,
  sender,
  type,
  body,
  ts,
  cmid: null,
  recalled: false,
})

describe('events in the seq', () => {
  it('applies edits in order and ignores an older one', () => {
    const held = [msg(1, 2, 'text', { text: 'helo', mentions: [5] })]
    applyEvent(held, msg(2, 2, 'edit', { seq: 1, text: 'hello', edited: 2000 }))
    expect(held[0]!.body).toEqual({ text: 'hello', edited: 2000 })
    applyEvent(held, msg(3, 2, 'edit', { seq: 1, text: 'older', edited: 1500 }))
    expect((held[0]!.body as { text: string }).text).toBe('hello')
  })

  it('counts reactions from events, idempotently, and drops an emptied emoji', () => {
    const held = [msg(1, 2, 'text', { text: 'hi' })]
    applyEvent(held, msg(2, 3, 'reaction', { seq: 1, emoji: '👍', on: true, count: 1 }))
    applyEvent(held, msg(3, 4, 'reaction', { seq: 1, emoji: '👍', on: true, count: 2 }))
    applyEvent(held, msg(3, 4, 'reaction', { seq: 1, emoji: '👍', on: true, count: 2 }))
    expect(reactionsOf(held[0]!)).toEqual([{ emoji: '👍', count: 2, users: [3, 4] }])
    applyEvent(held, msg(4, 3, 'reaction', { seq: 1, emoji: '👍', on: false, count: 1 }))
    applyEvent(held, msg(5, 4, 'reaction', { seq: 1, emoji: '👍', on: false, count: 0 }))
    expect(reactionsOf(held[0]!)).toEqual([])
  })

  it('toggles my own reaction without a server count', () => {
    const m = msg(1, 2, 'text', { text: 'hi', reactions: [{ emoji: '❤️', count: 12, users: [3] }] })
    setReaction(m, '❤️', ME, true, null)
    expect(reactionsOf(m)[0]).toEqual({ emoji: '❤️', count: 13, users: [3, ME] })
    setReaction(m, '❤️', ME, false, null)
    expect(reactionsOf(m)[0]!.count).toBe(12)
  })

  it('applies live events through receive, which never counts them unread', () => {
    const c = newConv(CONV, null)
    receive(c, [msg(1, 2, 'text', { text: 'a' })], ME)
    receive(c, [msg(2, 2, 'edit', { seq: 1, text: 'b', edited: 5 }), msg(3, 3, 'reaction', { seq: 1, emoji: '🎉', count: 1 })], ME)
    expect(c.messages[0]!.body).toMatchObject({ text: 'b', edited: 5 })
    expect(c.unread).toBe(1)
    const kinds = buildTimeline(c, ME).map((r) => r.kind)
    expect(kinds.filter((k) => k === 'msg')).toHaveLength(1)
  })

  it('shows a pin event as a notice and hides deleted-for-me messages', () => {
    const c = newConv(CONV, null)
    receive(c, [msg(1, 2, 'text', { text: 'a' }), msg(2, 2, 'text', { text: 'b' }), msg(3, 2, 'pin', { seq: 1, on: true })], ME)
    expect(hideSeqs(c.messages, [2, 9])).toBe(1)
    const rows = buildTimeline(c, ME).filter((r) => r.kind !== 'day')
    expect(rows.map((r) => r.kind)).toEqual(['msg', 'pin'])
    expect(quoteState(c.messages, { seq: 2, sender: 2, type: 'text' })).toBe('deleted')
  })
})

describe('the menu', () => {
  const ctx: MenuContext = { me: ME, now: 10_000, recallWindowMs: 120_000, editWindowMs: 86_400_000, canPin: false, canWrite: true, canModerate: false }
  it('offers edit and recall with the time left on my recent text', () => {
    const o = menuFor(msg(1, ME, 'text', { text: 'x' }, 5_000), ctx)
    expect(o).toMatchObject({ edit: true, recall: true, reply: true, pin: false, hide: true })
    expect(o.recallLeftMs).toBe(115_000)
  })
  it('offers no edit on media or others, nothing but delete on a hidden message', () => {
    expect(menuFor(msg(1, ME, 'image', { upload: 'u' }, 5_000), ctx).edit).toBe(false)
    expect(menuFor(msg(1, 2, 'text', { text: 'x' }), ctx)).toMatchObject({ edit: false, recall: false })
    const hidden = menuFor(msg(1, 2, 'text', { hidden: true }), ctx)
    expect(hidden).toMatchObject({ react: false, reply: false, hide: false })
  })
  it('formats the countdown', () => {
    expect(formatLeft(65_000)).toBe('1:05')
    expect(formatLeft(400)).toBe('0:01')
    expect(formatLeft(3_700_000)).toBe('1:01:40')
  })
})

describe('typing in groups', () => {
  it('says one, two or several', () => {
    const ty: Typers = {}
    noteTyping(ty, CONV, 3, 100)
    noteTyping(ty, CONV, 2, 100)
    noteTyping(ty, CONV, 4, 50)
    expect(typingUsers(ty, CONV, 60)).toEqual([2, 3])
    stopTyping(ty, CONV, 3)
    expect(typingUsers(ty, CONV, 60)).toEqual([2])
    expect(typingLine([])).toEqual({ key: 'none' })
    expect(typingLine(['A'])).toEqual({ key: 'one', a: 'A' })
    expect(typingLine(['A', 'B'])).toEqual({ key: 'two', a: 'A', b: 'B' })
    expect(typingLine(['A', 'B', 'C'])).toEqual({ key: 'many' })
  })
})

describe('reply and selection', () => {
  it('snapshots a reply like the server does', () => {
    expect(replySnapshot(msg(4, 2, 'text', { text: 'x'.repeat(150) })).text).toHaveLength(100)
    expect(replySnapshot(msg(4, 2, 'image', { upload: 'u-1' }))).toEqual({ seq: 4, sender: 2, type: 'image', upload: 'u-1' })
  })
  it('keeps a selection ascending and bounded', () => {
    expect(toggleSeq([3, 9], 5)).toEqual([3, 5, 9])
    expect(toggleSeq([3, 5], 3)).toEqual([5])
    expect(toggleSeq([1, 2], 3, 2)).toEqual([1, 2])
  })
})
