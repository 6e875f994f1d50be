import { describe, expect, it } from 'vitest'
import { nextTick, reactive } from 'vue'
import { convFromPath, installDeepLinks, pathForConv } from './deeplinks'

describe('conversation paths', () => {
  it('round-trips private and group conversations', () => {
    expect(convFromPath(pathForConv('p:3:7'))).toBe('p:3:7')
    expect(convFromPath('/chat/g:12')).toBe('g:12')
    expect(convFromPath('/chat/g%3A12/')).toBe('g:12')
    expect(pathForConv(null)).toBe('/')
  })
  it('ignores anything else', () => {
    expect(convFromPath('/')).toBeNull()
    expect(convFromPath('/admin')).toBeNull()
    expect(convFromPath('/chat/x:1')).toBeNull()
    expect(convFromPath('/chat/%E0%A4%A')).toBeNull()
    expect(convFromPath('/chat/g:1/extra')).toBeNull()
  })
})

/** A History with entries and popstate, like the browser's. */
class FakeHistory {
  entries: { state: unknown; url: string }[] = [{ state: null, url: '/' }]
  i = 0
  pop: (() => void) | null = null
  get state() {
    return this.entries[this.i]!.state
  }
  get location() {
    const self = this
    return {
      get pathname() {
        return self.entries[self.i]!.url
      },
      get href() {
        return self.entries[self.i]!.url
      },
    } as Location
  }
  pushState(state: unknown, _: string, url: string) {
    this.entries = this.entries.slice(0, this.i + 1)
    this.entries.push({ state, url })
    this.i++
  }
  replaceState(state: unknown, _: string, url: string) {
    this.entries[this.i] = { state, url }
  }
  back() {
    if (this.i > 0) this.i--
    this.pop?.()
  }
}

function setup(start = '/', me: unknown = { id: 1 }) {
  const h = new FakeHistory()
  h.entries[0]!.url = start
  const state = reactive({ activeConv: null as string | null, me })
  const opened: (string | null)[] = []
  installDeepLinks({
    state,
    openConv: (c) => {
      opened.push(c)
      state.activeConv = c
    },
    history: h as unknown as History,
    location: h.location,
    addEventListener: (_, fn) => (h.pop = fn),
  })
  return { h, state, opened }
}

describe('installDeepLinks', () => {
  it('opens the conversation in the URL at load (a reload reopens it)', () => {
    const { opened } = setup('/chat/g:4')
    expect(opened).toEqual(['g:4'])
  })

  it('opens it after login when the user was logged out', async () => {
    const { state, opened } = setup('/chat/p:1:2', null)
    expect(opened).toEqual([])
    state.me = { id: 1 }
    await nextTick()
    expect(opened).toEqual(['p:1:2'])
  })

  it('pushes an entry per conversation, and Back goes to the previous one, then the list', async () => {
    const { h, state } = setup()
    state.activeConv = 'g:1'
    await nextTick()
    state.activeConv = 'g:2'
    await nextTick()
    expect(h.location.pathname).toBe('/chat/g:2')
    h.back()
    expect(state.activeConv).toBe('g:1')
    await nextTick()
    expect(h.entries.length).toBe(3) // Back did not push again
    h.back()
    expect(state.activeConv).toBeNull()
  })

  it("the app's back arrow returns to the list entry instead of adding one", async () => {
    const { h, state } = setup()
    state.activeConv = 'g:1'
    await nextTick()
    state.activeConv = null
    await nextTick()
    expect(h.i).toBe(0)
    expect(h.location.pathname).toBe('/')
  })
})
