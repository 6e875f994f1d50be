import { describe, expect, it } from 'vitest'
import { safeHref, tokenize } from './linkify'

describe('tokenize', () => {
  it('keeps plain text as one token', () => {
    expect(tokenize('hello <b>world</b>')).toEqual([{ kind: 'text', text: 'hello <b>world</b>' }])
  })

  it('splits http and https links out of text', () => {
    expect(tokenize('see https://example.com/a?b=1 and http://x.org.')).toEqual([
      { kind: 'text', text: 'see ' },
      { kind: 'link', text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { kind: 'text', text: ' and ' },
      { kind: 'link', text: 'http://x.org', href: 'http://x.org/' },
      { kind: 'text', text: '.' },
    ])
  })

  it('leaves sentence punctuation outside, balanced parentheses inside', () => {
    expect(tokenize('(https://en.wikipedia.org/wiki/Foo_(bar))')).toEqual([
      { kind: 'text', text: '(' },
      {
        kind: 'link',
        text: 'https://en.wikipedia.org/wiki/Foo_(bar)',
        href: 'https://en.wikipedia.org/wiki/Foo_(bar)',
      },
      { kind: 'text', text: ')' },
    ])
  })

  it('never links other schemes', () => {
    for (const s of ['javascript:alert(1)', 'data:text/html,<script>', 'ftp://x.org', 'jAvAsCrIpT://x']) {
      expect(tokenize(s).every((t) => t.kind === 'text')).toBe(true)
    }
  })

  it('does not let quotes or angle brackets into a link', () => {
    const toks = tokenize('x https://a.com/"onmouseover="alert(1) y')
    const link = toks.find((t) => t.kind === 'link')
    expect(link?.text).toBe('https://a.com/')
    expect(toks.map((t) => t.text).join('')).toBe('x https://a.com/"onmouseover="alert(1) y')
  })

  it('stops at Chinese punctuation and full-width spaces', () => {
    const toks = tokenize('看这个https://example.com/路径，很好')
    expect(toks[1]).toMatchObject({ kind: 'link', text: 'https://example.com/路径' })
    expect(toks[2]).toEqual({ kind: 'text', text: '，很好' })
  })

  it('round-trips the text exactly', () => {
    const s = 'a https://a.b/c, b http://d.e/(f) c https://g.h!'
    expect(tokenize(s).map((t) => t.text).join('')).toBe(s)
  })
})

describe('safeHref', () => {
  it('accepts only http(s) URLs with a host', () => {
    expect(safeHref('https://example.com')).toBe('https://example.com/')
    expect(safeHref('javascript:alert(1)')).toBeNull()
    expect(safeHref('http://')).toBeNull()
    expect(safeHref('not a url')).toBeNull()
  })
})
