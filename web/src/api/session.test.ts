import { describe, expect, it, vi } from 'vitest'
import { Session, SessionExpired, type KeyValueStorage } from './session'
import type { Tokens } from './types'

const USER = { id: 1, username: 'a', nickname: '', signature: '', avatar: null }

function storage(): KeyValueStorage & { m: Map<string, string> } {
  const m = new Map<string, string>()
  return { m, getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v), removeItem: (k) => void m.delete(k) }
}

function tokens(n: number): Tokens {
  return { user: USER, access_token: `a${n}`, refresh_token: `r${n}`, expires_in: 900 }
}

describe('Session', () => {
  it('refreshes once for concurrent callers (refresh tokens are single-use)', async () => {
    let n = 1
    const call = vi.fn(async () => tokens(++n))
    let now = 0
    const s = new Session(storage(), call, () => now)
    s.set(tokens(1))
    now = 900_000 // expired
    const [a, b] = await Promise.all([s.accessToken(), s.accessToken()])
    expect(call).toHaveBeenCalledOnce()
    expect(call).toHaveBeenCalledWith('r1')
    expect(a).toBe('a2')
    expect(b).toBe('a2')
  })

  it('adopts a pair another tab stored instead of spending the old refresh token', async () => {
    const st = storage()
    const call = vi.fn(async () => tokens(9))
    const s = new Session(st, call, () => 0)
    s.set(tokens(1))
    // Another tab refreshed: storage now holds a fresh pair this tab has not seen.
    st.setItem('hubbub.session', JSON.stringify({ user: USER, access_token: 'a2', refresh_token: 'r2', expires_at: 900_000 }))
    const fresh = await s.refresh()
    expect(call).not.toHaveBeenCalled()
    expect(fresh.refresh_token).toBe('r2')
  })

  it('clears the session when the server refuses the refresh', async () => {
    const st = storage()
    const s = new Session(st, async () => Promise.reject(Object.assign(new Error('x'), { code: 'token_revoked' })))
    s.set(tokens(1))
    await expect(s.refresh()).rejects.toBeInstanceOf(SessionExpired)
    expect(s.value).toBeNull()
    expect(st.m.size).toBe(0)
  })

  it('keeps the session on a network failure', async () => {
    const s = new Session(storage(), async () => Promise.reject(Object.assign(new Error('x'), { code: 'network' })))
    s.set(tokens(1))
    await expect(s.refresh()).rejects.toThrow()
    expect(s.value?.refresh_token).toBe('r1')
  })
})
