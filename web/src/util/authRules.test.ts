import { describe, expect, it } from 'vitest'
import { passwordProblem, usernameProblem } from './authRules'

describe('account rules', () => {
  it('explains what is wrong with a username', () => {
    expect(usernameProblem('al')).toBe('rules.usernameShort')
    expect(usernameProblem('a'.repeat(33))).toBe('rules.usernameLong')
    expect(usernameProblem('mei wang')).toBe('rules.usernameChars')
    expect(usernameProblem('王美')).toBe('rules.usernameShort')
    expect(usernameProblem('mei_w.2-x')).toBeNull()
  })
  it('explains what is wrong with a password', () => {
    expect(passwordProblem('short')).toBe('rules.passwordShort')
    expect(passwordProblem('aaaaaaaaaa')).toBe('rules.passwordSimple')
    expect(passwordProblem('        ')).toBe('rules.passwordSimple')
    expect(passwordProblem('correct-horse-battery')).toBeNull()
  })
})
