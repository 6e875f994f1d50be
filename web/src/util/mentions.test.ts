import { describe, expect, it } from 'vitest'
import { extractMentions, insertMention, matchesQuery, mentionQuery, splitMentions } from './mentions'

describe('mention parsing', () => {
  it('finds the @query at the caret, not inside e-mail addresses or after a space', () => {
    expect(mentionQuery('hi @bo', 6)).toEqual({ start: 3, query: 'bo' })
    expect(mentionQuery('@', 1)).toEqual({ start: 0, query: '' })
    expect(mentionQuery('mail bob@example.com', 20)).toBeNull()
    expect(mentionQuery('hi @bob and', 11)).toBeNull()
    expect(mentionQuery('no at sign', 5)).toBeNull()
    // The caret decides: the same text, caret in the middle of the word.
    expect(mentionQuery('hi @bob', 5)).toEqual({ start: 3, query: 'b' })
  })

  it('inserts the picked name with a trailing space and moves the caret after it', () => {
    expect(insertMention('hi @bo', 3, 6, 'Bob')).toEqual({ text: 'hi @Bob ', caret: 8 })
    expect(insertMention('@ca see you', 0, 3, 'Carol')).toEqual({ text: '@Carol  see you', caret: 7 })
  })

  it('matches a query against any name, by prefix, case-insensitively', () => {
    expect(matchesQuery('bo', ['Robert', 'bob'])).toBe(true)
    expect(matchesQuery('BO', ['Bob'])).toBe(true)
    expect(matchesQuery('ob', ['Bob'])).toBe(false)
    expect(matchesQuery('', ['anyone'])).toBe(true)
  })

  it('sends only the picked members still in the text, once each, and @all only when allowed', () => {
    const picked = [
      { id: 2, name: 'Bob' },
      { id: 3, name: 'Carol' },
      { id: 2, name: 'Bob' },
    ]
    expect(extractMentions('@Bob and @Carol, hi', picked, false)).toEqual({ mentions: [2, 3] })
    // Carol's mention was deleted from the text before sending.
    expect(extractMentions('@Bob hi', picked, false)).toEqual({ mentions: [2] })
    // "@Bobby" is not "@Bob".
    expect(extractMentions('@Bobby hi', picked, false)).toEqual({})
    expect(extractMentions('@all meeting now', [], true)).toEqual({ mention_all: true })
    expect(extractMentions('@all meeting now', [], false)).toEqual({})
    expect(extractMentions('@所有人 开会', [], true)).toEqual({ mention_all: true })
    expect(extractMentions('mail@all.com', [], true)).toEqual({})
  })

  it('caps mentions at the protocol limit of 50', () => {
    const many = Array.from({ length: 60 }, (_, i) => ({ id: i + 1, name: `u${i + 1}` }))
    const text = many.map((p) => `@${p.name}`).join(' ')
    expect(extractMentions(text, many, false).mentions).toHaveLength(50)
  })

  it('splits text for highlighting, longest name first', () => {
    expect(splitMentions('@Bob and @Bobby hi', ['Bob', 'Bobby'])).toEqual([
      { kind: 'mention', text: '@Bob' },
      { kind: 'text', text: ' and ' },
      { kind: 'mention', text: '@Bobby' },
      { kind: 'text', text: ' hi' },
    ])
    expect(splitMentions('x@Bob', ['Bob'])).toEqual([{ kind: 'text', text: 'x@Bob' }])
    expect(splitMentions('plain', [])).toEqual([{ kind: 'text', text: 'plain' }])
  })
})
