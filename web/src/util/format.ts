/** Display helpers: times, day labels, avatar colours, message previews. Pure; the locale is a parameter. */
import { callText } from './callRecord'
import type { Message, UserId } from '../api/types'
import { t, type Locale } from '../i18n'
import { isHidden } from '../store/actions'
import { systemText, type NameSource } from './system'

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

/** One-line text for a message of any type (previews, notifications). `names` words system messages. */
export function messageSummary(m: Pick<Message, 'type' | 'body' | 'sender' | 'recalled'>, names?: NameSource): string {
  if (m.recalled) return t('chat.recalled')
  if (isHidden(m)) return t('act.deleted')
  const b = m.body as { text?: unknown; caption?: unknown; name?: unknown }
  const caption = typeof b.caption === 'string' && b.caption ? ` ${b.caption}` : ''
  switch (m.type) {
    case 'text':
      return String(b.text ?? '')
    case 'image':
      return t('msg.image') + caption
    case 'file':
      return `${t('msg.file')} ${typeof b.name === 'string' ? b.name : ''}`.trim() + caption
    case 'voice':
      return t('msg.voice')
    case 'video':
      return t('msg.video') + caption
    case 'system':
      return names ? systemText(m, names) : t('msg.system')
    case 'notice': // from the server account (admin notices): plain text
      return String(b.text ?? '')
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
      return t('msg.unknown')
  }
}
