/**
 * Settings → Integrations (docs/integrations.md): my bots and their tokens, incoming and outgoing webhooks.
 *
 * Created by the settings section while it is open (nothing here needs to live longer). Secrets — a bot
 * token, an incoming webhook's URL — come back from the server once and are stored only hashed, so the one
 * just issued is kept in `state.revealed` until the user dismisses it; a list never shows one again.
 * Every failure lands in its section's `errors` entry as a sentence (never swallowed, never a bare code).
 */
import { reactive } from 'vue'
import { ApiError, type Api } from '../api/rest'
import type { Bot, BotScope, BotToken, ConvId, Delivery, HookEvent, IncomingHook, OutgoingHook, UserId } from '../api/types'
import { errorText, hasKey, t } from '../i18n'

export type Section = 'bots' | 'incoming' | 'outgoing'

/** A secret shown this once: which thing it belongs to, and the text to copy. */
export interface Revealed {
  section: Section
  /** The bot, the incoming hook or the outgoing hook it belongs to. */
  owner: number
  value: string
}

/** The words for an integration call's failure: the machine-readable code decides, the server's message
 * fills in the detail ("you may own at most 3 bots", "url: an http:// or https:// URL…"). */
export function describeError(e: unknown): string {
  if (!(e instanceof ApiError)) return t('err.internal')
  const key = `int.err.${e.code}`
  if (hasKey(key)) return t(key, { message: e.message })
  return errorText(e.code, e.message)
}

export type HookHealth = 'ok' | 'retrying' | 'disabled'

/** An outgoing webhook's state in words the list shows: disabled after too many failures, retrying while
 * the event at its cursor keeps failing, otherwise fine. */
export function hookHealth(h: Pick<OutgoingHook, 'enabled' | 'failures'>): HookHealth {
  if (!h.enabled) return 'disabled'
  return h.failures > 0 ? 'retrying' : 'ok'
}

/** The incoming webhook's full URL: the server answers with its path only. */
export function absoluteUrl(path: string, origin: string): string {
  return /^https?:\/\//.test(path) ? path : origin.replace(/\/+$/, '') + path
}

/** A copy-and-paste test of an incoming webhook (docs/integrations.md, "Incoming webhooks"). */
export function curlExample(url: string): string {
  return `curl -X POST '${url}' -H 'Content-Type: application/json' -d '{"text": "Hello from a webhook"}'`
}

/** Tokens a list should offer to revoke first: live ones, newest first; revoked ones after them. */
export function orderTokens(tokens: readonly BotToken[]): BotToken[] {
  return [...tokens].sort((a, b) => Number(a.revoked) - Number(b.revoked) || b.created_at - a.created_at)
}

export function createIntegrations(api: Api, origin: string = globalThis.location?.origin ?? '') {
  const state = reactive({
    loaded: false,
    bots: [] as Bot[],
    tokens: {} as Record<UserId, BotToken[]>,
    incoming: [] as IncomingHook[],
    outgoing: [] as OutgoingHook[],
    deliveries: {} as Record<number, Delivery[]>,
    revealed: null as Revealed | null,
    errors: { bots: '', incoming: '', outgoing: '' } as Record<Section, string>,
    busy: { bots: false, incoming: false, outgoing: false } as Record<Section, boolean>,
  })

  /** Run one call for a section: its error is cleared before and set on failure; false if it failed. */
  async function attempt(section: Section, work: () => Promise<void>): Promise<boolean> {
    state.errors[section] = ''
    state.busy[section] = true
    try {
      await work()
      return true
    } catch (e) {
      state.errors[section] = describeError(e)
      return false
    } finally {
      state.busy[section] = false
    }
  }

  async function load(): Promise<void> {
    await Promise.all([
      attempt('bots', async () => {
        state.bots = await api.bots()
        await Promise.all(state.bots.map((b) => loadTokens(b.user.id)))
      }),
      attempt('incoming', async () => {
        state.incoming = (await api.incomingHooks()).filter((h) => !h.revoked)
      }),
      attempt('outgoing', async () => {
        state.outgoing = await api.outgoingHooks()
      }),
    ])
    state.loaded = true
  }

  async function loadTokens(bot: UserId): Promise<void> {
    state.tokens[bot] = orderTokens(await api.botTokens(bot))
  }

  const createBot = (username: string, nickname?: string) =>
    attempt('bots', async () => {
      const bot = await api.createBot(username.trim(), nickname?.trim() || undefined)
      state.bots = [...state.bots, bot]
      state.tokens[bot.user.id] = []
    })

  const issueToken = (bot: UserId, scopes: BotScope[], name: string) =>
    attempt('bots', async () => {
      const issued = await api.issueBotToken(bot, scopes, name.trim())
      state.revealed = { section: 'bots', owner: bot, value: issued.secret }
      state.tokens[bot] = orderTokens([issued.token, ...(state.tokens[bot] ?? [])])
    })

  const revokeToken = (bot: UserId, token: number) =>
    attempt('bots', async () => {
      await api.revokeBotToken(bot, token)
      await loadTokens(bot)
    })

  const createIncoming = (conv: ConvId, bot: UserId, name: string) =>
    attempt('incoming', async () => {
      const created = await api.createIncomingHook({ conv, bot_id: bot, name: name.trim() })
      state.revealed = { section: 'incoming', owner: created.hook.id, value: absoluteUrl(created.url, origin) }
      state.incoming = [created.hook, ...state.incoming]
    })

  const revokeIncoming = (id: number) =>
    attempt('incoming', async () => {
      await api.revokeIncomingHook(id)
      state.incoming = state.incoming.filter((h) => h.id !== id)
      if (state.revealed?.section === 'incoming' && state.revealed.owner === id) state.revealed = null
    })

  const createOutgoing = (conv: ConvId, url: string, events: HookEvent[], bot?: UserId) =>
    attempt('outgoing', async () => {
      const body: { conv: ConvId; url: string; events: HookEvent[]; bot_id?: UserId } = { conv, url: url.trim(), events }
      if (bot !== undefined) body.bot_id = bot
      const hook = await api.createOutgoingHook(body)
      state.revealed = { section: 'outgoing', owner: hook.id, value: hook.secret }
      state.outgoing = [hook, ...state.outgoing]
    })

  function replace(hook: OutgoingHook): void {
    state.outgoing = state.outgoing.map((h) => (h.id === hook.id ? hook : h))
  }

  const enableOutgoing = (id: number) => attempt('outgoing', async () => replace(await api.enableOutgoingHook(id)))

  const deleteOutgoing = (id: number) =>
    attempt('outgoing', async () => {
      await api.deleteOutgoingHook(id)
      state.outgoing = state.outgoing.filter((h) => h.id !== id)
      delete state.deliveries[id]
    })

  /** The delivery log, and the hook's state with it (a failure may have just disabled it). */
  const loadDeliveries = (id: number) =>
    attempt('outgoing', async () => {
      const [log, hooks] = await Promise.all([api.hookDeliveries(id), api.outgoingHooks()])
      state.deliveries[id] = log
      const fresh = hooks.find((h) => h.id === id)
      if (fresh) replace(fresh)
    })

  function dismissSecret(): void {
    state.revealed = null
  }

  return {
    state,
    load,
    createBot,
    issueToken,
    revokeToken,
    createIncoming,
    revokeIncoming,
    createOutgoing,
    enableOutgoing,
    deleteOutgoing,
    loadDeliveries,
    dismissSecret,
  }
}

export type Integrations = ReturnType<typeof createIntegrations>
