/** What every modal dialog here does: Escape closes it wherever the focus is (a button that just disabled
 * itself drops focus to the body), and focus moves into it when it opens and back where it was when it
 * closes, so keyboard users are never lost behind the overlay. */
import { onBeforeUnmount, onMounted, type Ref } from 'vue'

export function useDialog(root: Ref<HTMLElement | null>, close: () => void): void {
  let before: Element | null = null
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && !e.defaultPrevented) {
      e.preventDefault()
      close()
    }
  }
  onMounted(() => {
    before = document.activeElement
    document.addEventListener('keydown', onKey)
    if (!root.value?.contains(document.activeElement)) {
      root.value?.querySelector<HTMLElement>('input, textarea, button:not([disabled])')?.focus()
    }
  })
  onBeforeUnmount(() => {
    document.removeEventListener('keydown', onKey)
    if (before instanceof HTMLElement && before.isConnected) before.focus()
  })
}
