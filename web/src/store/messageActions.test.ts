/**
 * The action store against a fake connection: what goes on the wire for reply, edit, react, hide and forward,
 * optimistic reactions undone on refusal, `hidden` pushes, and the group typing line.
 */
import { describe, expect, it } from 'vitest'
import { Api } from '../api/rest'
import { WsError, type ConnStatus, type ConnectionOptions } from '../api/socket'
import type { ClientFrame, Message, ServerFrame, User } from '../api/types'
import { createChatStore, type ConnectionLike } from './chat'
import { createActionStore } from './messageActions'
import { reactionsOf } from './actions'

const ALICE: User = { id: 1, username: 'alice', nickname: 'Alice', signature: '', avatar: null }
const CONV = 'p:1:2'
const GROUP = 'g:7'

class Fake implements ConnectionLike {
  status: ConnStatus = 'idle'
  frames: ClientFrame[] = []
  constructor(readonly opts: ConnectionOptions) {}
  start(): void {
    this.status = 'online'
    this.opts.onReady({ type: 'auth_ok', user: ALICE, terminal: 'web', heartbeat: 25, ts: 0 })
  }
  stop(): void {}
  reconnectNow(): void {}
  send(f: ClientFrame): boolean {
    this.frames.push(f)
    return true
  }
  async request<T extends ServerFrame>(f: ClientFrame): Promise<T> {
    this.frames.push(f)
    await Promise.resolve()
    if (f.type === 'sync') return { type: 'sync_result', conversations: [] } as unknown as T
    if (f.type === 'send') return { type: 'ack', cmid: f.cmid, id: 'x', conv: CONV, seq: 3, ts: 5 } as unknown as T
    if (f.type === 'react' && f.emoji === '🦄') throw new WsError('reaction_invalid', 'no')
    if (f.type === 'forward') return { type: 'forwarded', acks: [] } as unknown as T
    return { type: 'ok' } as unknown as T
  }
}

const msg = (seq: number, sender: number, body: Record<string, unknown>, conv = CONV): Message => ({
  id: `m${seq}`,
  conv,
  seq,
  sender,
  type: 'text',
  body,
  ts: Date.now(),
  cmid: null,
  recalled: false,
})

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0))
}

function setup() {
  const storage = new Map<string, string>()
  const store: Storage = {
    getItem: (k) => storage.get(k) ?? null,
    setItem: (k, v) => void storage.set(k, v),
    removeItem: (k) => void storage.delete(k),
    clear: () => storage.clear(),
    key: () => null,
    length: 0,
  }
  store.setItem('hubbub.session', JSON.stringify({ user: ALICE, access_token: 'a', refresh_token: 'r', expires_at: Date.now() + 900_000 }))
  const fetchImpl = (async (url: string) => {
    const u = String(url)
    const body = u.includes('/hidden') ? { conv: CONV, seqs: [] } : u.includes('/friends/requests') ? { incoming: [], outgoing: [] } : u.includes('/friends') ? { friends: [] } : u.includes('/groups') ? { groups: [] } : ALICE
    return new Response(JSON.stringify(body), { status: 200 })
  }) as typeof fetch
  let conn!: Fake
  const chat = createChatStore({ api: new Api(store, '', fetchImpl), wsUrl: 'ws://t', createConnection: (o) => (conn = new Fake(o)) })
  chat.boot()
  let aid = 0
  const actions = createActionStore(chat, { newAid: () => `a-${++aid}` })
  chat._onPush({ type: 'msg', msg: msg(1, 2, { text: 'hello' }) })
  chat._onPush({ type: 'msg', msg: msg(2, 1, { text: 'mine' }) })
  const held = (seq: number) => chat.state.convs[CONV]!.messages.find((m) => m.seq === seq)!
  return { chat, actions, conn: () => conn, held }
}

describe('message actions store', () => {
  it('sends a reply with the quoted seq, and shows the snapshot until the server copy', async () => {
    const { actions, conn, held, chat } = setup()
    actions.startReply(held(1))
    expect(actions.submit(CONV, 'hi back', [])).toBe(true)
    expect(actions.state.composing[CONV]).toBeUndefined()
    await settle()
    const send = conn().frames.find((f) => f.type === 'send')
    expect(send).toMatchObject({ body: { text: 'hi back', reply: { seq: 1 } } })
    const acked = chat.state.convs[CONV]!.messages.find((m) => m.seq === 3)!
    expect(acked.body).toMatchObject({ reply: { seq: 1, sender: 2, type: 'text', text: 'hello' } })
  })

  it('saves an edit with an action id, and leaves an unchanged text alone', async () => {
    const { actions, conn, held } = setup()
    actions.startEdit(held(2))
    actions.submit(CONV, 'mine', [])
    actions.startEdit(held(2))
    actions.submit(CONV, 'mine, fixed', [])
    await settle()
    expect(conn().frames.filter((f) => f.type === 'edit')).toEqual([{ type: 'edit', aid: 'a-1', conv: CONV, seq: 2, text: 'mine, fixed' }])
  })

  it('shows my reaction at once and takes it back when refused', async () => {
    const { actions, held, chat } = setup()
    await actions.react(held(1), '👍')
    expect(reactionsOf(held(1))).toEqual([{ emoji: '👍', count: 1, users: [1] }])
    await actions.react(held(1), '🦄')
    expect(reactionsOf(held(1)).map((r) => r.emoji)).toEqual(['👍'])
    expect(chat.state.toasts.at(-1)?.key).toBe('reaction_invalid')
    await actions.react(held(1), '👍') // a second click removes it
    expect(reactionsOf(held(1))).toEqual([])
  })

  it('hides for me here and on a push from my other terminal', async () => {
    const { actions, held, chat, conn } = setup()
    actions.startSelect(held(1))
    actions.toggleSelect(held(2))
    expect(actions.state.selection?.seqs).toEqual([1, 2])
    await actions.hide(CONV, [1])
    expect(conn().frames.find((f) => f.type === 'hide')).toEqual({ type: 'hide', conv: CONV, seqs: [1] })
    expect(held(1).body).toEqual({ hidden: true })
    expect(actions.state.selection).toBeNull()
    chat._onPush({ type: 'hidden', conv: CONV, seqs: [2] })
    expect(held(2).body).toEqual({ hidden: true })
  })

  it('forwards everything in one frame and closes the dialog', async () => {
    const { actions, conn } = setup()
    actions.openForward([{ conv: CONV, seq: 1 }, { conv: CONV, seq: 2 }])
    expect(await actions.forward(['g:7', 'p:1:3'], true)).toBe(true)
    expect(conn().frames.find((f) => f.type === 'forward')).toMatchObject({
      items: [{ conv: CONV, seq: 1 }, { conv: CONV, seq: 2 }],
      targets: ['g:7', 'p:1:3'],
      show_sender: true,
    })
    expect(actions.state.forwarding).toBeNull()
  })

  it('names who is typing in a group and forgets a sender', () => {
    const { actions, chat } = setup()
    chat.state.users[2] = { ...ALICE, id: 2, username: 'bob', nickname: 'Bob' }
    chat.state.users[3] = { ...ALICE, id: 3, username: 'carol', nickname: 'Carol' }
    chat._onPush({ type: 'typing', conv: GROUP, user: 2 })
    chat._onPush({ type: 'typing', conv: GROUP, user: 3 })
    chat._onPush({ type: 'typing', conv: GROUP, user: 1 }) // myself: never shown
    expect(actions.typingNames(GROUP)).toEqual(['Bob', 'Carol'])
    chat._onPush({ type: 'msg', msg: msg(1, 2, { text: 'done' }, GROUP) })
    expect(actions.typingNames(GROUP)).toEqual(['Carol'])
  })
})
