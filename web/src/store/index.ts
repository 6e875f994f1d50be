import { inject, type InjectionKey } from 'vue'
import type { ChatStore } from './chat'

export { createChatStore, type ChatStore } from './chat'

/** The store is created once in main.ts and provided to the component tree (no module singleton). */
export const StoreKey: InjectionKey<ChatStore> = Symbol('hubbub-store')

export function useStore(): ChatStore {
  const s = inject(StoreKey)
  if (!s) throw new Error('chat store not provided')
  return s
}
