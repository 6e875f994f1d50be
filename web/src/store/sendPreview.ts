/**
 * Files waiting in the send preview (from the paperclip, a paste or a drop): the user sees them, removes
 * some, adds a caption, then sends. Object URLs for the thumbnails are made here and always revoked.
 */
import { reactive } from 'vue'
import type { ConvId, MediaKind } from '../api/types'
import { kindFor } from './uploads'

export interface PreviewItem {
  id: number
  file: File
  kind: MediaKind
  /** An object URL for an image or video thumbnail. */
  url?: string
}

export const sendPreview = reactive({ conv: null as ConvId | null, items: [] as PreviewItem[], caption: '' })
let seq = 0

const makeUrl = (f: Blob) => (typeof URL !== 'undefined' && URL.createObjectURL ? URL.createObjectURL(f) : undefined)
const revoke = (url?: string) => {
  if (url && typeof URL !== 'undefined' && URL.revokeObjectURL) URL.revokeObjectURL(url)
}

/** Add files to the preview of `conv` (a preview open for another conversation is discarded). */
export function openSendPreview(conv: ConvId, files: Iterable<File>): number {
  if (sendPreview.conv !== conv) closeSendPreview()
  let n = 0
  for (const file of files) {
    const kind = kindFor({ type: file.type, name: file.name })
    sendPreview.items.push({ id: ++seq, file, kind, url: kind === 'image' || kind === 'video' ? makeUrl(file) : undefined })
    n++
  }
  if (n) sendPreview.conv = conv
  return n
}

export function removePreviewItem(id: number): void {
  const item = sendPreview.items.find((i) => i.id === id)
  revoke(item?.url)
  sendPreview.items = sendPreview.items.filter((i) => i.id !== id)
  if (!sendPreview.items.length) closeSendPreview()
}

export function closeSendPreview(): void {
  for (const i of sendPreview.items) revoke(i.url)
  sendPreview.items = []
  sendPreview.caption = ''
  sendPreview.conv = null
}

/** Hand the files to `send` (the store's sendFile), the caption with the first, and close the preview. */
export function commitSendPreview(send: (conv: ConvId, file: File, opts: { caption?: string }) => void): number {
  const conv = sendPreview.conv
  const items = [...sendPreview.items]
  const caption = sendPreview.caption.trim()
  if (!conv) return 0
  items.forEach((item, i) => send(conv, item.file, i === 0 && caption ? { caption } : {}))
  closeSendPreview()
  return items.length
}
