/**
 * Where the "new messages" divider goes: the read position a conversation had when it was opened, taken
 * before opening marks it read (a synchronous watcher runs inside `openConv`, ahead of `markActiveRead`). A
 * conversation opened before the first sync (a deep link, a reload) takes its position from that sync.
 */
import { reactive, watch } from 'vue'
import type { ConvId, Message, UserId } from '../api/types'
import { isCountable, type ConvState } from './convs'

export interface UnreadMark {
  /** Messages after this seq were unread when the conversation was opened. */
  afterSeq: number
  /** How many (the badge count then). */
  count: number
}

export const unreadMarks = reactive<Record<ConvId, UnreadMark>>({})

interface Source {
  state: { activeConv: ConvId | null; synced: boolean; convs: Record<ConvId, ConvState> }
}

export function installUnreadMarks(store: Source): void {
  const take = (conv: ConvId | null) => {
    if (!conv) return
    const c = store.state.convs[conv]
    if (c && c.unread > 0) unreadMarks[conv] = { afterSeq: c.readSeq, count: c.unread }
    else delete unreadMarks[conv]
  }
  watch(() => store.state.activeConv, take, { flush: 'sync' })
  // Opened before the first sync: the sync's counts arrive while it is open, just before it is marked read.
  watch(
    () => {
      const conv = store.state.activeConv
      const c = conv ? store.state.convs[conv] : undefined
      return store.state.synced || !c ? null : [c.unread, c.readSeq]
    },
    (v) => {
      if (v) take(store.state.activeConv)
    },
    { flush: 'sync' },
  )
}

/** The first unread message (someone else's, after the mark) among those loaded, or null. */
export function firstUnread(messages: readonly Message[], mark: UnreadMark | undefined, me: UserId): Message | null {
  if (!mark) return null
  return messages.find((m) => m.seq > mark.afterSeq && isCountable(m, me)) ?? null
}
