import { inject, type InjectionKey } from 'vue'
import type { ChatStore } from './chat'
import type { CallStore } from './calls'

export { createChatStore, type ChatStore } from './chat'

/** The store is created once in main.ts and provided to the component tree (no module singleton). */
export const StoreKey: InjectionKey<ChatStore> = Symbol('hubbub-store')

export function useStore(): ChatStore {
  const s = inject(StoreKey)
  if (!s) throw new Error('chat store not provided')
  return s
}

export { createCallStore, type CallStore } from './calls'

/** The call store (store/calls.ts), created once in main.ts beside the chat store. */
export const CallKey: InjectionKey<CallStore> = Symbol('hubbub-calls')

export function useCalls(): CallStore {
  const s = inject(CallKey)
  if (!s) throw new Error('call store not provided')
  return s
}
