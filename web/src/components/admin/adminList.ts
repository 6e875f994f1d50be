/**
 * What the console's searchable lists (users, groups) share: a search as you type (debounced), the picked
 * row, putting an action's answer back in the list, and one way to run an action and show its outcome or
 * its error as a sentence.
 */
import { onMounted, ref, type Ref } from 'vue'
import { ApiError } from '../../api/rest'
import { errorText } from '../../i18n'
import { tr } from '../../util/l10n'

export function useAdminList<T>(load: (query: string) => Promise<T[]>, same: (a: T, b: T) => boolean) {
  const query = ref('')
  const items = ref([]) as Ref<T[]>
  const picked = ref(null) as Ref<T | null>
  const error = ref('')
  const info = ref('')
  let timer: ReturnType<typeof setTimeout> | null = null

  function fail(e: unknown): void {
    info.value = ''
    error.value = e instanceof ApiError ? errorText(e.code, e.message) : String(e)
  }
  async function search(): Promise<void> {
    try {
      items.value = await load(query.value.trim())
      error.value = ''
    } catch (e) {
      fail(e)
    }
  }
  function typed(): void {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => void search(), 250)
  }
  /** An action answered with the row as it is now: show that, in the list and as the picked one. */
  function replace(row: T): void {
    picked.value = row
    items.value = items.value.map((x) => (same(x, row) ? row : x))
  }
  /** Run an action; its result (or "Done") shows as the outcome, a failure as the error. */
  async function run(work: () => Promise<string | void>): Promise<void> {
    try {
      error.value = ''
      info.value = (await work()) ?? tr('Done', '已完成')
    } catch (e) {
      fail(e)
    }
  }
  onMounted(search)
  return { query, items, picked, error, info, fail, typed, replace, run }
}
