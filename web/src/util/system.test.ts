import { afterEach, describe, expect, it } from 'vitest'
import { locale } from '../i18n'
import { nameList, systemText, type NameSource } from './system'

const NAMES: Record<number, string> = { 1: 'Alice', 2: 'Bob', 3: 'Carol', 4: 'Dave', 5: 'Erin' }
const src: NameSource = { me: 2, name: (id) => NAMES[id] ?? `#${id}`, now: new Date(2025, 0, 10, 9, 0).getTime() }
const sys = (body: Record<string, unknown>, sender = 1) => systemText({ sender, body }, src)

describe('system message text', () => {
  afterEach(() => {
    locale.value = 'en'
  })

  it('words every event, with "you" for me', () => {
    locale.value = 'en'
    expect(sys({ event: 'created', name: 'Team', users: [2, 3], actor: 1 })).toBe(
      'Alice created the group “Team” with you and Carol',
    )
    expect(sys({ event: 'created', name: 'Solo', users: [], actor: 1 })).toBe('Alice created the group “Solo”')
    expect(sys({ event: 'joined', users: [3], actor: 2 }, 2)).toBe('You invited Carol')
    expect(sys({ event: 'left', users: [3], actor: 3 }, 3)).toBe('Carol left the group')
    expect(sys({ event: 'left', users: [2], actor: 2 }, 2)).toBe('You left the group')
    expect(sys({ event: 'kicked', users: [3], actor: 1 })).toBe('Alice removed Carol')
    expect(sys({ event: 'owner_changed', users: [2], actor: 1 })).toBe('Alice passed ownership to you')
    expect(sys({ event: 'admin_added', users: [3], actor: 1 })).toBe('Alice made Carol an admin')
    expect(sys({ event: 'admin_removed', users: [3], actor: 1 })).toBe('Alice removed Carol as admin')
    expect(sys({ event: 'muted', users: [3], until: new Date(2025, 0, 10, 9, 30).getTime(), actor: 1 })).toBe(
      'Alice muted Carol until 09:30',
    )
    expect(sys({ event: 'unmuted', users: [3], until: 0, actor: 1 })).toBe('Alice unmuted Carol')
    expect(sys({ event: 'muted_all', actor: 1 })).toBe('Alice muted everyone')
    expect(sys({ event: 'unmuted_all', actor: 1 })).toBe('Alice unmuted everyone')
    expect(sys({ event: 'dismissed', actor: 1 })).toBe('Alice dismissed the group')
  })

  it('words edits: name, notice (quoted, elided), photo, policy, several at once', () => {
    locale.value = 'en'
    expect(sys({ event: 'edited', changes: { notice: 'Meet at 7' }, actor: 1 })).toBe(
      'Alice changed the notice to “Meet at 7”',
    )
    expect(sys({ event: 'edited', changes: { notice: '' }, actor: 1 })).toBe('Alice cleared the notice')
    const long = sys({ event: 'edited', changes: { notice: 'x'.repeat(300) }, actor: 1 })
    expect(long.length).toBeLessThan(120)
    expect(long.endsWith('…”')).toBe(true)
    expect(sys({ event: 'edited', changes: { name: 'Hikers', avatar: 'abc' }, actor: 2 }, 2)).toBe(
      'You renamed the group to “Hikers”; You changed the group photo',
    )
    expect(sys({ event: 'edited', changes: { invite_policy: 'admins' }, actor: 1 })).toBe(
      'Alice allowed only admins to invite',
    )
  })

  it('lists names: two, three, and "and N more"', () => {
    locale.value = 'en'
    expect(nameList([3, 4], src)).toBe('Carol and Dave')
    expect(nameList([3, 4, 5], src)).toBe('Carol, Dave and Erin')
    expect(nameList([1, 3, 4, 5, 6], src)).toBe('Alice, Carol, Dave and 2 more')
    expect(nameList([], src)).toBe('Someone')
  })

  it('falls back for unknown events and odd bodies, and never throws', () => {
    locale.value = 'en'
    expect(sys({ event: 'something_new', actor: 1 })).toBe('[system message]')
    expect(sys({ event: 'joined', users: 'nope' })).toBe('Alice invited Someone')
    // Names are plain text: markup stays as typed (the view interpolates, never v-html).
    const evil: NameSource = { me: 9, name: () => '<img src=x onerror=alert(1)>' }
    expect(systemText({ sender: 1, body: { event: 'left', users: [1] } }, evil)).toBe(
      '<img src=x onerror=alert(1)> left the group',
    )
  })

  it('reads naturally in Chinese', () => {
    locale.value = 'zh'
    expect(sys({ event: 'created', name: '周末', users: [2, 3], actor: 1 })).toBe('Alice创建了群聊“周末”，并邀请了你和Carol')
    expect(sys({ event: 'kicked', users: [3], actor: 1 })).toBe('Alice将Carol移出了群聊')
    expect(nameList([3, 4, 5], src)).toBe('Carol、Dave和Erin')
  })
})

describe('admin events', () => {
  it('says who froze, unfroze or dismissed a group from the admin tools', () => {
    const src: NameSource = { me: 1, name: (id: number) => `u${id}` }
    expect(systemText({ sender: 9, body: { event: 'frozen', actor: 9 } }, src)).toContain('froze')
    expect(systemText({ sender: 9, body: { event: 'unfrozen', actor: 9 } }, src)).toContain('unfroze')
    expect(systemText({ sender: 9, body: { event: 'dismissed', actor: 9, by_admin: true } }, src)).toContain('administrator')
  })
})
