/**
 * The Markdown subset messages may use: **bold**, *italic*, ~~strikethrough~~, `inline code`, fenced or
 * indented code blocks, [links](https://…) and bare `https://` / `www.` addresses. Parsing is markdown-it's
 * (a maintained CommonMark parser) with raw HTML off; its tokens become a small tree that the view renders
 * with Vue elements and text interpolation, so user text never passes through v-html and an `<b>` typed by
 * someone stays the four characters it was. Headings, lists, tables, images and quotes are not enabled: a
 * line starting with `#` or `1.` in a chat stays what was typed.
 */
import MarkdownIt from 'markdown-it'
import type { Token } from 'markdown-it'
import { safeHref } from './linkify'

export type MdNode =
  | { kind: 'text'; text: string }
  | { kind: 'br' }
  | { kind: 'code'; text: string }
  | { kind: 'pre'; text: string; lang: string }
  | { kind: 'strong' | 'em' | 's' | 'p'; children: MdNode[] }
  | { kind: 'link'; href: string; children: MdNode[] }

const md = new MarkdownIt('zero', { html: false, linkify: true, breaks: true })
  .enable(['emphasis', 'strikethrough', 'backticks', 'fence', 'code', 'link', 'linkify', 'newline', 'escape'])
// Bare addresses: only `www.` ones (checked below); "notes.md" or "v1.py" stay text.
md.linkify.set({ fuzzyLink: true, fuzzyEmail: false })
const AUTO_OK = /^(?:https?:\/\/|www\.)/i

const PAIRS: Record<string, 'strong' | 'em' | 's' | 'link'> = {
  strong_open: 'strong',
  em_open: 'em',
  s_open: 's',
  link_open: 'link',
}

/** Inline tokens to nodes; an unsafe link (not http/https) keeps its text and loses the link. */
function inline(tokens: Token[]): MdNode[] {
  const root: MdNode[] = []
  const stack: MdNode[][] = [root]
  const top = () => stack[stack.length - 1]!
  const pushText = (text: string) => {
    const out = top()
    const last = out[out.length - 1]
    if (last?.kind === 'text') last.text += text
    else if (text) out.push({ kind: 'text', text })
  }
  tokens.forEach((tok, i) => {
    const kind = PAIRS[tok.type]
    if (kind) {
      const children: MdNode[] = []
      if (kind === 'link') {
        const auto = tok.markup === 'linkify' && !AUTO_OK.test(tokens[i + 1]?.content ?? '')
        const href = auto ? null : safeHref(String(tok.attrGet('href') ?? ''))
        // An unsafe target: its text stays, as plain text in the parent.
        if (href) top().push({ kind: 'link', href, children })
        else {
          stack.push(top())
          return
        }
      } else top().push({ kind, children })
      stack.push(children)
    } else if (tok.type.endsWith('_close')) {
      if (stack.length > 1) stack.pop()
    } else if (tok.type === 'text') pushText(tok.content)
    else if (tok.type === 'code_inline') top().push({ kind: 'code', text: tok.content })
    else if (tok.type === 'softbreak' || tok.type === 'hardbreak') top().push({ kind: 'br' })
    else pushText(tok.content)
  })
  return root
}

/** Parse a message's text into the nodes to render. */
export function parseMarkdown(text: string): MdNode[] {
  const out: MdNode[] = []
  for (const tok of md.parse(text, {})) {
    if (tok.type === 'inline') out.push({ kind: 'p', children: inline(tok.children ?? []) })
    else if (tok.type === 'fence' || tok.type === 'code_block') {
      out.push({ kind: 'pre', text: tok.content.replace(/\n$/, ''), lang: tok.info.trim().split(/\s+/)[0] ?? '' })
    }
  }
  return out
}

/** The plain text of nodes (for tests and the emoji-only check). */
export function plainText(nodes: readonly MdNode[]): string {
  return nodes
    .map((n) => {
      if (n.kind === 'text' || n.kind === 'code' || n.kind === 'pre') return n.text
      if (n.kind === 'br') return '\n'
      return plainText(n.children) + (n.kind === 'p' ? '\n' : '')
    })
    .join('')
}

const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Component}|\p{Emoji_Modifier}|\u200d|\ufe0f|\s)+$/u
const DIGITS = /[0-9#*]/

/** How many emoji a message is made of when it is nothing but 1–3 emoji (shown large), else 0. */
export function emojiOnlyCount(text: string): number {
  const s = text.trim()
  if (!s || s.length > 64 || !EMOJI_ONLY.test(s)) return 0
  // Keycap bases (0-9 # *) are Emoji_Component: a bare "12" is digits, not emoji.
  if (DIGITS.test(s.replace(/[0-9#*]\ufe0f?\u20e3/gu, ''))) return 0
  const seg = typeof Intl !== 'undefined' && 'Segmenter' in Intl ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null
  const n = seg ? [...seg.segment(s)].filter((g) => g.segment.trim()).length : [...s.replace(/\s/g, '')].length
  return n <= 3 ? n : 0
}
