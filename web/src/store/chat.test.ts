/**
 * The store against a fake server speaking the protocol's frames: sync on connect, gap pulls, history,
 * resends after a reconnect. The invariant checked throughout: every seq exactly once, in order.
 */
import { beforeEach, describe, expect, it } from 'vitest'
import { Api } from '../api/rest'
import type { ConnStatus, ConnectionOptions } from '../api/socket'
import { WsError } from '../api/socket'
import type { ClientFrame, ConversationRow, Message, ServerFrame, User } from '../api/types'
import { createChatStore, type ConnectionLike } from './chat'

const ALICE: User = { id: 1, username: 'alice', nickname: 'Alice', signature: '', avatar: null }
const BOB: User = { id: 2, username: 'bob', nickname: 'Bob', signature: '', avatar: null }
const CONV = 'p:1:2'

class FakeServer {
  msgs: Message[] = []
  readSeq = 0
  seenCmids = new Map<string, Message>()
  requests: ClientFrame[] = []

  store(sender: number, text: string, cmid: string | null = null): Message {
    const m: Message = {
      id: `id${this.msgs.length + 1}`,
      conv: CONV,
      seq: this.msgs.length + 1,
      sender,
      type: 'text',
      body: { text },
      ts: 1_700_000_000_000 + this.msgs.length * 1000,
      cmid,
      recalled: false,
    }
    this.msgs.push(m)
    return m
  }

  handle(f: ClientFrame): ServerFrame {
    this.requests.push(f)
    switch (f.type) {
      case 'sync': {
        const row: ConversationRow = {
          conv: CONV,
          peer: 2,
          max_seq: this.msgs.length,
          read_seq: this.readSeq,
          peer_read_seq: 0,
          unread: this.msgs.filter((m) => m.seq > this.readSeq && m.sender !== 1).length,
          last: this.msgs[this.msgs.length - 1] ?? null,
        }
        return { type: 'sync_result', conversations: this.msgs.length ? [row] : [] }
      }
      case 'pull': {
        const all = this.msgs.filter((m) => m.seq > f.after_seq)
        const limit = f.limit ?? 100
        return { type: 'messages', conv: f.conv, messages: all.slice(0, limit), has_more: all.length > limit }
      }
      case 'history': {
        const before = f.before_seq ?? Infinity
        const all = this.msgs.filter((m) => m.seq < before)
        const limit = f.limit ?? 50
        return { type: 'messages', conv: f.conv, messages: all.slice(-limit), has_more: all.length > limit }
      }
      case 'send': {
        let m = this.seenCmids.get(f.cmid)
        if (!m) {
          m = this.store(1, String(f.body.text), f.cmid)
          this.seenCmids.set(f.cmid, m)
        }
        return { type: 'ack', cmid: f.cmid, id: m.id, conv: CONV, seq: m.seq, ts: m.ts }
      }
      case 'read':
        this.readSeq = Math.max(this.readSeq, f.seq)
        return { type: 'ok' }
      default:
        return { type: 'ok' }
    }
  }
}

class FakeConnection implements ConnectionLike {
  status: ConnStatus = 'idle'
  /** When set, replies to `send` are lost (the server stores, the ack never arrives). */
  loseAcks = false

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly server: FakeServer,
  ) {}

  start(): void {
    this.status = 'online'
    this.opts.onReady({ type: 'auth_ok', user: ALICE, terminal: 'web', heartbeat: 25, ts: 0 })
  }
  stop(): void {
    this.status = 'idle'
  }
  reconnectNow(): void {
    this.start()
  }
  drop(): void {
    this.status = 'waiting'
  }
  async request<T extends ServerFrame>(frame: ClientFrame): Promise<T> {
    if (this.status !== 'online') throw new WsError('disconnected', 'offline')
    const reply = this.server.handle(frame)
    await Promise.resolve()
    if (frame.type === 'send' && this.loseAcks) throw new WsError('disconnected', 'lost')
    return reply as T
  }
  send(frame: ClientFrame): boolean {
    this.server.requests.push(frame)
    return this.status === 'online'
  }
  push(msg: Message): void {
    this.opts.onPush({ type: 'msg', msg })
  }
}

function memoryStorage(): Storage {
  const m = new Map<string, string>()
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    clear: () => m.clear(),
    key: () => null,
    get length() {
      return m.size
    },
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0))
}

function setup(storage: Storage = memoryStorage(), server = new FakeServer()) {
  storage.setItem(
    'hubbub.session',
    JSON.stringify({ user: ALICE, access_token: 'a', refresh_token: 'r', expires_at: Date.now() + 900_000 }),
  )
  const fetchImpl = (async (url: string) => {
    const body = String(url).includes('/friends/requests')
      ? { incoming: [], outgoing: [] }
      : String(url).includes('/friends')
        ? { friends: [{ user: BOB, since: 0, online: true }] }
        : BOB
    return new Response(JSON.stringify(body), { status: 200 })
  }) as typeof fetch
  const api = new Api(storage, '', fetchImpl)
  let conn!: FakeConnection
  let cmid = 0
  const store = createChatStore({
    api,
    wsUrl: 'ws://test/ws',
    createConnection: (opts) => (conn = new FakeConnection(opts, server)),
    newCmid: () => `c-${++cmid}`,
    storage,
  })
  return { server, store, conn: () => conn, storage }
}

function seqsOf(store: ReturnType<typeof setup>['store']): number[] {
  return store.state.convs[CONV]!.messages.map((m) => m.seq)
}

describe('chat store sync', () => {
  let env: ReturnType<typeof setup>

  beforeEach(() => {
    env = setup()
  })

  it('syncs on connect, loads history when opened, fills push gaps by pulling', async () => {
    const { server, store } = env
    for (let i = 0; i < 3; i++) server.store(2, `hello ${i}`)
    expect(store.boot()).toBe(true)
    await settle()
    expect(store.state.synced).toBe(true)
    expect(seqsOf(store)).toEqual([3])
    expect(store.state.convs[CONV]!.unread).toBe(3)
    expect(store.state.online[2]).toBe(true)

    store.openConv(CONV)
    await settle()
    expect(seqsOf(store)).toEqual([1, 2, 3])
    expect(store.state.convs[CONV]!.unread).toBe(0)
    expect(server.readSeq).toBe(3)

    // A push in order, then one that skips a seq (seq 5 was lost): the store pulls the gap.
    env.conn().push(server.store(2, 'four'))
    server.store(2, 'five')
    env.conn().push(server.store(2, 'six'))
    await settle()
    expect(seqsOf(store)).toEqual([1, 2, 3, 4, 5, 6])
    // A late duplicate push changes nothing.
    env.conn().push(server.msgs[4]!)
    expect(seqsOf(store)).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('after a reconnect: resends with the same cmid, pulls what was missed, nothing twice', async () => {
    const { server, store } = env
    server.store(2, 'hi')
    store.boot()
    await settle()
    store.openConv(CONV)
    await settle()

    // The ack of this send is lost: the server stored it, the client does not know.
    env.conn().loseAcks = true
    expect(store.sendText(CONV, 'are you there?')).toBe(true)
    await settle()
    env.conn().drop()
    env.conn().loseAcks = false
    expect(store.state.convs[CONV]!.outbox).toHaveLength(1)

    // While offline: the peer writes, and we write again.
    server.store(2, 'back soon')
    server.store(2, 'ok back')
    store.sendText(CONV, 'queued while offline')
    await settle()
    expect(store.state.convs[CONV]!.outbox.map((o) => o.status)).toEqual(['sending', 'sending'])

    env.conn().reconnectNow()
    await settle()
    const c = store.state.convs[CONV]!
    expect(c.outbox).toEqual([])
    expect(seqsOf(store)).toEqual([1, 2, 3, 4, 5])
    expect(server.msgs).toHaveLength(5) // the retried cmid was not stored twice
    expect(c.messages.filter((m) => m.sender === 1).map((m) => m.body.text)).toEqual([
      'are you there?',
      'queued while offline',
    ])
    const sends = server.requests.filter((f) => f.type === 'send')
    expect(sends.filter((f) => f.type === 'send' && f.cmid === 'c-1')).toHaveLength(2)
  })

  it('a send refused by the server is marked failed and can be retried', async () => {
    const { store } = env
    store.boot()
    await settle()
    store.openConv(CONV)
    const conn = env.conn()
    const orig = conn.request.bind(conn)
    let refuse = true
    conn.request = (async (f: ClientFrame) => {
      if (f.type === 'send' && refuse) throw new WsError('not_friends', 'no')
      return orig(f)
    }) as typeof conn.request
    store.sendText(CONV, 'hello')
    await settle()
    const c = store.state.convs[CONV]!
    expect(c.outbox[0]).toMatchObject({ status: 'failed', error: 'not_friends' })
    refuse = false
    store.retry(CONV, c.outbox[0]!.cmid)
    await settle()
    expect(c.outbox).toEqual([])
    expect(c.messages.map((m) => m.seq)).toEqual([1])
  })

  it('an unsent message survives a reload and is delivered once', async () => {
    const { server, store, storage } = env
    store.boot()
    await settle()
    env.conn().loseAcks = true
    store.sendText(CONV, 'typed just before the reload')
    await settle()
    expect(server.msgs).toHaveLength(1) // stored, but the ack was lost

    // A new page: a new store on the same storage and server.
    const again = setup(storage, server)
    again.store.boot()
    await settle()
    again.store.openConv(CONV)
    await settle()
    const c = again.store.state.convs[CONV]!
    expect(c.outbox).toEqual([])
    expect(c.messages.map((m) => m.body.text)).toEqual(['typed just before the reload'])
    expect(server.msgs).toHaveLength(1)
    expect(storage.getItem('hubbub.outbox.1')).toBeNull()
  })

  it('typing is throttled and shown for a few seconds', async () => {
    const { server, store } = env
    store.boot()
    await settle()
    store.typing(CONV)
    store.typing(CONV)
    expect(server.requests.filter((f) => f.type === 'typing')).toHaveLength(1)
    store._onPush({ type: 'typing', conv: CONV, user: 2 })
    expect(store.isTyping(CONV)).toBe(2)
    // The peer's message ends the indicator.
    env.conn().push(server.store(2, 'done typing'))
    expect(store.isTyping(CONV)).toBeNull()
  })

  it('presence and friend events update without a reload', async () => {
    const { store } = env
    store.boot()
    await settle()
    store._onPush({ type: 'presence', user: 2, online: false, terminals: [] })
    expect(store.state.online[2]).toBe(false)
    const carol: User = { id: 3, username: 'carol', nickname: '', signature: '', avatar: null }
    store._onPush({
      type: 'friend',
      event: 'request',
      request: { id: 5, from: carol, to: ALICE, note: 'hi', status: 'pending', ts: 0 },
    })
    expect(store.state.incoming.map((r) => r.id)).toEqual([5])
    expect(store.displayName(3)).toBe('carol')
  })
})

describe('the server account', () => {
  it('is badged by its system flag, and nobody else is', () => {
    const { store } = setup()
    store.state.me = ALICE
    const server: User = { id: 9, username: '~hubbub', nickname: 'Hubbub', signature: '', avatar: null, system: true }
    const faker: User = { id: 10, username: 'hubbubfan', nickname: 'Hubbub fan', signature: '', avatar: null, system: false }
    store.state.users[9] = server
    store.state.users[10] = faker
    expect(store.isSystemConv('p:1:9')).toBe(true)
    expect(store.isSystemConv('p:1:10')).toBe(false)
    expect(store.isSystemConv('g:9')).toBe(false)
  })
})

describe('refreshing friends', () => {
  it('a refresh asked for while one is in flight runs again after it: a stale answer is not the last word', async () => {
    const storage = memoryStorage()
    storage.setItem('hubbub.session', JSON.stringify({ user: ALICE, access_token: 'a', refresh_token: 'r', expires_at: Date.now() + 900_000 }))
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let friendFetches = 0
    const fetchImpl = (async (url: string) => {
      if (String(url).includes('/friends/requests')) return new Response(JSON.stringify({ incoming: [], outgoing: [] }))
      friendFetches += 1
      if (friendFetches === 1) {
        await gate // the first answer was made before Bob accepted
        return new Response(JSON.stringify({ friends: [] }))
      }
      return new Response(JSON.stringify({ friends: [{ user: BOB, since: 1, online: false }] }))
    }) as typeof fetch
    const store = createChatStore({ api: new Api(storage, '', fetchImpl), wsUrl: 'ws://test/ws', storage })
    const first = store.refreshFriends()
    const second = store.refreshFriends() // Bob's "accepted" arrives while the first is in flight
    release()
    await second
    await first
    expect(friendFetches).toBe(2)
    expect(store.state.friends[BOB.id]).toEqual({ since: 1 })
  })
})
