import { describe, expect, it } from 'vitest'
import { emojiOnlyCount, parseMarkdown, plainText, type MdNode } from './markdown'

const p = (text: string) => parseMarkdown(text)
const first = (text: string) => (p(text)[0] as { children: MdNode[] }).children

describe('parseMarkdown', () => {
  it('renders the subset: bold, italic, strikethrough, inline code', () => {
    expect(first('**b** *i* ~~s~~ `c`')).toEqual([
      { kind: 'strong', children: [{ kind: 'text', text: 'b' }] },
      { kind: 'text', text: ' ' },
      { kind: 'em', children: [{ kind: 'text', text: 'i' }] },
      { kind: 'text', text: ' ' },
      { kind: 's', children: [{ kind: 'text', text: 's' }] },
      { kind: 'text', text: ' ' },
      { kind: 'code', text: 'c' },
    ])
  })

  it('keeps raw HTML as text', () => {
    expect(plainText(p('<b>not bold</b> & <script>x</script>'))).toBe('<b>not bold</b> & <script>x</script>\n')
    expect(JSON.stringify(p('<img src=x onerror=alert(1)>'))).not.toContain('"kind":"link"')
  })

  it('links http(s) and www. addresses, never javascript:', () => {
    expect(first('see www.example.com/a')).toContainEqual({
      kind: 'link',
      href: 'http://www.example.com/a',
      children: [{ kind: 'text', text: 'www.example.com/a' }],
    })
    expect(first('[docs](https://example.com/d)')[0]).toEqual({
      kind: 'link',
      href: 'https://example.com/d',
      children: [{ kind: 'text', text: 'docs' }],
    })
    const evil = first('[click](javascript:alert(1))')
    expect(JSON.stringify(evil)).not.toContain('"kind":"link"')
    expect(plainText(p('[click](javascript:alert(1))'))).toContain('click')
  })

  it('does not turn headings, lists or quotes into structure', () => {
    expect(plainText(p('# not a heading\n1. one\n> quote'))).toBe('# not a heading\n1. one\n> quote\n')
  })

  it('keeps code blocks verbatim', () => {
    expect(p('```js\nlet a = **1**\n```')).toEqual([{ kind: 'pre', text: 'let a = **1**', lang: 'js' }])
  })

  it('turns single newlines into line breaks', () => {
    expect(first('a\nb')).toEqual([{ kind: 'text', text: 'a' }, { kind: 'br' }, { kind: 'text', text: 'b' }])
  })
})

describe('emojiOnlyCount', () => {
  it('counts 1-3 emoji, including sequences', () => {
    expect(emojiOnlyCount('👍')).toBe(1)
    expect(emojiOnlyCount('👍🏽 ❤️')).toBe(2)
    expect(emojiOnlyCount('👨‍👩‍👧')).toBe(1)
    expect(emojiOnlyCount('🎉🎉🎉')).toBe(3)
  })
  it('is 0 for text, digits or many emoji', () => {
    expect(emojiOnlyCount('ok 👍')).toBe(0)
    expect(emojiOnlyCount('12')).toBe(0)
    expect(emojiOnlyCount('🎉🎉🎉🎉')).toBe(0)
    expect(emojiOnlyCount('')).toBe(0)
  })
})

describe('bare addresses', () => {
  it('links www. but not file names that look like domains', () => {
    expect(JSON.stringify(p('notes.md and v1.py and example.com'))).not.toContain('"kind":"link"')
  })
})
