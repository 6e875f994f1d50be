/**
 * Light/dark theme: follows `prefers-color-scheme` until the user picks one, then remembers the choice.
 * The resolved theme is set as `data-theme` on <html>; the CSS variables in style.css do the rest.
 */
import { computed, ref, watch } from 'vue'

export type ThemeChoice = 'system' | 'light' | 'dark'
const KEY = 'hubbub.theme'

function load(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY)
    if (v === 'light' || v === 'dark' || v === 'system') return v
  } catch {
    /* storage blocked */
  }
  return 'system'
}

const media = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null
const systemDark = ref(media?.matches ?? false)
media?.addEventListener('change', (e) => (systemDark.value = e.matches))

export const themeChoice = ref<ThemeChoice>(load())
export const resolvedTheme = computed(() =>
  themeChoice.value === 'system' ? (systemDark.value ? 'dark' : 'light') : themeChoice.value,
)

watch(themeChoice, (v) => {
  try {
    localStorage.setItem(KEY, v)
  } catch {
    /* storage blocked */
  }
})

export function applyTheme(): void {
  watch(
    resolvedTheme,
    (t) => {
      document.documentElement.dataset.theme = t
      document.querySelector('meta[name="theme-color"]')?.setAttribute('content', t === 'dark' ? '#12171d' : '#ffffff')
    },
    { immediate: true },
  )
}

/** The quick toggle in the sidebar: flip to the opposite of what is shown now. */
export function toggleTheme(): void {
  themeChoice.value = resolvedTheme.value === 'dark' ? 'light' : 'dark'
}
