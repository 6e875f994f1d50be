import { describe, expect, it } from 'vitest'
import en from 'emojibase-data/en/compact.json'
import zh from 'emojibase-data/zh/compact.json'
import { fromCompact, pushRecent, RECENT_MAX, searchEmoji } from './emoji'

const EN = fromCompact(en)
const ZH = fromCompact(zh)

describe('emoji data', () => {
  it('has the full set, without skin-tone components', () => {
    expect(EN.length).toBeGreaterThan(1800)
    expect(EN.some((e) => e.group === 2)).toBe(false)
    expect(EN[0]!.char).toBe('😀')
  })
})

describe('searchEmoji', () => {
  it('finds by name and keyword, name prefixes first', () => {
    const r = searchEmoji(EN, 'thumbs')
    expect(r[0]!.char.startsWith('👍')).toBe(true)
    expect(searchEmoji(EN, 'pizza').map((e) => e.char)).toContain('🍕')
    expect(searchEmoji(EN, 'red heart').map((e) => e.char)).toContain('❤️')
  })
  it('searches Chinese names', () => {
    expect(searchEmoji(ZH, '披萨').map((e) => e.char)).toContain('🍕')
  })
  it('finds nothing for nonsense or an empty query', () => {
    expect(searchEmoji(EN, 'zzqqxx')).toEqual([])
    expect(searchEmoji(EN, '  ')).toEqual([])
  })
})

describe('pushRecent', () => {
  it('moves the used emoji to the front without duplicates and caps the list', () => {
    expect(pushRecent(['a', 'b', 'c'], 'b')).toEqual(['b', 'a', 'c'])
    const long = Array.from({ length: RECENT_MAX }, (_, i) => String(i))
    expect(pushRecent(long, 'x')).toHaveLength(RECENT_MAX)
    expect(pushRecent(long, 'x')[0]).toBe('x')
  })
})
