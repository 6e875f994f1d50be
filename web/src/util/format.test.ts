import { describe, expect, it } from 'vitest'
import { messageSummary } from './format'

describe('messageSummary', () => {
  it('previews server notices as their text, not as an unsupported message', () => {
    const notice = { type: 'notice', body: { text: 'Maintenance at 6' }, sender: 1, recalled: false }
    expect(messageSummary(notice)).toBe('Maintenance at 6')
    expect(messageSummary({ ...notice, type: 'shiny-new-type' })).toBe('[unsupported message]')
  })
})
