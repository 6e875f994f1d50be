import { describe, expect, it } from 'vitest'
import { Api } from '../api/rest'
import type { ChatPrefs } from '../api/social'
import type { User } from '../api/types'
import { createChatStore } from './chat'
import { newConv } from './convs'
import { arrangeChats, createSocialStore } from './social'

const prefs = (conv: string, p: Partial<ChatPrefs>): ChatPrefs => ({ conv, pinned: 0, muted: false, archived: false, marked_unread: false, ...p })

describe('arrangeChats', () => {
  it('puts pinned chats first, newest pin first, and archived ones apart', () => {
    const list = ['g:1', 'g:2', 'g:3', 'g:4'].map((c) => newConv(c, null))
    const r = arrangeChats(list, {
      'g:3': prefs('g:3', { pinned: 10 }),
      'g:4': prefs('g:4', { pinned: 20 }),
      'g:2': prefs('g:2', { archived: true }),
    })
    expect(r.main.map((c) => c.conv)).toEqual(['g:4', 'g:3', 'g:1'])
    expect(r.archived.map((c) => c.conv)).toEqual(['g:2'])
  })
})

function stores() {
  const mem = new Map<string, string>()
  const storage = { getItem: (k: string) => mem.get(k) ?? null, setItem: (k: string, v: string) => void mem.set(k, v), removeItem: (k: string) => void mem.delete(k) }
  const api = new Api(storage as unknown as Storage, '', (async () => new Response('{}', { status: 503 })) as typeof fetch)
  const chat = createChatStore({ api, wsUrl: 'ws://x' })
  const social = createSocialStore(chat, api)
  return { chat, social }
}

describe('social pushes', () => {
  const bob: User = { id: 2, username: 'bob', nickname: 'Bob', signature: '', avatar: null }

  it('a profile push renames everywhere; a remark wins over the nickname and can be cleared', () => {
    const { chat } = stores()
    chat.remember(bob)
    chat._onPush({ type: 'profile', user: { ...bob, nickname: 'Bobby' } })
    expect(chat.displayName(2)).toBe('Bobby')
    chat._onPush({ type: 'remark', user: 2, remark: 'Brother' })
    expect(chat.displayName(2)).toBe('Brother')
    chat._onPush({ type: 'remark', user: 2, remark: '' })
    expect(chat.displayName(2)).toBe('Bobby')
  })

  it('keeps blocks, prefs and pushed read counts', () => {
    const { chat, social } = stores()
    chat._onPush({ type: 'block', event: 'blocked', user: bob })
    expect(social.isBlocked(2)).toBe(true)
    chat._onPush({ type: 'block', event: 'unblocked', user: bob })
    expect(social.isBlocked(2)).toBe(false)
    chat._onPush({ type: 'prefs', prefs: prefs('p:1:2', { muted: true }) })
    expect(social.isMuted('p:1:2')).toBe(true)
    chat._onPush({ type: 'receipts', conv: 'g:5', counts: [{ seq: 7, read: 2, total: 3 }] })
    expect(chat.receiptsOf('g:5', 7)).toMatchObject({ read: 2, total: 3 })
  })
})
