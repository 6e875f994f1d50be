import { describe, expect, it } from 'vitest'
import { DeviceId, newDeviceId } from './device'

class Mem {
  data = new Map<string, string>()
  getItem(k: string) {
    return this.data.get(k) ?? null
  }
  setItem(k: string, v: string) {
    this.data.set(k, v)
  }
  removeItem(k: string) {
    this.data.delete(k)
  }
}

describe('DeviceId', () => {
  it('makes a valid id once and keeps it across reloads of the tab', () => {
    const tab = new Mem()
    const first = new DeviceId(tab).value
    expect(first).toMatch(/^[A-Za-z0-9_-]{1,64}$/)
    expect(new DeviceId(tab).value).toBe(first)
  })

  it('gives another tab (its own storage) another id', () => {
    expect(new DeviceId(new Mem()).value).not.toBe(new DeviceId(new Mem()).value)
  })

  it('renews after a duplicated tab took the id, and stores the new one', () => {
    const tab = new Mem()
    let n = 0
    const d = new DeviceId(tab, () => `t-${++n}`)
    expect(d.value).toBe('t-1')
    expect(d.renew()).toBe('t-2')
    expect(new DeviceId(tab).value).toBe('t-2')
  })

  it('replaces a stored value the server would refuse', () => {
    const tab = new Mem()
    tab.setItem('hubbub.device', 'bad id with spaces')
    expect(new DeviceId(tab, () => 't-ok').value).toBe('t-ok')
  })

  it('works without storage', () => {
    expect(newDeviceId(() => 'x')).toBe('t-x')
    expect(new DeviceId(null).value).toMatch(/^t-/)
  })
})
