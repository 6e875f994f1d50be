/** Display helpers: times, day labels, avatar colours, message previews. Pure; the locale is a parameter. */
import { callText } from './callRecord'
import type { Message, UserId } from '../api/types'
import { errorText, t, type Locale } from '../i18n'
import { isHidden } from '../store/actions'
import { systemText, type NameSource } from './system'
import { parseMarkdown, plainText } from './markdown'
import { formatBytes, formatDuration, type UploadItem } from '../store/uploads'

function tag(locale: Locale): string {
  return locale === 'zh' ? 'zh-CN' : 'en'
}

function startOfDay(ts: number): number {
  const d = new Date(ts)
  d.setHours(0, 0, 0, 0)
  return d.getTime()
}

const DAY = 86_400_000

export function clockTime(ts: number, locale: Locale): string {
  return new Date(ts).toLocaleTimeString(tag(locale), { hour: '2-digit', minute: '2-digit', hour12: false })
}

/** Sidebar time: a clock today, "Yesterday", a weekday this week, else a date. */
export function listTime(ts: number, locale: Locale, now = Date.now()): string {
  if (!ts) return ''
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / DAY)
  if (days <= 0) return clockTime(ts, locale)
  if (days === 1) return t('chat.yesterday')
  if (days < 7) return new Date(ts).toLocaleDateString(tag(locale), { weekday: 'short' })
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear()
  return new Date(ts).toLocaleDateString(tag(locale), sameYear ? { month: 'short', day: 'numeric' } : { dateStyle: 'short' })
}

/** Day separator in the chat. */
export function dayLabel(ts: number, locale: Locale, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / DAY)
  if (days === 0) return t('chat.today')
  if (days === 1) return t('chat.yesterday')
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear()
  return new Date(ts).toLocaleDateString(tag(locale), {
    weekday: days < 7 ? 'long' : undefined,
    month: 'long',
    day: 'numeric',
    year: sameYear ? undefined : 'numeric',
  })
}

const AVATAR_HUES = [12, 32, 150, 172, 200, 222, 258, 290, 330, 95]

/** A stable colour per user, so the same person always looks the same. */
export function avatarHue(id: UserId | string): number {
  const s = String(id)
  let h = 0
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0
  return AVATAR_HUES[h % AVATAR_HUES.length]!
}

export function initial(name: string): string {
  const ch = [...name.trim()][0] ?? '?'
  return ch.toUpperCase()
}

/** One-line text for a message of any type (previews, notifications), in words: "Photo", "File: notes.pdf",
 * "Voice message 0:07"; text without its Markdown marks. `names` words system messages. */
export function messageSummary(m: Pick<Message, 'type' | 'body' | 'sender' | 'recalled'>, names?: NameSource): string {
  if (m.recalled) return t('chat.recalled')
  if (isHidden(m)) return t('act.deleted')
  const b = m.body as { text?: unknown; caption?: unknown; name?: unknown; duration?: unknown }
  const caption = typeof b.caption === 'string' && b.caption ? ` · ${b.caption}` : ''
  const text = typeof b.text === 'string' ? b.text : ''
  switch (m.type) {
    case 'text':
      return previewText(text)
    case 'image':
      return t('msg.image') + caption
    case 'file':
      return (typeof b.name === 'string' && b.name ? t('preview.file', { name: b.name }) : t('msg.file')) + caption
    case 'voice': {
      const d = typeof b.duration === 'number' && b.duration > 0 ? formatDuration(b.duration) : ''
      return d ? t('preview.voice', { d }) : t('msg.voice')
    }
    case 'video': {
      const d = typeof b.duration === 'number' && b.duration > 0 ? ` ${formatDuration(b.duration)}` : ''
      return t('msg.video') + d + caption
    }
    case 'system':
      return names ? systemText(m, names) : t('msg.system')
    case 'notice': // from the server account (admin notices): plain text
      return text
    // Message-action events (issue 14) when they are a conversation's newest: a short notice.
    case 'edit':
      return t('act.sumEdit')
    case 'reaction':
      return (m.body as { on?: unknown }).on === false ? t('act.sumUnreact') : t('act.sumReact', { emoji: String((m.body as { emoji?: unknown }).emoji ?? '') })
    case 'pin':
      return (m.body as { on?: unknown }).on === false ? t('act.sumUnpin') : t('act.sumPin')
    case 'call': // a call record (its sender is the caller)
      return callText(m.body, names ? m.sender === names.me : false)
    default:
      // A type this client does not know yet: its text if it has one, else a plain word.
      return text ? previewText(text) : t('msg.unknown')
  }
}

/** A message's text on one line, as it reads once rendered (no `**`, no backticks). */
export function previewText(text: string): string {
  if (!/[*_~`[\]\\]/.test(text)) return text.replace(/\s*\n\s*/g, ' ')
  return plainText(parseMarkdown(text)).trim().replace(/\s*\n\s*/g, ' ')
}

/** Why an upload failed, in a sentence that names the limit when size was the reason. */
export function uploadFailure(item: Pick<UploadItem, 'error' | 'limit'>): string {
  if (item.error === 'too_large' && item.limit) return t('upload.limit', { limit: formatBytes(item.limit) })
  return errorText(item.error ?? 'internal')
}

/** "last seen 14:02", "last seen yesterday", "last seen Mar 3" (a person's presence when offline). */
export function lastSeenText(ts: number, locale: Locale, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(ts)) / DAY)
  if (days <= 0) return t('social.lastSeenAt', { when: clockTime(ts, locale) })
  return t('social.lastSeenOn', { when: listTime(ts, locale, now) })
}
