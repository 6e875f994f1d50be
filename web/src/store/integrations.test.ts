import { describe, expect, it } from 'vitest'
import { Api, ApiError } from '../api/rest'
import type { Bot, BotToken, OutgoingHook } from '../api/types'
import { absoluteUrl, createIntegrations, curlExample, describeError, hookHealth, orderTokens } from './integrations'

describe('describeError', () => {
  it('puts the code into words and keeps the server’s detail', () => {
    expect(describeError(new ApiError(403, 'forbidden', 'you may own at most 3 bots'))).toBe('Not allowed: you may own at most 3 bots.')
    expect(describeError(new ApiError(422, 'invalid_field', 'url: an http:// or https:// URL'))).toBe(
      'Please check the form — url: an http:// or https:// URL',
    )
    expect(describeError(new ApiError(409, 'username_taken', 'taken'))).toBe('That username is taken')
  })
  it('falls back to the server’s message for a code it does not know, and never shows nothing', () => {
    expect(describeError(new ApiError(400, 'brand_new_code', 'a new rule said no'))).toBe('a new rule said no')
    expect(describeError(new Error('boom'))).toBe('Something went wrong')
  })
})

describe('helpers', () => {
  it('tells an outgoing webhook’s state', () => {
    expect(hookHealth({ enabled: true, failures: 0 })).toBe('ok')
    expect(hookHealth({ enabled: true, failures: 2 })).toBe('retrying')
    expect(hookHealth({ enabled: false, failures: 5 })).toBe('disabled')
  })
  it('makes the hook path a full URL and a curl line to try it', () => {
    expect(absoluteUrl('/api/v1/hooks/hbw_x', 'https://chat.example.org/')).toBe('https://chat.example.org/api/v1/hooks/hbw_x')
    expect(absoluteUrl('https://a.example/x', 'https://b.example')).toBe('https://a.example/x')
    expect(curlExample('https://h/api/v1/hooks/hbw_x')).toContain("-X POST 'https://h/api/v1/hooks/hbw_x'")
  })
  it('lists live tokens first, newest first', () => {
    const tk = (id: number, created_at: number, revoked = false): BotToken => ({ id, bot_id: 9, scopes: ['send'], name: '', created_at, revoked })
    expect(orderTokens([tk(1, 10), tk(2, 30, true), tk(3, 20)]).map((x) => x.id)).toEqual([3, 1, 2])
  })
})

// ---- the store against a scripted server: each route answers as docs/protocol.md says -----------------------
const bot: Bot = { user: { id: 9, username: 'deploy_bot', nickname: 'Deploy', signature: '', avatar: null, bot: true }, owner_id: 1, created_at: 1000 }
const hook = (p: Partial<OutgoingHook> = {}): OutgoingHook => ({
  id: 4,
  owner_id: 1,
  conv: 'p:1:9',
  url: 'https://example.org/h',
  secret: 'abc123',
  events: ['message'],
  bot_id: null,
  cursor_seq: 0,
  enabled: true,
  failures: 0,
  next_attempt_at: 0,
  created_at: 2000,
  ...p,
})

function server(overrides: Record<string, () => Response> = {}) {
  const calls: string[] = []
  let tokens: BotToken[] = []
  let outgoing = [hook()]
  const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status })
  const fetchImpl = (async (url: string, init: RequestInit) => {
    const path = url.replace(/^.*\/api\/v1/, '')
    const key = `${init.method} ${path}`
    calls.push(key)
    if (overrides[key]) return overrides[key]()
    switch (key) {
      case 'GET /bots':
        return json({ bots: [bot] })
      case 'GET /bots/9/tokens':
        return json({ tokens })
      case 'POST /bots/9/tokens': {
        const body = JSON.parse(String(init.body))
        const token: BotToken = { id: tokens.length + 1, bot_id: 9, scopes: body.scopes, name: body.name, created_at: 3000, revoked: false }
        tokens = [token, ...tokens]
        return json({ token, secret: 'hbb_secret' }, 201)
      }
      case 'DELETE /bots/9/tokens/1':
        tokens = tokens.map((x) => (x.id === 1 ? { ...x, revoked: true } : x))
        return new Response(null, { status: 204 })
      case 'GET /webhooks/incoming':
        return json({ hooks: [] })
      case 'POST /webhooks/incoming':
        return json({ hook: { id: 7, conv: 'p:1:9', bot_id: 9, owner_id: 1, name: 'CI', created_at: 1, revoked: false }, url: '/api/v1/hooks/hbw_s' }, 201)
      case 'DELETE /webhooks/incoming/7':
        return new Response(null, { status: 204 })
      case 'GET /webhooks/outgoing':
        return json({ hooks: outgoing })
      case 'GET /webhooks/outgoing/4/deliveries?limit=20':
        outgoing = [hook({ enabled: false, failures: 5 })]
        return json({ deliveries: [{ webhook_id: 4, event_id: 'e1', event: 'message', attempt: 5, status: 500, ok: false, response: 'no', duration_ms: 3, ts: 5, node: 'n' }] })
      case 'POST /webhooks/outgoing/4/enable':
        outgoing = [hook()]
        return json(outgoing[0])
    }
    return json({ error: { code: 'not_found', message: `${key} not found` } }, 404)
  }) as typeof fetch
  const me = { id: 1, username: 'me', nickname: 'Me', signature: '', avatar: null }
  const mem = new Map<string, string>([['hubbub.session', JSON.stringify({ user: me, access_token: 'a', refresh_token: 'r', expires_at: Date.now() + 900_000 })]])
  const storage = { getItem: (k: string) => mem.get(k) ?? null, setItem: (k: string, v: string) => void mem.set(k, v), removeItem: (k: string) => void mem.delete(k) }
  const api = new Api(storage as unknown as Storage, '', fetchImpl)
  return { api, calls }
}

describe('integrations store', () => {
  it('shows a new token once, lists it without the secret, and revokes it', async () => {
    const { api } = server()
    const int = createIntegrations(api, 'https://chat.example')
    await int.load()
    expect(int.state.loaded).toBe(true)
    expect(int.state.bots.map((b) => b.user.username)).toEqual(['deploy_bot'])
    expect(await int.issueToken(9, ['send', 'read'], ' ci ')).toBe(true)
    expect(int.state.revealed).toEqual({ section: 'bots', owner: 9, value: 'hbb_secret' })
    expect(int.state.tokens[9]).toHaveLength(1)
    expect(JSON.stringify(int.state.tokens)).not.toContain('hbb_secret')
    int.dismissSecret()
    expect(int.state.revealed).toBeNull()
    await int.revokeToken(9, 1)
    expect(int.state.tokens[9]?.[0]?.revoked).toBe(true)
  })

  it('gives an incoming webhook’s full URL once, and forgets it when the hook is revoked', async () => {
    const { api } = server()
    const int = createIntegrations(api, 'https://chat.example')
    await int.load()
    await int.createIncoming('p:1:9', 9, 'CI')
    expect(int.state.revealed?.value).toBe('https://chat.example/api/v1/hooks/hbw_s')
    expect(int.state.incoming.map((h) => h.id)).toEqual([7])
    await int.revokeIncoming(7)
    expect(int.state.incoming).toEqual([])
    expect(int.state.revealed).toBeNull()
  })

  it('a delivery log refresh brings the webhook’s state with it; enable resumes it', async () => {
    const { api } = server()
    const int = createIntegrations(api)
    await int.load()
    await int.loadDeliveries(4)
    expect(int.state.deliveries[4]?.[0]).toMatchObject({ status: 500, ok: false })
    expect(hookHealth(int.state.outgoing[0]!)).toBe('disabled')
    await int.enableOutgoing(4)
    expect(hookHealth(int.state.outgoing[0]!)).toBe('ok')
  })

  it('puts a refusal into words in its own section and clears it on the next success', async () => {
    const refuse = () => new Response(JSON.stringify({ error: { code: 'forbidden', message: 'you may own at most 3 bots' } }), { status: 403 })
    const { api } = server({ 'POST /bots': refuse })
    const int = createIntegrations(api)
    await int.load()
    expect(await int.createBot('another_bot')).toBe(false)
    expect(int.state.errors.bots).toBe('Not allowed: you may own at most 3 bots.')
    expect(int.state.errors.incoming).toBe('')
    expect(int.state.busy.bots).toBe(false)
    expect(await int.issueToken(9, ['send'], '')).toBe(true)
    expect(int.state.errors.bots).toBe('')
  })

  it('an unknown webhook (deleted elsewhere) is said plainly', async () => {
    const { api } = server()
    const int = createIntegrations(api)
    await int.load()
    expect(await int.deleteOutgoing(99)).toBe(false)
    expect(int.state.errors.outgoing).toMatch(/^Not found \(DELETE \/webhooks\/outgoing\/99 not found\)/)
  })
})
