import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Connection, backoffDelay, type ConnStatus } from './socket'
import type { PushFrame } from './types'

class FakeWS {
  static all: FakeWS[] = []
  onopen: (() => void) | null = null
  onmessage: ((e: { data: string }) => void) | null = null
  onclose: ((e: { code: number }) => void) | null = null
  onerror: (() => void) | null = null
  sent: Record<string, unknown>[] = []
  closed: number | null = null
  constructor(public url: string) {
    FakeWS.all.push(this)
  }
  send(s: string) {
    this.sent.push(JSON.parse(s))
  }
  close(code: number) {
    this.closed = code
  }
  // test helpers
  open() {
    this.onopen?.()
  }
  recv(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) })
  }
  serverClose(code: number) {
    this.onclose?.({ code })
  }
}

const USER = { id: 1, username: 'a', nickname: '', signature: '', avatar: null }

function make(over: Partial<ConstructorParameters<typeof Connection>[0]> = {}) {
  const statuses: ConnStatus[] = []
  const ready = vi.fn()
  const pushes: PushFrame[] = []
  const ended = vi.fn()
  const refresh = vi.fn(async () => {})
  const conn = new Connection({
    url: 'ws://x/ws',
    terminal: 'web',
    getToken: async () => 'tok',
    refreshToken: refresh,
    onReady: ready,
    onPush: (f) => pushes.push(f),
    onStatus: (s) => statuses.push(s),
    onEnded: ended,
    WebSocketImpl: FakeWS as unknown as typeof WebSocket,
    random: () => 1,
    ...over,
  })
  return { conn, statuses, ready, pushes, ended, refresh }
}

async function connected(env: ReturnType<typeof make>): Promise<FakeWS> {
  env.conn.start()
  await vi.advanceTimersByTimeAsync(0)
  const ws = FakeWS.all[FakeWS.all.length - 1]!
  ws.open()
  ws.recv({ type: 'auth_ok', user: USER, terminal: 'web', heartbeat: 25, ts: 0 })
  return ws
}

beforeEach(() => {
  vi.useFakeTimers()
  FakeWS.all = []
})
afterEach(() => vi.useRealTimers())

describe('backoffDelay', () => {
  it('doubles from 0.5 s to a 30 s cap, jittered within the upper half', () => {
    expect(backoffDelay(0, () => 1)).toBe(500)
    expect(backoffDelay(1, () => 1)).toBe(1000)
    expect(backoffDelay(3, () => 0)).toBe(2000)
    expect(backoffDelay(20, () => 1)).toBe(30_000)
  })
})

describe('Connection', () => {
  it('authenticates first, then pings every heartbeat', async () => {
    const env = make()
    const ws = await connected(env)
    expect(ws.sent[0]).toEqual({ type: 'auth', token: 'tok', terminal: 'web' })
    expect(env.ready).toHaveBeenCalledOnce()
    expect(env.conn.status).toBe('online')
    await vi.advanceTimersByTimeAsync(25_000)
    expect(ws.sent.at(-1)).toEqual({ type: 'ping' })
  })

  it('sends this tab\'s device id at every auth, and stays closed after 4410 evicted', async () => {
    let id = 't-1'
    const env = make({ device: () => id })
    const ws = await connected(env)
    expect(ws.sent[0]).toEqual({ type: 'auth', token: 'tok', terminal: 'web', device: 't-1' })
    id = 't-2'
    ws.serverClose(4410)
    expect(env.conn.status).toBe('stopped')
    await vi.advanceTimersByTimeAsync(60_000)
    expect(FakeWS.all.length).toBe(1) // evicted: no reconnect by itself (it would evict another session)
    env.conn.reconnectNow()
    await vi.advanceTimersByTimeAsync(0)
    const again = FakeWS.all[FakeWS.all.length - 1]!
    again.open()
    expect(again.sent[0]).toEqual({ type: 'auth', token: 'tok', terminal: 'web', device: 't-2' })
  })

  it('matches replies by rid and rejects on error frames', async () => {
    const env = make()
    const ws = await connected(env)
    const p1 = env.conn.request({ type: 'sync' })
    const p2 = env.conn.request({ type: 'read', conv: 'p:1:2', seq: 3 })
    const [s1, s2] = ws.sent.slice(-2) as { rid: string }[]
    ws.recv({ type: 'error', rid: s2!.rid, code: 'forbidden', message: 'no' })
    ws.recv({ type: 'sync_result', rid: s1!.rid, conversations: [] })
    await expect(p1).resolves.toMatchObject({ type: 'sync_result' })
    await expect(p2).rejects.toMatchObject({ code: 'forbidden' })
  })

  it('hands pushes to onPush', async () => {
    const env = make()
    const ws = await connected(env)
    ws.recv({ type: 'presence', user: 2, online: true, terminals: ['web'] })
    expect(env.pushes).toHaveLength(1)
  })

  it('reconnects with backoff after a drop and rejects pending requests', async () => {
    const env = make()
    const ws = await connected(env)
    const p = env.conn.request({ type: 'sync' })
    ws.serverClose(1006)
    await expect(p).rejects.toMatchObject({ code: 'disconnected' })
    expect(env.conn.status).toBe('waiting')
    await vi.advanceTimersByTimeAsync(499)
    expect(FakeWS.all).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(FakeWS.all).toHaveLength(2)
  })

  it('4409 replaced: stays closed until reconnectNow', async () => {
    const env = make()
    const ws = await connected(env)
    ws.serverClose(4409)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(env.conn.status).toBe('replaced')
    expect(FakeWS.all).toHaveLength(1)
    env.conn.reconnectNow()
    await vi.advanceTimersByTimeAsync(0)
    expect(FakeWS.all).toHaveLength(2)
  })

  it.each([4400, 4444, 4499])('%i, a terminal code it has no case for: stays closed until reconnectNow', async (code) => {
    const env = make()
    const ws = await connected(env)
    ws.serverClose(code)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(env.conn.status).toBe('stopped')
    expect(FakeWS.all).toHaveLength(1)
    env.conn.reconnectNow()
    await vi.advanceTimersByTimeAsync(0)
    expect(FakeWS.all).toHaveLength(2)
  })

  it.each([4508, 4529, 4530, 4777, 1011])('%i, a reconnect code (seen or not): reconnects with backoff', async (code) => {
    const env = make()
    const ws = await connected(env)
    ws.serverClose(code)
    expect(env.conn.status).toBe('waiting')
    await vi.advanceTimersByTimeAsync(500)
    expect(FakeWS.all).toHaveLength(2)
  })

  it('4401: refreshes the token then reconnects at once', async () => {
    const env = make()
    const ws = await connected(env)
    ws.serverClose(4401)
    await vi.advanceTimersByTimeAsync(0)
    expect(env.refresh).toHaveBeenCalledOnce()
    expect(FakeWS.all).toHaveLength(2)
  })

  it('4403: the session is over', async () => {
    const env = make()
    const ws = await connected(env)
    ws.serverClose(4403)
    expect(env.conn.status).toBe('ended')
    expect(env.ended).toHaveBeenCalledWith('revoked')
  })

  it('drops a silent socket and reconnects', async () => {
    const env = make()
    await connected(env)
    await vi.advanceTimersByTimeAsync(25_000 * 2 + 5_000 + 1)
    expect(env.conn.status).toBe('waiting')
    await vi.advanceTimersByTimeAsync(500)
    expect(FakeWS.all).toHaveLength(2)
  })
})
