/**
 * The WebSocket connection (protocol.md, "WebSocket"): authenticate first, ping every `heartbeat` seconds,
 * match replies to requests by `rid`, and reconnect after a drop with backoff (0.5 s doubling to 30 s, with
 * jitter).
 *
 * Close codes split by range into "terminal" (4000–4499) and "reconnect" (everything else):
 * - 4401: refresh the token, then reconnect; if the refresh fails the session is over.
 * - 4403: the session is over (`onEnded`).
 * - 4409: another tab or window of this terminal (with a device id: of this device) took over; stay closed
 *   until `reconnectNow()`.
 * - 4410: too many sessions of this user, this one was the idlest: `stopped`, never reconnect by itself.
 * - any other code in 4000–4499 (4400, or one this client has never seen): stay closed (`stopped`) until
 *   `reconnectNow()`, since reconnecting would repeat the refusal.
 * - anything else, or a silent socket: reconnect with backoff.
 *
 * The connection knows nothing about chat state: after each `auth_ok` it calls `onReady`, and the store runs
 * the sync algorithm from there; pushes go to `onPush`.
 */
import { CloseCode, isTerminalClose } from './types'
import type { AuthOkFrame, ClientFrame, PushFrame, ServerFrame, Terminal } from './types'

export type ConnStatus =
  | 'idle' // not started, or stopped
  | 'connecting' // socket opening or auth in flight
  | 'online' // auth_ok received
  | 'waiting' // dropped, a reconnect is scheduled
  | 'replaced' // 4409: another tab took over
  | 'stopped' // another terminal close code (4000–4499): stay closed until reconnectNow()
  | 'ended' // the session is over (4403, or 4401 and the refresh failed)

export class WsError extends Error {
  constructor(
    public readonly code: string,
    message: string,
    public readonly retryAfter?: number,
  ) {
    super(message)
  }
}

export interface ConnectionOptions {
  url: string
  terminal: Terminal
  /** This tab's device id (protocol.md, "Several live sessions per user"), read at every auth. */
  device?: () => string
  /** A valid access token (refreshed beforehand if close to expiry). Throws if the session is over. */
  getToken: () => Promise<string>
  /** Force a refresh after a 4401. Throws if the session is over. */
  refreshToken: () => Promise<unknown>
  onReady: (auth: AuthOkFrame) => void
  onPush: (frame: PushFrame) => void
  onStatus?: (status: ConnStatus, detail?: { retryInMs?: number; code?: number }) => void
  onEnded?: (reason: string) => void
  WebSocketImpl?: typeof WebSocket
  random?: () => number
  /** Default timeout of a request, in ms. */
  requestTimeoutMs?: number
}

interface Pending {
  resolve: (f: ServerFrame) => void
  reject: (e: Error) => void
  timer: ReturnType<typeof setTimeout>
}

const BACKOFF_MIN_MS = 500
const BACKOFF_MAX_MS = 30_000

/** Backoff before reconnect attempt `n` (0-based): 0.5 s doubling to 30 s, then "full jitter" on the upper half. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16))
  return Math.round(base / 2 + (random() * base) / 2)
}

export class Connection {
  status: ConnStatus = 'idle'
  private ws: WebSocket | null = null
  private attempt = 0
  private unauthorizedInARow = 0
  private rid = 0
  private pending = new Map<string, Pending>()
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null
  private pingTimer: ReturnType<typeof setInterval> | null = null
  private watchdog: ReturnType<typeof setTimeout> | null = null
  private heartbeatMs = 25_000
  private readonly WS: typeof WebSocket
  private readonly random: () => number

  constructor(private readonly opts: ConnectionOptions) {
    this.WS = opts.WebSocketImpl ?? WebSocket
    this.random = opts.random ?? Math.random
  }

  get online(): boolean {
    return this.status === 'online'
  }

  start(): void {
    if (['idle', 'replaced', 'stopped', 'waiting'].includes(this.status)) void this.open()
  }

  /** Close for good (logout, page teardown). */
  stop(): void {
    this.clearTimers()
    this.attempt = 0
    const ws = this.ws
    this.detach()
    ws?.close(CloseCode.normal)
    this.setStatus('idle')
  }

  /** Skip the backoff wait (the browser came back online, or the user chose "use here" after 4409). */
  reconnectNow(): void {
    if (this.status === 'ended') return
    if (this.status === 'online' || this.status === 'connecting') return
    this.attempt = 0
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    void this.open()
  }

  /** Send a frame that expects a reply; resolves with the reply, rejects with WsError on `error`. */
  request<T extends ServerFrame>(frame: ClientFrame, timeoutMs = this.opts.requestTimeoutMs ?? 15_000): Promise<T> {
    if (!this.ws || this.status !== 'online') return Promise.reject(new WsError('disconnected', 'not connected'))
    const rid = `r${++this.rid}`
    const ws = this.ws
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid)
        reject(new WsError('timeout', `no reply to ${frame.type}`))
      }, timeoutMs)
      this.pending.set(rid, { resolve: resolve as (f: ServerFrame) => void, reject, timer })
      ws.send(JSON.stringify({ ...frame, rid }))
    })
  }

  /** Fire and forget (typing, ping). Returns false when not connected. */
  send(frame: ClientFrame): boolean {
    if (!this.ws || this.status !== 'online') return false
    this.ws.send(JSON.stringify(frame))
    return true
  }

  // ---- internals ------------------------------------------------------------------------------------

  private async open(): Promise<void> {
    this.clearTimers()
    this.detach()
    this.setStatus('connecting')
    let token: string
    try {
      token = await this.opts.getToken()
    } catch (e) {
      if ((e as { name?: string }).name === 'SessionExpired' || (e as { code?: string }).code === 'unauthorized') {
        this.end('unauthorized')
      } else {
        this.scheduleReconnect() // the refresh itself failed on the network: try again later
      }
      return
    }
    if (this.status !== 'connecting') return // stopped while waiting for the token
    let ws: WebSocket
    try {
      ws = new this.WS(this.opts.url)
    } catch {
      this.scheduleReconnect()
      return
    }
    this.ws = ws
    ws.onopen = () => {
      const device = this.opts.device?.()
      const auth: Extract<ClientFrame, { type: 'auth' }> = { type: 'auth', token, terminal: this.opts.terminal }
      if (device) auth.device = device
      ws.send(JSON.stringify(auth))
      this.armWatchdog(15_000) // auth_ok must come quickly
    }
    ws.onmessage = (ev: MessageEvent) => this.onFrame(ev.data)
    ws.onclose = (ev: CloseEvent) => this.onClose(ev.code)
    ws.onerror = () => {
      /* a close event follows */
    }
  }

  private onFrame(data: unknown): void {
    if (typeof data !== 'string') return
    let f: ServerFrame
    try {
      f = JSON.parse(data) as ServerFrame
    } catch {
      return
    }
    this.armWatchdog(this.heartbeatMs * 2 + 5_000)
    if (f.type === 'auth_ok') {
      this.attempt = 0
      this.unauthorizedInARow = 0
      this.heartbeatMs = Math.max(1, f.heartbeat || 25) * 1000
      this.armWatchdog(this.heartbeatMs * 2 + 5_000)
      if (this.pingTimer) clearInterval(this.pingTimer)
      this.pingTimer = setInterval(() => this.send({ type: 'ping' }), this.heartbeatMs)
      this.setStatus('online')
      this.opts.onReady(f)
      return
    }
    if (f.type === 'pong') return
    const rid = 'rid' in f && f.rid !== undefined && f.rid !== null ? String(f.rid) : null
    if (rid !== null && this.pending.has(rid)) {
      const p = this.pending.get(rid)!
      this.pending.delete(rid)
      clearTimeout(p.timer)
      if (f.type === 'error') p.reject(new WsError(f.code, f.message, f.retry_after))
      else p.resolve(f)
      return
    }
    switch (f.type) {
      case 'msg':
      case 'news':
      case 'read':
      case 'typing':
      case 'presence':
      case 'friend':
      case 'call_incoming':
      case 'call_ringing':
      case 'call_accepted':
      case 'call_ended':
      case 'call_sdp':
      case 'call_ice':
      case 'profile':
      case 'remark':
      case 'block':
      case 'prefs':
      case 'receipts':
      case 'hidden':
        this.opts.onPush(f)
        return
      default:
        return // a late reply to a timed-out request, or an error without rid: nothing to do
    }
  }

  private onClose(code: number): void {
    this.detach()
    this.clearTimers()
    if (this.status === 'idle' || this.status === 'ended') return
    switch (code) {
      case CloseCode.revoked:
        this.end('revoked')
        return
      case CloseCode.replaced:
        this.setStatus('replaced', { code })
        return
      case CloseCode.unauthorized:
        this.unauthorizedInARow++
        if (this.unauthorizedInARow > 2) {
          this.end('unauthorized')
          return
        }
        this.setStatus('connecting', { code })
        this.opts.refreshToken().then(
          () => void this.open(),
          (e: unknown) => {
            if ((e as { name?: string }).name === 'SessionExpired') this.end('unauthorized')
            else this.scheduleReconnect()
          },
        )
        return
      default:
        if (isTerminalClose(code)) this.setStatus('stopped', { code })
        else this.scheduleReconnect(code)
    }
  }

  private scheduleReconnect(code?: number): void {
    const delay = backoffDelay(this.attempt++, this.random)
    this.setStatus('waiting', { retryInMs: delay, code })
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      void this.open()
    }, delay)
  }

  private armWatchdog(ms: number): void {
    if (this.watchdog) clearTimeout(this.watchdog)
    this.watchdog = setTimeout(() => {
      // Nothing heard (not even a pong): the socket is dead without a close event. Drop it ourselves.
      const ws = this.ws
      this.detach()
      try {
        ws?.close(4000)
      } catch {
        /* already closing */
      }
      this.clearTimers()
      this.scheduleReconnect()
    }, ms)
  }

  private detach(): void {
    const ws = this.ws
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null
    }
    this.ws = null
    for (const [, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(new WsError('disconnected', 'connection lost'))
    }
    this.pending.clear()
  }

  private clearTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer)
    if (this.watchdog) clearTimeout(this.watchdog)
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.pingTimer = this.watchdog = this.reconnectTimer = null
  }

  private end(reason: string): void {
    this.clearTimers()
    this.detach()
    this.setStatus('ended')
    this.opts.onEnded?.(reason)
  }

  private setStatus(s: ConnStatus, detail?: { retryInMs?: number; code?: number }): void {
    this.status = s
    this.opts.onStatus?.(s, detail)
  }
}
