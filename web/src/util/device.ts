/**
 * This tab's device id (protocol.md, "Several live sessions per user"): each tab is its own session slot, so
 * two tabs or a laptop and a phone are all live at once, and only the same tab reconnecting replaces its old
 * socket. Kept in sessionStorage: a reload keeps it (the reload replaces the dead page's socket instead of
 * taking a second slot), a new tab gets a new one.
 *
 * A browser's "duplicate tab" copies sessionStorage, so two tabs can start with one id; the server then closes
 * the older with 4409 "replaced", and that tab takes a fresh id (`renew`) and reconnects.
 */
import type { KeyValueStorage } from '../api/session'

const KEY = 'hubbub.device'
/** protocol.md: 1–64 characters from A-Z a-z 0-9 _ -. */
const VALID = /^[A-Za-z0-9_-]{1,64}$/

export function newDeviceId(random: () => string = randomPart): string {
  return `t-${random()}`
}

function randomPart(): string {
  const uuid = globalThis.crypto?.randomUUID?.()
  if (uuid) return uuid.replace(/-/g, '').slice(0, 20)
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 12)}`
}

export class DeviceId {
  private id: string

  constructor(
    private readonly storage: KeyValueStorage | null,
    private readonly make: () => string = () => newDeviceId(),
  ) {
    let saved: string | null = null
    try {
      saved = storage?.getItem(KEY) ?? null
    } catch {
      /* storage blocked: an id for this page's life only */
    }
    this.id = saved && VALID.test(saved) ? saved : this.store(make())
  }

  get value(): string {
    return this.id
  }

  /** A new id for this tab (another tab was started with a copy of ours). */
  renew(): string {
    this.id = this.store(this.make())
    return this.id
  }

  private store(id: string): string {
    try {
      this.storage?.setItem(KEY, id)
    } catch {
      /* storage blocked */
    }
    return id
  }
}
