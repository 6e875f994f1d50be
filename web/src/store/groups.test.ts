/**
 * The store in groups, against a fake server: hot-group `news` (one pull at a time per conversation, pull
 * again when more news came), @mention state, mention fields on sends, system messages that change what
 * the client shows, media sends, read-receipt caching, and the server's limits from `auth_ok`.
 */
import { describe, expect, it } from 'vitest'
import { Api } from '../api/rest'
import type { ConnStatus, ConnectionOptions } from '../api/socket'
import { WsError } from '../api/socket'
import type { ClientFrame, Group, Limits, Message, ServerFrame, User } from '../api/types'
import { createChatStore, type ConnectionLike } from './chat'

const ALICE: User = { id: 1, username: 'alice', nickname: 'Alice', signature: '', avatar: null }
const BOB: User = { id: 2, username: 'bob', nickname: 'Bob', signature: '', avatar: null }
const CONV = 'g:7'
const GROUP: Group = {
  id: 7,
  conv: CONV,
  name: 'Hikers',
  avatar: null,
  notice: '',
  owner: 1,
  invite_policy: 'members',
  muted_all: false,
  dismissed: false,
  member_count: 3,
  created_at: 0,
  hot: true,
}

class GroupServer {
  msgs: Message[] = []
  requests: ClientFrame[] = []
  /** Pulls wait here until released, so tests can interleave news with a pull in flight. */
  held: (() => void)[] = []
  hold = false
  inFlight = 0
  maxInFlight = 0
  receiptsAsked = 0

  store(sender: number, type: string, body: Record<string, unknown>, cmid: string | null = null): Message {
    const m: Message = {
      id: `m${this.msgs.length + 1}`,
      conv: CONV,
      seq: this.msgs.length + 1,
      sender,
      type,
      body,
      ts: 1_700_000_000_000 + this.msgs.length * 1000,
      cmid,
      recalled: false,
    }
    this.msgs.push(m)
    return m
  }

  say(sender: number, text: string, extra: Record<string, unknown> = {}): Message {
    return this.store(sender, 'text', { text, ...extra })
  }

  async handle(f: ClientFrame): Promise<ServerFrame> {
    this.requests.push(f)
    switch (f.type) {
      case 'sync':
        return {
          type: 'sync_result',
          conversations: [
            {
              conv: CONV,
              peer: null,
              group: 7,
              max_seq: this.msgs.length,
              read_seq: this.msgs.length,
              peer_read_seq: 0,
              unread: 0,
              last: this.msgs[this.msgs.length - 1] ?? null,
              mention: false,
            },
          ],
        }
      case 'pull': {
        const upTo = this.msgs.length // what exists when the request arrives
        this.inFlight++
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
        if (this.hold) await new Promise<void>((r) => this.held.push(r))
        this.inFlight--
        const all = this.msgs.slice(0, upTo).filter((m) => m.seq > f.after_seq)
        return { type: 'messages', conv: f.conv, messages: all.slice(0, 100), has_more: all.length > 100 }
      }
      case 'history':
        return { type: 'messages', conv: f.conv, messages: [], has_more: false }
      case 'send': {
        const m = this.store(1, f.msg_type, f.body, f.cmid)
        return { type: 'ack', cmid: f.cmid, id: m.id, conv: CONV, seq: m.seq, ts: m.ts }
      }
      case 'receipts':
        this.receiptsAsked++
        return { type: 'receipts_result', conv: f.conv, seq: f.seq, read: 1, total: 2, readers: [2] }
      default:
        return { type: 'ok' }
    }
  }

  release(): void {
    const h = this.held
    this.held = []
    h.forEach((r) => r())
  }
}

class FakeConnection implements ConnectionLike {
  status: ConnStatus = 'idle'
  constructor(
    private readonly opts: ConnectionOptions,
    private readonly server: GroupServer,
    private readonly limits?: Limits,
  ) {}
  start(): void {
    this.status = 'online'
    this.opts.onReady({ type: 'auth_ok', user: ALICE, terminal: 'web', heartbeat: 25, ts: 0, limits: this.limits })
  }
  stop(): void {
    this.status = 'idle'
  }
  reconnectNow(): void {
    this.start()
  }
  async request<T extends ServerFrame>(frame: ClientFrame): Promise<T> {
    if (this.status !== 'online') throw new WsError('disconnected', 'offline')
    return (await this.server.handle(frame)) as T
  }
  send(frame: ClientFrame): boolean {
    this.server.requests.push(frame)
    return true
  }
  push(f: Parameters<ConnectionOptions['onPush']>[0]): void {
    this.opts.onPush(f)
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
  for (let i = 0; i < 30; i++) await new Promise((r) => setTimeout(r, 0))
}

function setup(opts: { limits?: Limits; group?: Partial<Group> } = {}) {
  const storage = memoryStorage()
  storage.setItem(
    'hubbub.session',
    JSON.stringify({ user: ALICE, access_token: 'a', refresh_token: 'r', expires_at: Date.now() + 900_000 }),
  )
  const group = { ...GROUP, ...opts.group }
  const fetchImpl = (async (url: string) => {
    const u = String(url)
    const body = u.includes('/friends/requests')
      ? { incoming: [], outgoing: [] }
      : u.includes('/friends')
        ? { friends: [{ user: BOB, since: 0, online: true }] }
        : u.includes('/groups/7/members')
          ? { members: [{ user: ALICE, role: 'owner', nickname: '', dnd: false, muted_until: 0, joined_at: 0 }], next_after: null }
          : u.includes('/groups/7')
            ? group
            : u.endsWith('/groups')
              ? { groups: [group] }
              : BOB
    return new Response(JSON.stringify(body), { status: 200 })
  }) as typeof fetch
  const api = new Api(storage, '', fetchImpl)
  const server = new GroupServer()
  let conn!: FakeConnection
  let cmid = 0
  const store = createChatStore({
    api,
    wsUrl: 'ws://test/ws',
    createConnection: (o) => (conn = new FakeConnection(o, server, opts.limits)),
    newCmid: () => `c-${++cmid}`,
    storage,
  })
  server.store(1, 'system', { event: 'created', name: 'Hikers', users: [2, 3], actor: 1 })
  return { server, store, conn: () => conn }
}

const seqs = (s: ReturnType<typeof setup>['store']) => s.state.convs[CONV]!.messages.map((m) => m.seq)
const pulls = (server: GroupServer) => server.requests.filter((f) => f.type === 'pull')

describe('hot groups: news', () => {
  it('pulls when news is ahead, one pull at a time, and once more if news came meanwhile', async () => {
    const { server, store, conn } = setup()
    store.boot()
    await settle()
    expect(seqs(store)).toEqual([1])
    expect(store.convTitle(CONV)).toBe('Hikers')

    server.hold = true
    server.say(2, 'a')
    server.say(2, 'b')
    conn().push({ type: 'news', conv: CONV, seq: 3 })
    await settle()
    expect(pulls(server)).toHaveLength(1)

    // More news while the pull is in flight: no second pull now.
    server.say(2, 'c')
    conn().push({ type: 'news', conv: CONV, seq: 4 })
    server.say(2, 'd')
    conn().push({ type: 'news', conv: CONV, seq: 5 })
    await settle()
    expect(pulls(server)).toHaveLength(1)

    server.hold = false
    server.release()
    await settle()
    // The first pull brought 2..3 (what existed when it was asked); one more brought 4..5.
    expect(seqs(store)).toEqual([1, 2, 3, 4, 5])
    expect(pulls(server).map((f) => (f.type === 'pull' ? f.after_seq : -1))).toEqual([1, 3])
    expect(server.maxInFlight).toBe(1)
    expect(store.state.convs[CONV]!.unread).toBe(4)

    // News about what we hold already changes nothing.
    conn().push({ type: 'news', conv: CONV, seq: 5 })
    conn().push({ type: 'news', conv: CONV, seq: 2 })
    await settle()
    expect(pulls(server)).toHaveLength(2)
  })

  it('marks @mentions from news and from pushes, and clears them on reading', async () => {
    const { server, store, conn } = setup()
    store.boot()
    await settle()
    server.say(2, '@Alice look', { mentions: [1] })
    conn().push({ type: 'news', conv: CONV, seq: 2, mention: true })
    expect(store.state.convs[CONV]!.mention).toBe(true)
    await settle()
    store.openConv(CONV)
    await settle()
    expect(store.state.convs[CONV]!.mention).toBe(false)
    store.openConv(null)

    conn().push({ type: 'msg', msg: server.say(2, 'hey @all', { mention_all: true }) })
    expect(store.state.convs[CONV]!.mention).toBe(true)
    store.openConv(CONV)
    expect(store.state.convs[CONV]!.mention).toBe(false)
    // My own @all does not mark anything.
    store.openConv(null)
    conn().push({ type: 'msg', msg: server.store(1, 'text', { text: '@all hi', mention_all: true }) })
    expect(store.state.convs[CONV]!.mention).toBe(false)
  })
})

describe('group sends and changes', () => {
  it('sends mentions of the picked members, and @all as owner', async () => {
    const { server, store } = setup()
    store.boot()
    await settle()
    store.openConv(CONV)
    await settle()
    expect(store.myRole(7)).toBe('owner')
    store.sendText(CONV, '@Bob @all ready?', [{ id: 2, name: 'Bob' }])
    await settle()
    const send = server.requests.find((f) => f.type === 'send')
    expect(send).toMatchObject({ conv: CONV, msg_type: 'text', body: { text: '@Bob @all ready?', mentions: [2], mention_all: true } })
    expect(send && 'to' in send ? send.to : undefined).toBeUndefined()
  })

  it('a plain member cannot @all: the field is not sent', async () => {
    const { server, store } = setup({ group: { owner: 3 } })
    store.boot()
    await settle()
    store.sendText(CONV, '@all hi')
    await settle()
    const send = server.requests.find((f) => f.type === 'send')
    expect(send && send.type === 'send' ? send.body : null).toEqual({ text: '@all hi' })
  })

  it('uses the server limits from auth_ok', async () => {
    const { store } = setup({ limits: { max_text_chars: 10, max_frame_bytes: 65536, recall_window_s: 30 } })
    store.boot()
    await settle()
    expect(store.state.limits.recall_window_s).toBe(30)
    expect(store.sendText(CONV, 'x'.repeat(11))).toBe(false)
    expect(store.state.toasts.at(-1)).toMatchObject({ key: 'err.too_long', params: { n: 10 }, kind: 'error' })
    expect(store.sendText(CONV, 'x'.repeat(10))).toBe(true)
  })

  it('being removed closes the composer; a dismissal too; a mute for a member until it ends', async () => {
    const { server, store, conn } = setup()
    store.boot()
    await settle()
    expect(store.writeBlock(CONV)).toBeNull()
    conn().push({ type: 'msg', msg: server.store(2, 'system', { event: 'dismissed', actor: 2 }) })
    expect(store.writeBlock(CONV)).toEqual({ key: 'dismissed' })
    conn().push({ type: 'msg', msg: server.store(2, 'system', { event: 'kicked', users: [1], actor: 2 }) })
    expect(store.state.leftGroups[7]).toBe(true)
    expect(store.writeBlock(CONV)).toEqual({ key: 'left' })
  })

  it('sends an uploaded image by its id and shows it from the upload until the copy arrives', async () => {
    const { server, store } = setup()
    store.boot()
    await settle()
    const up = { upload: 'a'.repeat(32), kind: 'image' as const, name: 'cat.png', size: 10, mime: 'image/png', width: 4, height: 3 }
    store.sendMedia(CONV, up)
    const c = store.state.convs[CONV]!
    expect(c.outbox[0]).toMatchObject({ type: 'image', body: { upload: up.upload }, view: { name: 'cat.png' } })
    await settle()
    const send = server.requests.find((f) => f.type === 'send')
    expect(send).toMatchObject({ msg_type: 'image', body: { upload: up.upload } })
    expect(c.outbox).toEqual([])
    expect(c.messages.at(-1)).toMatchObject({ type: 'image', body: { upload: up.upload, name: 'cat.png', width: 4 } })
  })

  it('asks read receipts on demand, reuses them briefly, and never floods', async () => {
    const { server, store } = setup()
    store.boot()
    await settle()
    await store.loadReceipts(CONV, 1)
    await store.loadReceipts(CONV, 1)
    expect(server.receiptsAsked).toBe(1)
    expect(store.receiptsOf(CONV, 1)).toMatchObject({ read: 1, total: 2, readers: [2] })
    await store.loadReceipts(CONV, 1, true)
    expect(server.receiptsAsked).toBe(2)
    // Many at once: at most two in flight, the rest are skipped (hovering again asks again).
    await Promise.all([2, 3, 4, 5, 6].map((seq) => store.loadReceipts(CONV, seq)))
    expect(server.receiptsAsked).toBe(4)
  })
})
