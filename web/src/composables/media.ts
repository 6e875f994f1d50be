/**
 * Media URLs for `<img>`, `<audio>` and `<video>`: the access token rides in the query (media.md). An
 * element keeps the URL it started with (its bytes are cached under it); if loading fails — typically an
 * expired token — it asks the store for a fresh token and tries once more.
 */
import { ref, watch, type Ref } from 'vue'
import { useStore } from '../store'

export function useMediaSrc(id: () => string | null | undefined, thumb = false): {
  src: Ref<string | null>
  failed: Ref<boolean>
  onError: () => void
} {
  const store = useStore()
  const src = ref<string | null>(null)
  const failed = ref(false)
  let retried = false
  watch(
    id,
    (v) => {
      retried = false
      failed.value = false
      src.value = v ? store.mediaUrl(v, thumb) : null
    },
    { immediate: true },
  )
  async function onError(): Promise<void> {
    const v = id()
    if (!v) return
    if (retried) {
      failed.value = true
      return
    }
    retried = true
    await store.refreshMediaToken()
    src.value = store.mediaUrl(v, thumb) + '&retry=1'
  }
  return { src, failed, onError: () => void onError() }
}
