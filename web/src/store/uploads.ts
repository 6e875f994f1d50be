/**
 * Uploads in the composer, before they become messages: what kind a file is sent as, and the state of each
 * upload (progress, failure) shown as a bubble with a progress bar. Pure: the store does the I/O.
 */
import type { ConvId, MediaKind, Upload } from '../api/types'

export interface UploadItem {
  /** Local id (not the server's upload id). */
  id: string
  conv: ConvId
  kind: MediaKind
  name: string
  size: number
  mime: string
  /** Bytes sent so far. */
  sent: number
  status: 'uploading' | 'failed' | 'done'
  error?: string
  /** An object URL for an image/video preview while uploading (revoked when the item goes). */
  preview?: string
  /** Width / height of a local image, for a stable layout. */
  width?: number
  height?: number
  ts: number
  result?: Upload
  /** Sent with the message once uploaded (the send preview's caption). */
  caption?: string
  /** A voice note's length in seconds, told to the server (protocol.md, "Voice notes: duration"). */
  duration?: number
  /** The server's size limit, when a failure was about size (bytes). */
  limit?: number
}

/** What a picked, pasted or dropped file is sent as: images as `image` (types the server accepts), voice
 * recordings as `voice`, video as `video`; anything else (SVG included: the server refuses it as an image)
 * as a `file`. */
export function kindFor(file: { type: string; name: string }, hint?: MediaKind): MediaKind {
  if (hint) return hint
  const type = (file.type || '').toLowerCase()
  if (/^image\/(jpeg|png|gif|webp)$/.test(type)) return 'image'
  if (/^video\/(mp4|webm|quicktime|3gpp|x-matroska)$/.test(type)) return 'video'
  return 'file'
}

export function newUpload(
  id: string,
  conv: ConvId,
  file: { name: string; size: number; type: string },
  kind: MediaKind,
  ts: number,
): UploadItem {
  return {
    id,
    conv,
    kind,
    name: file.name || defaultName(kind, file.type),
    size: file.size,
    mime: file.type,
    sent: 0,
    status: 'uploading',
    ts,
  }
}

function defaultName(kind: MediaKind, mime: string): string {
  const ext = (mime.split('/')[1] ?? 'bin').split(';')[0]!.replace('jpeg', 'jpg')
  return kind === 'image' ? `image.${ext}` : kind === 'voice' ? `voice.${ext}` : kind === 'video' ? `video.${ext}` : 'file'
}

/** Progress 0..1; never goes backwards, and stays below 1 until the server answered. */
export function setProgress(item: UploadItem, sent: number, total: number): void {
  const size = total > 0 ? total : item.size
  const capped = Math.min(sent, size)
  if (capped > item.sent) item.sent = capped
  if (size !== item.size && total > 0) item.size = total
}

export function progressOf(item: UploadItem): number {
  if (item.status === 'done') return 1
  if (item.size <= 0) return 0
  return Math.min(0.99, item.sent / item.size)
}

export function markDone(item: UploadItem, result: Upload): void {
  item.status = 'done'
  item.sent = item.size
  item.result = result
  delete item.error
}

export function markFailed(item: UploadItem, code: string, message = ''): void {
  item.status = 'failed'
  item.error = code
  const limit = code === 'too_large' ? /at most (\d+) bytes/.exec(message)?.[1] : undefined
  if (limit) item.limit = Number(limit)
}

/** Failures that the same upload cannot get past by trying again: no Retry button for them. */
const FINAL = new Set(['too_large', 'unsupported_media', 'bad_media', 'invalid_field', 'quota_exceeded', 'forbidden', 'blocked'])
export function canRetryUpload(item: UploadItem): boolean {
  return item.status === 'failed' && !FINAL.has(item.error ?? '')
}

/** "1.4 MB", "820 KB", "12 B". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return ''
  if (n < 1024) return `${n} B`
  const units = ['KB', 'MB', 'GB', 'TB']
  let v = n / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`
}

/** "0:07", "12:03". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return ''
  const s = Math.round(seconds)
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

/** Fit an image of w×h into a box (max width/height), keeping its ratio; for placeholders before it loads. */
export function fitBox(w: number | undefined, h: number | undefined, maxW: number, maxH: number): { width: number; height: number } {
  if (!w || !h) return { width: maxW, height: Math.round(maxW * 0.75) }
  const scale = Math.min(1, maxW / w, maxH / h)
  return { width: Math.max(48, Math.round(w * scale)), height: Math.max(48, Math.round(h * scale)) }
}
