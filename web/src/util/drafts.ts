import type { ConvId } from '../api/types'

/** Unsent composer text per conversation; survives switching conversations within the page (not reloads). */
export const drafts = new Map<ConvId, string>()
