/**
 * The login session: the token pair, kept in localStorage so a reload stays logged in, and the one place
 * that refreshes it.
 *
 * Refresh tokens are single-use and replaying a spent one revokes the whole session (protocol.md), so two
 * refreshes must never race: within a tab one refresh is in flight at a time (single flight), and across
 * tabs the refresh runs under a Web Lock and first re-reads storage, adopting a pair another tab just got.
 */
import type { Tokens, User } from './types'

export interface StoredSession {
  user: User
  access_token: string
  refresh_token: string
  /** Milliseconds since the epoch (client clock) when the access token expires. */
  expires_at: number
  /** When to refresh ahead of expiry (a minute before, or a fifth of the lifetime if that is shorter). */
  refresh_at?: number
}

export interface KeyValueStorage {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

/** What performs the HTTP call; kept out so the session is testable without fetch. */
export type RefreshCall = (refreshToken: string) => Promise<Tokens>

export class SessionExpired extends Error {
  constructor(public readonly code: string) {
    super(`session ended: ${code}`)
    this.name = 'SessionExpired'
  }
}

const KEY = 'hubbub.session'
/** Refresh up to this long before the access token expires, so a request or reconnect never carries a dying one. */
const EARLY_MS = 60_000

export class Session {
  private current: StoredSession | null
  private inflight: Promise<StoredSession> | null = null
  private listeners = new Set<(s: StoredSession | null) => void>()

  constructor(
    private readonly storage: KeyValueStorage,
    private readonly refreshCall: RefreshCall,
    private readonly now: () => number = Date.now,
  ) {
    this.current = this.load()
  }

  get value(): StoredSession | null {
    return this.current
  }

  onChange(fn: (s: StoredSession | null) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /** Store a pair returned by register, login, refresh or a password change. */
  set(tokens: Tokens): StoredSession {
    const ttl = tokens.expires_in * 1000
    const s: StoredSession = {
      user: tokens.user,
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at: this.now() + ttl,
      refresh_at: this.now() + ttl - Math.min(EARLY_MS, ttl / 5),
    }
    this.save(s)
    return s
  }

  updateUser(user: User): void {
    if (!this.current) return
    this.save({ ...this.current, user })
  }

  clear(): void {
    this.current = null
    this.storage.removeItem(KEY)
    this.emit()
  }

  /** An access token that is valid for at least another minute, refreshing first if needed. */
  async accessToken(): Promise<string> {
    const s = this.current ?? this.load()
    if (!s) throw new SessionExpired('unauthorized')
    if (this.now() < refreshAt(s)) return s.access_token
    return (await this.refresh()).access_token
  }

  /**
   * Exchange the refresh token for a new pair. Concurrent callers share one exchange. Throws
   * SessionExpired (and clears the session) when the server refuses: the user must log in again.
   */
  refresh(): Promise<StoredSession> {
    if (!this.inflight) {
      const stale = this.current?.access_token
      this.inflight = withLock('hubbub-refresh', () => this.doRefresh(stale)).finally(() => {
        this.inflight = null
      })
    }
    return this.inflight
  }

  private async doRefresh(staleAccess: string | undefined): Promise<StoredSession> {
    // Another tab may have refreshed while we waited for the lock: its pair is in storage.
    const stored = this.load()
    if (!stored) {
      this.clear()
      throw new SessionExpired('unauthorized')
    }
    if (stored.access_token !== staleAccess && this.now() < refreshAt(stored)) {
      this.current = stored
      this.emit()
      return stored
    }
    let tokens: Tokens
    try {
      tokens = await this.refreshCall(stored.refresh_token)
    } catch (e) {
      const code = (e as { code?: string }).code
      if (code === 'unauthorized' || code === 'token_revoked' || code === 'token_expired' || code === 'not_found') {
        this.clear()
        throw new SessionExpired(code)
      }
      throw e // network trouble: keep the session, the caller retries later
    }
    return this.set(tokens)
  }

  private load(): StoredSession | null {
    try {
      const raw = this.storage.getItem(KEY)
      if (!raw) return null
      const s = JSON.parse(raw) as StoredSession
      if (typeof s.refresh_token !== 'string' || typeof s.access_token !== 'string' || !s.user) return null
      return s
    } catch {
      return null
    }
  }

  private save(s: StoredSession): void {
    this.current = s
    this.storage.setItem(KEY, JSON.stringify(s))
    this.emit()
  }

  private emit(): void {
    for (const fn of this.listeners) fn(this.current)
  }
}

function refreshAt(s: StoredSession): number {
  return s.refresh_at ?? s.expires_at - EARLY_MS
}

async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks
  if (locks?.request) return locks.request(name, fn) as Promise<T>
  return fn()
}
