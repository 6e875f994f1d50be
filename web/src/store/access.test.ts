import { describe, expect, it } from 'vitest'
import { parseRoute } from './access'

describe('parseRoute', () => {
  it('reads the console and its sections', () => {
    expect(parseRoute('/admin')).toEqual({ name: 'admin', section: 'dashboard' })
    expect(parseRoute('/admin/')).toEqual({ name: 'admin', section: 'dashboard' })
    expect(parseRoute('/admin/reports')).toEqual({ name: 'admin', section: 'reports' })
  })
  it('reads a join link code, and only a well-formed one', () => {
    expect(parseRoute('/join/AbC_12-x')).toEqual({ name: 'join', code: 'AbC_12-x' })
    expect(parseRoute('/join/')).toEqual({ name: 'chat' })
    expect(parseRoute('/join/a%2Fb')).toEqual({ name: 'chat' })
    expect(parseRoute(`/join/${'x'.repeat(33)}`)).toEqual({ name: 'chat' })
  })
  it('anything else is the chat', () => {
    expect(parseRoute('/')).toEqual({ name: 'chat' })
    expect(parseRoute('/administrator')).toEqual({ name: 'chat' })
  })
})
