/**
 * Readable text for group `system` messages (protocol.md, "Group system messages"): "Alice invited Bob and
 * Carol", "You left the group", "Alice changed the notice to “…”". Pure: names come from a callback, the
 * words from i18n. The result is plain text, rendered with interpolation.
 */
import type { Message, UserId } from '../api/types'
import { locale, t } from '../i18n'

export interface NameSource {
  me: UserId
  /** A display name for a user (group nickname, nickname or username). */
  name: (id: UserId) => string
  now?: number
}

/** Longest notice quoted in a system line; the rest is elided. */
export const QUOTE_MAX = 60

function quote(s: unknown): string {
  const text = String(s ?? '').replace(/\s+/g, ' ').trim()
  const chars = [...text]
  return chars.length > QUOTE_MAX ? chars.slice(0, QUOTE_MAX - 1).join('') + '…' : text
}

/** "You" (or "you" as an object), or the person's name. */
export function who(id: unknown, src: NameSource, object = false): string {
  const n = Number(id)
  if (!Number.isInteger(n) || n <= 0) return t('sys.someone')
  return n === src.me ? t(object ? 'sys.youObj' : 'sys.you') : src.name(n)
}

/** "Bob", "Bob and Carol", "Bob, Carol and Dave", "Bob, Carol and 3 more". */
export function nameList(ids: unknown, src: NameSource, object = true, max = 3): string {
  const list = Array.isArray(ids) ? ids : []
  const names = list.slice(0, max).map((id, i) => who(id, src, object || i > 0))
  const rest = list.length - names.length
  if (names.length === 0) return t('sys.someone')
  if (rest > 0) return t('sys.listMore', { list: names.join(t('sys.comma')), n: rest })
  if (names.length === 1) return names[0]!
  return t('sys.listAnd', { list: names.slice(0, -1).join(t('sys.comma')), last: names[names.length - 1]! })
}

function until(ms: unknown, now: number): string {
  const n = Number(ms)
  if (!Number.isFinite(n) || n <= 0) return ''
  const d = new Date(n)
  const sameDay = new Date(now).toDateString() === d.toDateString()
  const tag = locale.value === 'zh' ? 'zh-CN' : 'en'
  return sameDay
    ? d.toLocaleTimeString(tag, { hour: '2-digit', minute: '2-digit', hour12: false })
    : d.toLocaleString(tag, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false })
}

export function systemText(m: Pick<Message, 'body' | 'sender'>, src: NameSource): string {
  const b = m.body as Record<string, unknown>
  const actor = who(b.actor ?? m.sender, src)
  const users = () => nameList(b.users, src)
  const subjects = () => nameList(b.users, src, false)
  switch (b.event) {
    case 'created': {
      const invited = Array.isArray(b.users) && b.users.length > 0
      return invited
        ? t('sys.createdWith', { actor, name: quote(b.name), users: users() })
        : t('sys.created', { actor, name: quote(b.name) })
    }
    case 'joined':
      // Joins by link, from the directory, or on an approved request (services/joins.py).
      if (b.via === 'link') return t('sys.joinedLink', { users: subjects() })
      if (b.via === 'directory') return t('sys.joinedDirectory', { users: subjects() })
      if (b.via === 'request') return t('sys.joinedRequest', { actor, users: users() })
      return t('sys.joined', { actor, users: users() })
    case 'left':
      return t('sys.left', { users: subjects() })
    case 'kicked':
      return t('sys.kicked', { actor, users: users() })
    case 'owner_changed':
      return t('sys.ownerChanged', { actor, users: users() })
    case 'admin_added':
      return t('sys.adminAdded', { actor, users: users() })
    case 'admin_removed':
      return t('sys.adminRemoved', { actor, users: users() })
    case 'muted': {
      const u = until(b.until, src.now ?? Date.now())
      return u ? t('sys.mutedUntil', { actor, users: users(), until: u }) : t('sys.muted', { actor, users: users() })
    }
    case 'unmuted':
      return t('sys.unmuted', { actor, users: users() })
    case 'muted_all':
      return t('sys.mutedAll', { actor })
    case 'unmuted_all':
      return t('sys.unmutedAll', { actor })
    case 'dismissed':
      return b.by_admin ? t('sys.dismissedByAdmin') : t('sys.dismissed', { actor })
    case 'frozen':
      return t('sys.frozen')
    case 'unfrozen':
      return t('sys.unfrozen')
    case 'edited': {
      const c = (b.changes ?? {}) as Record<string, unknown>
      const parts: string[] = []
      if ('name' in c) parts.push(t('sys.renamed', { actor, name: quote(c.name) }))
      if ('notice' in c)
        parts.push(quote(c.notice) ? t('sys.notice', { actor, notice: quote(c.notice) }) : t('sys.noticeCleared', { actor }))
      if ('avatar' in c) parts.push(t('sys.avatar', { actor }))
      if ('invite_policy' in c)
        parts.push(t(c.invite_policy === 'admins' ? 'sys.policyAdmins' : 'sys.policyMembers', { actor }))
      return parts.length ? parts.join(t('sys.sep')) : t('sys.edited', { actor })
    }
    default:
      return t('msg.system')
  }
}
