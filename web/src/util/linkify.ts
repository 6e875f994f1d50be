/**
 * Split message text into plain text and http(s) links, so the view renders both with text interpolation
 * and `<a>` elements: user data never passes through v-html.
 */

export type Token = { kind: 'text'; text: string } | { kind: 'link'; text: string; href: string }

// Up to whitespace or characters that cannot appear unescaped in a URL and usually end one in prose.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`{}|\\^\u00a0\u3000\uff0c\u3002]+/gi
// Punctuation that ends a sentence rather than the URL.
const TRAILING = /[.,;:!?'")\]}>*]+$/

/** The href to use for a candidate link, or null if it is not a safe http(s) URL. */
export function safeHref(candidate: string): string | null {
  let url: URL
  try {
    url = new URL(candidate)
  } catch {
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
  if (!url.hostname) return null
  return url.href
}

export function tokenize(text: string): Token[] {
  const out: Token[] = []
  let last = 0
  const push = (t: Token) => {
    const prev = out[out.length - 1]
    if (t.kind === 'text' && prev?.kind === 'text') prev.text += t.text
    else if (t.text) out.push(t)
  }
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0]
    const start = m.index
    // Keep a closing parenthesis that closes one opened inside the URL (Wikipedia-style links).
    let trail = TRAILING.exec(raw)?.[0] ?? ''
    while (trail.startsWith(')') && count(raw.slice(0, raw.length - trail.length), '(') > count(raw.slice(0, raw.length - trail.length), ')')) {
      trail = trail.slice(1)
    }
    raw = raw.slice(0, raw.length - trail.length)
    const href = safeHref(raw)
    if (start > last) push({ kind: 'text', text: text.slice(last, start) })
    if (href) push({ kind: 'link', text: raw, href })
    else push({ kind: 'text', text: raw })
    last = start + raw.length
  }
  if (last < text.length) push({ kind: 'text', text: text.slice(last) })
  return out
}

function count(s: string, ch: string): number {
  let n = 0
  for (const c of s) if (c === ch) n++
  return n
}
