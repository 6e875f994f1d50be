/**
 * A URL per conversation (`/chat/<conv>`, e.g. `/chat/p:3:7`, `/chat/g:12`) kept in step with the open
 * conversation, so a link opens it, a reload reopens it and the browser's Back button moves inside the app
 * (on a phone: from a chat back to the list, instead of out of the app).
 *
 * Opening a conversation pushes a history entry; Back (popstate) opens whatever the entry names. Closing a
 * chat with the app's own back arrow returns to the list's entry when the chat was opened from it, so a
 * following Back leaves the app only from the list.
 */
import { watch } from 'vue'
import type { ConvId } from '../api/types'

const CONV = /^(?:p:\d{1,18}:\d{1,18}|g:\d{1,18})$/
const PREFIX = '/chat/'

/** The conversation a path names, or null. */
export function convFromPath(path: string): ConvId | null {
  if (!path.startsWith(PREFIX)) return null
  let raw = path.slice(PREFIX.length).replace(/\/$/, '')
  try {
    raw = decodeURIComponent(raw)
  } catch {
    return null
  }
  return CONV.test(raw) ? raw : null
}

export function pathForConv(conv: ConvId | null): string {
  return conv ? `${PREFIX}${conv}` : '/'
}

/** Whether a path belongs to the chat screen (the list, or a conversation). */
export function isChatPath(path: string): boolean {
  return path === '/' || path === '' || path.startsWith(PREFIX)
}

interface HistoryState {
  /** The conversation this entry shows. */
  hubbubConv?: ConvId | null
  /** The entry before it showed the list (the app's back arrow can go back to it). */
  fromList?: boolean
}

export interface RouterDeps {
  state: { activeConv: ConvId | null; me: unknown }
  openConv: (conv: ConvId | null) => void
  history?: History
  location?: Location
  addEventListener?: (type: 'popstate', fn: () => void) => void
}

/** Wire the open conversation to the address bar. Call once, after the store exists. */
export function installDeepLinks(deps: RouterDeps): void {
  const history = deps.history ?? globalThis.history
  const location = deps.location ?? globalThis.location
  let fromPop = false
  /** A conversation in the URL before the user was logged in: opened once they are. */
  let pending: ConvId | null = convFromPath(location.pathname)

  const current = (): HistoryState => (history.state as HistoryState | null) ?? {}

  function applyPath(): void {
    const conv = convFromPath(location.pathname)
    if (!isChatPath(location.pathname)) return // /admin, /join: not ours
    if (conv === deps.state.activeConv) return
    fromPop = true
    deps.openConv(conv)
    fromPop = false
  }

  if (deps.state.me && pending) {
    deps.openConv(pending)
    pending = null
  }
  history.replaceState({ ...current(), hubbubConv: convFromPath(location.pathname) }, '', location.href)

  watch(
    () => deps.state.me,
    (me) => {
      if (me && pending) {
        const conv = pending
        pending = null
        deps.openConv(conv)
      }
    },
  )

  watch(
    () => deps.state.activeConv,
    (conv, before) => {
      if (fromPop || !deps.state.me) return
      const path = pathForConv(conv)
      if (!isChatPath(location.pathname) || location.pathname === path) return
      if (conv === null) {
        // The app's back arrow: return to the list's own entry when there is one right behind.
        if (current().fromList) history.back()
        else history.replaceState({ hubbubConv: null }, '', path)
        return
      }
      history.pushState({ hubbubConv: conv, fromList: before === null } satisfies HistoryState, '', path)
    },
  )

  ;(deps.addEventListener ?? globalThis.addEventListener.bind(globalThis))('popstate', applyPath)
}
