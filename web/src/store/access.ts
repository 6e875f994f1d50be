/**
 * What the access screens share (issue 20): the REST wrappers, the caller's rights (admin console, invites)
 * and the client-side route (`/admin`, `/join/<code>`). The app has no router: a path is read at load and on
 * back/forward, and `go()` pushes a new one.
 */
import { inject, reactive, type InjectionKey } from 'vue'
import { AccessApi, AdminApi, type MyAccess, type ServerInfo } from '../api/access'
import type { Api } from '../api/rest'

export type Route = { name: 'chat' } | { name: 'admin'; section: string } | { name: 'join'; code: string }

export function parseRoute(path: string): Route {
  const admin = /^\/admin(?:\/([a-z]+))?\/?$/.exec(path)
  if (admin) return { name: 'admin', section: admin[1] ?? 'dashboard' }
  const join = /^\/join\/([A-Za-z0-9_-]{1,32})\/?$/.exec(path)
  if (join) return { name: 'join', code: join[1]! }
  return { name: 'chat' }
}

export function createAccess(api: Api) {
  const state = reactive({
    route: parseRoute(globalThis.location?.pathname ?? '/') as Route,
    server: null as ServerInfo | null,
    mine: null as MyAccess | null,
  })
  const access = new AccessApi(api)
  const admin = new AdminApi(api)

  function go(path: string): void {
    if (globalThis.location?.pathname !== path) globalThis.history?.pushState(null, '', path)
    state.route = parseRoute(path)
  }
  globalThis.addEventListener?.('popstate', () => {
    state.route = parseRoute(globalThis.location.pathname)
  })

  async function loadServer(): Promise<void> {
    try {
      state.server = await access.server()
    } catch {
      state.server = null
    }
  }
  async function loadMine(): Promise<void> {
    try {
      state.mine = await access.myAccess()
    } catch {
      state.mine = null
    }
  }
  /** The link to share for a join code (opens this app at /join/<code>). */
  const joinUrl = (code: string) => `${globalThis.location?.origin ?? ''}/join/${code}`

  return { state, access, admin, go, loadServer, loadMine, joinUrl }
}

export type AccessStore = ReturnType<typeof createAccess>
export const AccessKey: InjectionKey<AccessStore> = Symbol('hubbub-access')

export function useAccess(): AccessStore {
  const a = inject(AccessKey)
  if (!a) throw new Error('access store not provided')
  return a
}
