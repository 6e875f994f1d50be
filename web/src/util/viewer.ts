import { ref } from 'vue'
import type { Upload } from '../api/types'

/** The image shown full-size in the viewer (one at a time, over everything). */
export const viewerImage = ref<(Upload & { caption?: string }) | null>(null)
