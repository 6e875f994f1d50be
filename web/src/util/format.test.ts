import { describe, expect, it } from 'vitest'
import { messageSummary } from './format'

describe('messageSummary', () => {
  it('previews server notices as their text, not as an unsupported message', () => {
    const notice = { type: 'notice', body: { text: 'Maintenance at 6' }, sender: 1, recalled: false }
    expect(messageSummary(notice)).toBe('Maintenance at 6')
    expect(messageSummary({ ...notice, type: 'shiny-new-type' })).toBe('Maintenance at 6')
  })
})

describe('previews read as words', () => {
  const m = (type: string, body: Record<string, unknown>) => ({ type, body, sender: 1, recalled: false })
  it('names media, with a file name and a voice duration', () => {
    expect(messageSummary(m('image', { upload: 'u' }))).toBe('Photo')
    expect(messageSummary(m('image', { upload: 'u', caption: 'sunset' }))).toBe('Photo · sunset')
    expect(messageSummary(m('file', { upload: 'u', name: 'notes.pdf' }))).toBe('File: notes.pdf')
    expect(messageSummary(m('voice', { upload: 'u', duration: 7.4 }))).toBe('Voice message 0:07')
    expect(messageSummary(m('voice', { upload: 'u' }))).toBe('Voice message')
  })
  it('shows text without its Markdown marks, on one line', () => {
    expect(messageSummary(m('text', { text: '**bold** and `code`\nnext' }))).toBe('bold and code next')
    expect(messageSummary(m('text', { text: '2 * 3 = 6' }))).toBe('2 * 3 = 6')
  })
  it('never says "unsupported": an unknown type shows its text or a plain word', () => {
    expect(messageSummary(m('poll', { text: 'Lunch?' }))).toBe('Lunch?')
    expect(messageSummary(m('sticker', {}))).toBe('Message')
  })
})
