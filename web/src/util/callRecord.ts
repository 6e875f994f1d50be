/**
 * Words for a call record, the `call` message a call leaves in the private conversation (protocol.md,
 * "Calls"): "Missed video call", "Voice call · 2:05". `mine`: I placed the call.
 */
import type { CallRecord } from '../api/types'
import { t } from '../i18n'

export function callDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000))
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = String(total % 60).padStart(2, '0')
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`
}

export function callText(body: unknown, mine: boolean): string {
  const b = (body ?? {}) as Partial<CallRecord>
  const video = b.media === 'video'
  switch (b.kind) {
    case 'completed':
      return t(video ? 'callrec.video' : 'callrec.voice', { time: callDuration(Number(b.duration_ms ?? 0)) })
    case 'missed':
      return mine ? t('callrec.noAnswer') : t(video ? 'callrec.missedVideo' : 'callrec.missedVoice')
    case 'declined':
      return mine ? t('callrec.declinedByPeer') : t('callrec.declinedByMe')
    case 'cancelled':
      return mine ? t('callrec.cancelled') : t(video ? 'callrec.missedVideo' : 'callrec.missedVoice')
    default:
      return t('msg.call')
  }
}
