import { describe, expect, it } from 'vitest'
import type { ConversationRow, Message } from '../api/types'
import {
  RESET_GAP,
  applyAck,
  applyReadFrame,
  applyFloor,
  applySyncRow,
  canRecall,
  deliveryOf,
  historyCursor,
  markRead,
  newConv,
  prependHistory,
  receive,
  type ConvState,
} from './convs'

const ME = 7
const PEER = 9
const CONV = 'p:7:9'

function msg(seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `id${seq}`,
    conv: CONV,
    seq,
    sender: PEER,
    type: 'text',
    body: { text: `m${seq}` },
    ts: 1_700_000_000_000 + seq * 1000,
    cmid: null,
    recalled: false,
    ...over,
  }
}

function row(over: Partial<ConversationRow> = {}): ConversationRow {
  return { conv: CONV, peer: PEER, max_seq: 0, read_seq: 0, peer_read_seq: 0, unread: 0, last: null, ...over }
}

function seqs(c: ConvState): number[] {
  return c.messages.map((m) => m.seq)
}

function withMessages(n: number): ConvState {
  const c = newConv(CONV, PEER)
  receive(c, Array.from({ length: n }, (_, i) => msg(i + 1)), ME)
  return c
}

describe('receive: dedupe by seq and gap detection', () => {
  it('appends the next seq and drops duplicates', () => {
    const c = newConv(CONV, PEER)
    expect(receive(c, [msg(1), msg(2)], ME).appended.map((m) => m.seq)).toEqual([1, 2])
    const again = receive(c, [msg(2), msg(1)], ME)
    expect(again.appended).toEqual([])
    expect(again.gapAfter).toBeNull()
    expect(seqs(c)).toEqual([1, 2])
    expect(c.have).toBe(2)
  })

  it('holds a message that is ahead and asks to pull the gap', () => {
    const c = withMessages(2)
    const r = receive(c, [msg(5)], ME)
    expect(r.appended).toEqual([])
    expect(r.gapAfter).toBe(2)
    expect(c.ahead.map((m) => m.seq)).toEqual([5])
    expect(c.have).toBe(2)
  })

  it('fills the gap from a pull, merging the held message exactly once', () => {
    const c = withMessages(2)
    receive(c, [msg(5)], ME)
    // The pull returns 3..5 (5 again): nothing twice.
    const r = receive(c, [msg(3), msg(4), msg(5)], ME)
    expect(r.appended.map((m) => m.seq)).toEqual([3, 4, 5])
    expect(r.gapAfter).toBeNull()
    expect(seqs(c)).toEqual([1, 2, 3, 4, 5])
    expect(c.ahead).toEqual([])
  })

  it('merges out-of-order batches into one contiguous run', () => {
    const c = newConv(CONV, PEER)
    receive(c, [msg(4), msg(2), msg(6)], ME)
    expect(c.have).toBe(0)
    receive(c, [msg(1), msg(3)], ME)
    expect(seqs(c)).toEqual([1, 2, 3, 4])
    expect(c.ahead.map((m) => m.seq)).toEqual([6])
    const r = receive(c, [msg(5)], ME)
    expect(r.appended.map((m) => m.seq)).toEqual([5, 6])
    expect(seqs(c)).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('ignores messages of another conversation and malformed seqs', () => {
    const c = newConv(CONV, PEER)
    receive(c, [msg(1, { conv: 'p:1:2' }), msg(0), msg(1.5)], ME)
    expect(c.messages).toEqual([])
  })

  it('restarts the window when a push is hopelessly far ahead', () => {
    const c = withMessages(3)
    const far = 3 + RESET_GAP + 10
    const r = receive(c, [msg(far)], ME)
    expect(r.gapAfter).toBeNull()
    expect(seqs(c)).toEqual([far])
    expect(c.hasMoreBefore).toBe(true)
    expect(historyCursor(c)).toBe(far)
  })

  it('removes my outbox entry when my message arrives by pull before the ack', () => {
    const c = withMessages(1)
    c.outbox.push({ cmid: 'c-1', conv: CONV, to: PEER, type: 'text', text: 'hi', ts: 1, status: 'sending' })
    receive(c, [msg(2, { sender: ME, cmid: 'c-1' })], ME)
    expect(c.outbox).toEqual([])
    // The late ack changes nothing.
    const r = applyAck(c, { cmid: 'c-1', id: 'id2', conv: CONV, seq: 2, ts: 5 }, ME)
    expect(r.appended).toEqual([])
    expect(seqs(c)).toEqual([1, 2])
  })
})

describe('acks', () => {
  it('turns the outbox entry into a message with the server seq', () => {
    const c = withMessages(1)
    c.outbox.push({ cmid: 'c-1', conv: CONV, to: PEER, type: 'text', text: 'hello', ts: 1, status: 'sending' })
    const r = applyAck(c, { cmid: 'c-1', id: 'x', conv: CONV, seq: 2, ts: 99 }, ME)
    expect(r.appended).toHaveLength(1)
    expect(c.messages[1]).toMatchObject({ seq: 2, sender: ME, body: { text: 'hello' }, cmid: 'c-1', ts: 99 })
    expect(c.outbox).toEqual([])
    expect(c.unread).toBe(1) // the peer's message; my own never counts
  })

  it('an ack ahead of what we hold means others wrote in between: pull the gap', () => {
    const c = withMessages(1)
    c.outbox.push({ cmid: 'c-1', conv: CONV, to: PEER, type: 'text', text: 'x', ts: 1, status: 'sending' })
    const r = applyAck(c, { cmid: 'c-1', id: 'x', conv: CONV, seq: 4, ts: 2 }, ME)
    expect(r.gapAfter).toBe(1)
    expect(c.ahead.map((m) => m.seq)).toEqual([4])
  })
})

describe('recall notices', () => {
  it('mark the target recalled and empty its body', () => {
    const c = withMessages(3)
    receive(c, [msg(4, { type: 'recall', body: { seq: 2 } })], ME)
    expect(c.messages[1]).toMatchObject({ seq: 2, recalled: true, body: {} })
    expect(c.have).toBe(4)
  })

  it('for a message not held are ignored (history brings it recalled)', () => {
    const c = newConv(CONV, PEER)
    applySyncRow(c, row({ max_seq: 10, last: msg(10) }))
    receive(c, [msg(11, { type: 'recall', body: { seq: 3 } })], ME)
    expect(c.have).toBe(11)
    prependHistory(c, [msg(8), msg(9), msg(3, { recalled: true, body: {} })], true)
    expect(seqs(c)).toEqual([8, 9, 10, 11])
  })

  it('apply when the notice arrives in the same history page as the target', () => {
    const c = newConv(CONV, PEER)
    applySyncRow(c, row({ max_seq: 5, last: msg(5) }))
    prependHistory(c, [msg(3), msg(4, { type: 'recall', body: { seq: 3 } })], true)
    expect(c.messages[0]).toMatchObject({ seq: 3, recalled: true })
  })

  it('do not count as unread', () => {
    const c = withMessages(1)
    markRead(c, 1, ME)
    receive(c, [msg(2, { type: 'recall', body: { seq: 1 } })], ME)
    expect(c.unread).toBe(0)
  })

  it('a recalled duplicate updates the held copy', () => {
    const c = withMessages(2)
    receive(c, [msg(1, { recalled: true, body: {} })], ME)
    expect(c.messages[0]!.recalled).toBe(true)
  })

  it('canRecall: own, not recalled, within two minutes', () => {
    const m = msg(1, { sender: ME, ts: 1000 })
    expect(canRecall(m, ME, 1000 + 119_000)).toBe(true)
    expect(canRecall(m, ME, 1000 + 121_000)).toBe(false)
    expect(canRecall(msg(1), ME, 1000)).toBe(false)
    expect(canRecall({ ...m, recalled: true }, ME, 1000)).toBe(false)
  })
})

describe('unread counting', () => {
  it('starts from sync_result and adds one per incoming message from others', () => {
    const c = newConv(CONV, PEER)
    applySyncRow(c, row({ max_seq: 5, read_seq: 3, unread: 2, last: msg(5) }))
    expect(c.unread).toBe(2)
    receive(c, [msg(6), msg(7, { sender: ME })], ME)
    expect(c.unread).toBe(3)
  })

  it('does not count messages the server already counted when they are pulled', () => {
    const c = withMessages(3)
    markRead(c, 3, ME)
    const r = applySyncRow(c, row({ max_seq: 6, read_seq: 3, unread: 3, last: msg(6) }))
    expect(r.pullAfter).toBe(3)
    receive(c, [msg(4), msg(5), msg(6)], ME)
    expect(c.unread).toBe(3)
    receive(c, [msg(7)], ME)
    expect(c.unread).toBe(4)
  })

  it('resets when read to the end, here or on another terminal', () => {
    const c = withMessages(4)
    expect(c.unread).toBe(4)
    applyReadFrame(c, ME, 4, ME)
    expect(c.unread).toBe(0)
    expect(c.readSeq).toBe(4)
  })

  it('a partial read leaves the exact remainder when it is all held', () => {
    const c = withMessages(5)
    markRead(c, 3, ME)
    expect(c.unread).toBe(2)
  })

  it('a duplicate push does not count twice', () => {
    const c = withMessages(2)
    receive(c, [msg(2), msg(2)], ME)
    expect(c.unread).toBe(2)
  })

  it('the peer reading moves the receipt, not my unread', () => {
    const c = withMessages(2)
    receive(c, [msg(3, { sender: ME })], ME)
    applyReadFrame(c, PEER, 3, ME)
    expect(c.peerReadSeq).toBe(3)
    expect(c.unread).toBe(2)
    expect(deliveryOf(c, c.messages[2]!)).toBe('read')
    receive(c, [msg(4, { sender: ME })], ME)
    expect(deliveryOf(c, c.messages[3]!)).toBe('sent')
  })
})

describe('sync rows', () => {
  it('an empty window starts at the last message instead of pulling everything', () => {
    const c = newConv(CONV, PEER)
    const r = applySyncRow(c, row({ max_seq: 40, last: msg(40), unread: 1 }))
    expect(r.pullAfter).toBeNull()
    expect(seqs(c)).toEqual([40])
    expect(historyCursor(c)).toBe(40)
  })

  it('a window behind the server pulls after what it holds', () => {
    const c = withMessages(3)
    expect(applySyncRow(c, row({ max_seq: 8, last: msg(8) })).pullAfter).toBe(3)
    expect(applySyncRow(withMessages(8), row({ max_seq: 8, last: msg(8) })).pullAfter).toBeNull()
  })

  it('takes the server read positions', () => {
    const c = withMessages(3)
    applySyncRow(c, row({ max_seq: 3, read_seq: 2, peer_read_seq: 3, unread: 1, last: msg(3) }))
    expect(c.readSeq).toBe(2)
    expect(c.peerReadSeq).toBe(3)
    expect(c.unread).toBe(1)
  })

  it('a conversation without messages stays empty', () => {
    const c = newConv(CONV, PEER)
    expect(applySyncRow(c, row()).pullAfter).toBeNull()
    expect(c.messages).toEqual([])
    expect(historyCursor(c)).toBeNull()
  })
})

describe('history', () => {
  it('prepends contiguous older pages until the beginning', () => {
    const c = newConv(CONV, PEER)
    applySyncRow(c, row({ max_seq: 5, last: msg(5) }))
    expect(prependHistory(c, [msg(3), msg(4)], true)).toBe(2)
    expect(historyCursor(c)).toBe(3)
    expect(prependHistory(c, [msg(1), msg(2), msg(4)], false)).toBe(2)
    expect(seqs(c)).toEqual([1, 2, 3, 4, 5])
    expect(historyCursor(c)).toBeNull()
  })

  it('an empty page ends the scroll-back', () => {
    const c = newConv(CONV, PEER)
    applySyncRow(c, row({ max_seq: 5, last: msg(5) }))
    expect(prependHistory(c, [], true)).toBe(0)
    expect(historyCursor(c)).toBeNull()
  })
})

describe('system messages', () => {
  it('never count as unread (group changes)', () => {
    const c = withMessages(1)
    markRead(c, 1, ME)
    receive(c, [msg(2, { type: 'system', body: { event: 'joined', users: [3], actor: PEER } })], ME)
    expect(c.unread).toBe(0)
    expect(c.have).toBe(2)
  })
})

describe('retention floor', () => {
  it('drops what was purged and does not wait for it', () => {
    const c = newConv(CONV, PEER)
    receive(c, [msg(1), msg(2), msg(3), msg(4)], ME)
    receive(c, [msg(7)], ME)
    expect(c.have).toBe(4)
    const r = applySyncRow(c, row({ max_seq: 8, floor: 5, last: msg(8) }))
    expect(c.messages.map((m) => m.seq)).toEqual([])
    expect(c.have).toBe(5)
    expect(c.hasMoreBefore).toBe(false)
    expect(r.pullAfter).toBe(5) // the pull returns 6.. from the server, not a hole
    receive(c, [msg(6), msg(8)], ME)
    expect(c.messages.map((m) => m.seq)).toEqual([6, 7, 8])
  })

  it('keeps the window above the floor as it is', () => {
    const c = newConv(CONV, PEER)
    receive(c, [msg(1), msg(2), msg(3)], ME)
    c.hasMoreBefore = true
    applyFloor(c, 1)
    expect(c.messages.map((m) => m.seq)).toEqual([2, 3])
    expect(c.have).toBe(3)
    expect(c.hasMoreBefore).toBe(false)
    applyFloor(c, 0)
    expect(c.messages.map((m) => m.seq)).toEqual([2, 3])
  })
})
