/**
 * @mentions in the composer: find the "@query" being typed at the caret, and turn the picked members that
 * are still in the text into the `mentions` / `mention_all` fields of a group text (protocol.md, Objects).
 */
import type { UserId } from '../api/types'

export interface Picked {
  id: UserId
  /** The name inserted after "@". */
  name: string
}

/** The "@…" word ending at the caret, if any: where it starts and what follows the "@". */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret)
  const at = before.lastIndexOf('@')
  if (at === -1) return null
  // "@" starts a mention at the beginning or after whitespace (not in "bob@example.com").
  if (at > 0 && !/\s/.test(before[at - 1]!)) return null
  const query = before.slice(at + 1)
  if (/\s/.test(query) || [...query].length > 32) return null
  return { start: at, query }
}

/** Put "@name " in place of the "@query" at `start..caret`; returns the new text and caret. */
export function insertMention(text: string, start: number, caret: number, name: string): { text: string; caret: number } {
  const insert = `@${name} `
  return { text: text.slice(0, start) + insert + text.slice(caret), caret: start + insert.length }
}

/** Names to match members against: case-insensitive prefix of any of them. */
export function matchesQuery(query: string, names: string[]): boolean {
  const q = query.toLowerCase()
  return names.some((n) => n.toLowerCase().startsWith(q))
}

export const ALL_TOKENS = ['@all', '@所有人'] as const
export const MAX_MENTIONS = 50

function containsToken(text: string, token: string): boolean {
  let i = text.indexOf(token)
  while (i !== -1) {
    const before = i === 0 ? ' ' : text[i - 1]!
    const after = text[i + token.length]
    if (/\s/.test(before) && (after === undefined || /[\s,.!?，。！？:：]/.test(after))) return true
    i = text.indexOf(token, i + 1)
  }
  return false
}

/**
 * The mention fields for a message: picked members whose "@name" is still in the text (deduplicated, at most
 * 50), and `mention_all` when "@all" is there and the sender may use it (owner/admins).
 */
export function extractMentions(
  text: string,
  picked: readonly Picked[],
  canMentionAll: boolean,
): { mentions?: UserId[]; mention_all?: true } {
  const ids: UserId[] = []
  for (const p of picked) {
    if (ids.includes(p.id) || ids.length >= MAX_MENTIONS) continue
    if (containsToken(text, `@${p.name}`)) ids.push(p.id)
  }
  const out: { mentions?: UserId[]; mention_all?: true } = {}
  if (ids.length) out.mentions = ids
  if (canMentionAll && ALL_TOKENS.some((tok) => containsToken(text, tok))) out.mention_all = true
  return out
}

export type MentionToken = { kind: 'text'; text: string } | { kind: 'mention'; text: string }

/** Split text so "@name" of the given names (longest first) can be shown highlighted. */
export function splitMentions(text: string, names: readonly string[]): MentionToken[] {
  const wanted = [...new Set(names.filter(Boolean).map((n) => `@${n}`))].sort((a, b) => b.length - a.length)
  if (!wanted.length) return [{ kind: 'text', text }]
  const out: MentionToken[] = []
  let i = 0
  let plain = ''
  while (i < text.length) {
    const before = i === 0 ? ' ' : text[i - 1]!
    const hit = text[i] === '@' && /\s/.test(before) ? wanted.find((w) => text.startsWith(w, i)) : undefined
    if (hit) {
      if (plain) out.push({ kind: 'text', text: plain })
      plain = ''
      out.push({ kind: 'mention', text: hit })
      i += hit.length
    } else {
      plain += text[i]
      i++
    }
  }
  if (plain) out.push({ kind: 'text', text: plain })
  return out
}
