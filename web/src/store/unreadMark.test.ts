import { describe, expect, it } from 'vitest'
import { reactive } from 'vue'
import type { Message } from '../api/types'
import { newConv, type ConvState } from './convs'
import { firstUnread, installUnreadMarks, unreadMarks } from './unreadMark'

const msg = (seq: number, sender: number, type = 'text'): Message =>
  ({ conv: 'p:1:2', seq, sender, type, body: { text: String(seq) }, ts: seq, recalled: false }) as unknown as Message

describe('unread marks', () => {
  it('remembers the read position at open, before the conversation is marked read', () => {
    const state = reactive({ activeConv: null as string | null, synced: true, convs: {} as Record<string, ConvState> })
    const c = newConv('p:1:2', 2)
    c.readSeq = 4
    c.unread = 3
    state.convs['p:1:2'] = c
    installUnreadMarks({ state })
    state.activeConv = 'p:1:2'
    state.convs['p:1:2']!.readSeq = 7 // markActiveRead
    state.convs['p:1:2']!.unread = 0
    expect(unreadMarks['p:1:2']).toEqual({ afterSeq: 4, count: 3 })
    state.activeConv = null
    state.activeConv = 'p:1:2'
    expect(unreadMarks['p:1:2']).toBeUndefined() // nothing unread any more
  })

  it('takes it from the first sync when the chat was opened before it (reload on a deep link)', () => {
    const state = reactive({ activeConv: null as string | null, synced: false, convs: {} as Record<string, ConvState> })
    installUnreadMarks({ state })
    state.convs['g:9'] = newConv('g:9', null)
    state.activeConv = 'g:9'
    const c = state.convs['g:9']!
    c.readSeq = 10
    c.unread = 2
    state.synced = true
    c.readSeq = 12
    c.unread = 0
    expect(unreadMarks['g:9']).toEqual({ afterSeq: 10, count: 2 })
  })

  it('finds the first unread message from someone else', () => {
    const list = [msg(4, 2), msg(5, 1), msg(6, 2, 'system'), msg(7, 2)]
    expect(firstUnread(list, { afterSeq: 4, count: 1 }, 1)?.seq).toBe(7)
    expect(firstUnread(list, undefined, 1)).toBeNull()
  })
})
