/**
 * The account rules the server enforces (services/names.py, services/passwords.py), checked before a form
 * is sent so the user reads a sentence, not a pattern. The server stays the judge (common passwords).
 */
import type { MessageKey } from '../i18n'

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/
export const MIN_PASSWORD = 8
export const MAX_PASSWORD = 256

/** What is wrong with a username, as an i18n key, or null. */
export function usernameProblem(name: string): MessageKey | null {
  if (name.length < 3) return 'rules.usernameShort'
  if (name.length > 32) return 'rules.usernameLong'
  if (!USERNAME.test(name)) return 'rules.usernameChars'
  return null
}

export function passwordProblem(pw: string): MessageKey | null {
  if (pw.length < MIN_PASSWORD) return 'rules.passwordShort'
  if (pw.length > MAX_PASSWORD) return 'rules.passwordLong'
  if (!pw.trim() || new Set(pw).size === 1) return 'rules.passwordSimple'
  return null
}
