/**
 * Emoji for the picker, from emojibase-data (a maintained Unicode CLDR dataset: names and keywords in English
 * and Chinese), loaded on first open as a separate chunk so the main bundle does not carry ~0.5 MB of JSON.
 * Search and the "recent" list are pure functions here; the picker is EmojiPicker.vue.
 */
import type { Locale } from '../i18n'

export interface Emoji {
  /** The character(s) to insert. */
  char: string
  label: string
  tags: string[]
  group: number
}

/** emojibase group numbers shown as tabs, in order (2 = skin-tone components, not shown). */
export const GROUPS = [0, 1, 3, 4, 5, 6, 7, 8, 9] as const

interface Compact {
  unicode: string
  label: string
  tags?: string[]
  group?: number
  order?: number
}

const cache = new Map<Locale, Promise<Emoji[]>>()

/** The emoji list in the UI language (fetched once). */
export function loadEmoji(locale: Locale): Promise<Emoji[]> {
  let p = cache.get(locale)
  if (!p) {
    const data = locale === 'zh' ? import('emojibase-data/zh/compact.json') : import('emojibase-data/en/compact.json')
    p = data.then((m) => fromCompact((m as { default: Compact[] }).default))
    p.catch(() => cache.delete(locale))
    cache.set(locale, p)
  }
  return p
}

export function fromCompact(rows: readonly Compact[]): Emoji[] {
  return rows
    .filter((r) => r.group !== undefined && r.group !== 2)
    .sort((a, b) => (a.order ?? 0) - (b.order ?? 0))
    .map((r) => ({ char: r.unicode, label: r.label, tags: r.tags ?? [], group: r.group! }))
}

/** Emoji whose name or a keyword matches every word of the query; name prefixes first. */
export function searchEmoji(all: readonly Emoji[], query: string, limit = 120): Emoji[] {
  const words = query.toLowerCase().trim().split(/\s+/).filter(Boolean)
  if (!words.length) return []
  const scored: { e: Emoji; score: number }[] = []
  for (const e of all) {
    const label = e.label.toLowerCase()
    let score = 0
    let ok = true
    for (const w of words) {
      if (label.startsWith(w)) score += 3
      else if (label.split(/[\s:,]+/).some((part) => part.startsWith(w))) score += 2
      else if (e.tags.some((tag) => tag.toLowerCase().startsWith(w))) score += 1
      else if (label.includes(w)) score += 1
      else {
        ok = false
        break
      }
    }
    if (ok) scored.push({ e, score })
  }
  return scored
    .sort((a, b) => b.score - a.score)
    .slice(0, limit)
    .map((s) => s.e)
}

export const RECENT_MAX = 24
const RECENT_KEY = 'hubbub.emoji.recent'

/** The recent list after using `char`: it moves to the front, the list stays short. */
export function pushRecent(list: readonly string[], char: string): string[] {
  return [char, ...list.filter((c) => c !== char)].slice(0, RECENT_MAX)
}

export function loadRecent(storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage): string[] {
  try {
    const v = JSON.parse(storage?.getItem(RECENT_KEY) ?? '[]') as unknown
    return Array.isArray(v) ? v.filter((c): c is string => typeof c === 'string').slice(0, RECENT_MAX) : []
  } catch {
    return []
  }
}

export function saveRecent(list: readonly string[], storage: Pick<Storage, 'setItem'> | undefined = globalThis.localStorage): void {
  try {
    storage?.setItem(RECENT_KEY, JSON.stringify(list))
  } catch {
    /* storage full or blocked */
  }
}
