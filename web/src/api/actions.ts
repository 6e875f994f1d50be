/**
 * REST routes of message actions (protocol.md, "Message actions") that the web client reads: edit history,
 * who reacted, the pinned list. The actions themselves go over the WebSocket (store/messageActions.ts).
 */
import type { Api } from './rest'
import type { ConvId, EditVersion, Pin, UserId } from './types'

const msgPath = (conv: ConvId, seq: number) => `/conversations/${encodeURIComponent(conv)}/messages/${seq}`

export function editHistory(api: Api, conv: ConvId, seq: number): Promise<{ conv: ConvId; seq: number; edits: EditVersion[] }> {
  return api.authed('GET', `${msgPath(conv, seq)}/edits`)
}

export function reactionUsers(
  api: Api,
  conv: ConvId,
  seq: number,
  emoji: string,
  after = 0,
): Promise<{ users: UserId[]; next_after: number | null }> {
  return api.authed('GET', `${msgPath(conv, seq)}/reactions?emoji=${encodeURIComponent(emoji)}&after=${after}&limit=200`)
}

export function pins(api: Api, conv: ConvId): Promise<{ conv: ConvId; pins: Pin[] }> {
  return api.authed('GET', `/conversations/${encodeURIComponent(conv)}/pins`)
}

/** Every seq I hid in a conversation: a terminal that was offline when I hid them catches up with this. */
export function hiddenSeqs(api: Api, conv: ConvId): Promise<{ conv: ConvId; seqs: number[] }> {
  return api.authed('GET', `/conversations/${encodeURIComponent(conv)}/hidden`)
}
