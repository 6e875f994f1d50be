/**
 * Which group actions the UI offers, mirroring the server's table (services/group_rules.py): roles rank
 * owner > admin > member; acting on someone (kick, mute) needs a strictly higher rank. The server decides;
 * this only hides what would be refused.
 */
import type { GroupRole, InvitePolicy } from '../api/types'

export const RANK: Record<GroupRole, number> = { member: 0, admin: 1, owner: 2 }

export type GroupAction =
  | 'invite'
  | 'kick'
  | 'mute'
  | 'mute_all'
  | 'edit_profile'
  | 'set_policy'
  | 'set_admin'
  | 'transfer'
  | 'dismiss'
  | 'quit'
  | 'mention_all'

const MIN_ROLE: Record<GroupAction, GroupRole> = {
  invite: 'member',
  kick: 'admin',
  mute: 'admin',
  mute_all: 'admin',
  edit_profile: 'admin',
  set_policy: 'admin',
  set_admin: 'owner',
  transfer: 'owner',
  dismiss: 'owner',
  quit: 'member',
  mention_all: 'admin',
}

const TARGETED = new Set<GroupAction>(['kick', 'mute'])

export function can(
  action: GroupAction,
  actor: GroupRole,
  target: GroupRole | null = null,
  policy: InvitePolicy = 'members',
): boolean {
  const need = action === 'invite' && policy === 'admins' ? 'admin' : MIN_ROLE[action]
  if (RANK[actor] < RANK[need]) return false
  if (action === 'quit' && actor === 'owner') return false
  if (TARGETED.has(action) && target !== null && RANK[target] >= RANK[actor]) return false
  if ((action === 'set_admin' || action === 'transfer') && target === 'owner') return false
  return true
}
