import { describe, expect, it } from 'vitest'
import type { Message } from '../api/types'
import { newConv, receive } from './convs'
import { buildTimeline } from './timeline'
import { newUpload } from './uploads'

const ME = 1
const CONV = 'p:1:2'
const DAY1 = new Date(2025, 0, 10, 10, 0).getTime()
const DAY2 = new Date(2025, 0, 11, 9, 0).getTime()

function msg(seq: number, sender: number, ts: number, over: Partial<Message> = {}): Message {
  return { id: `${seq}`, conv: CONV, seq, sender, type: 'text', body: { text: `t${seq}` }, ts, cmid: null, recalled: false, ...over }
}

describe('buildTimeline', () => {
  it('separates days, groups consecutive messages of one sender, hides recall notices', () => {
    const c = newConv(CONV, 2)
    receive(
      c,
      [
        msg(1, 2, DAY1),
        msg(2, 2, DAY1 + 60_000),
        msg(3, ME, DAY1 + 120_000),
        msg(4, ME, DAY1 + 20 * 60_000), // too far apart: a new group
        msg(5, 2, DAY2, { recalled: true, body: {} }),
        msg(6, 2, DAY2 + 1000, { type: 'recall', body: { seq: 5 } }),
        msg(7, 2, DAY2 + 2000),
      ],
      ME,
    )
    c.outbox.push({ cmid: 'c-9', conv: CONV, to: 2, type: 'text', text: 'pending', ts: DAY2 + 3000, status: 'sending' })
    const rows = buildTimeline(c, ME)
    const shape = rows.map((r) => {
      switch (r.kind) {
        case 'day':
          return 'day'
        case 'notice':
          return `notice${r.msg.seq}`
        case 'system':
          return `system${r.msg.seq}`
        case 'pin':
          return `pin${r.msg.seq}`
        case 'out':
          return `out${r.first ? 'F' : ''}${r.last ? 'L' : ''}`
        case 'msg':
          return `${r.msg.seq}${r.first ? 'F' : ''}${r.last ? 'L' : ''}`
        case 'upload':
          return `upload${r.first ? 'F' : ''}${r.last ? 'L' : ''}`
      }
    })
    expect(shape).toEqual(['day', '1F', '2L', '3FL', '4FL', 'day', 'notice5', '7FL', 'outFL'])
  })

  it('names who recalled when it was not the sender, and puts uploads last', () => {
    const c = newConv('g:5', null)
    receive(
      c,
      [
        { ...msg(1, 2, DAY1), conv: 'g:5', recalled: true, body: {} },
        { ...msg(2, 3, DAY1 + 1000), conv: 'g:5', type: 'recall', body: { seq: 1 } },
        { ...msg(3, 2, DAY1 + 2000), conv: 'g:5', recalled: true, body: {} },
        { ...msg(4, 2, DAY1 + 3000), conv: 'g:5', type: 'recall', body: { seq: 3 } },
      ],
      ME,
    )
    const up = newUpload('u1', 'g:5', { name: 'a.png', size: 1, type: 'image/png' }, 'image', DAY1 + 4000)
    const rows = buildTimeline(c, ME, [up, { ...up, id: 'u2', conv: 'p:1:2' }])
    const notices = rows.filter((r) => r.kind === 'notice')
    expect(notices.map((r) => (r.kind === 'notice' ? r.by : null))).toEqual([3, undefined])
    expect(rows.filter((r) => r.kind === 'upload').map((r) => r.key)).toEqual(['u:u1'])
  })
})
