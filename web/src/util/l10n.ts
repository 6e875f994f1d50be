/**
 * Inline two-language text for the admin console and the access screens (issue 20): `tr('Ban', '封禁')`.
 * Used where a screen has many strings only it needs; the app-wide dictionary stays in i18n.ts.
 */
import { locale } from '../i18n'

export function tr(en: string, zh: string): string {
  return locale.value === 'zh' ? zh : en
}
