/* Hubbub's service worker (docs/protocol.md, "Web Push"; docs/architecture.md, "Web Push").
 *
 * - App shell: the page and its assets are cached on install and on every successful fetch, so the app opens
 *   offline (it then shows its "offline" state and reconnects when the network returns). API calls, the
 *   WebSocket and uploads are never cached.
 * - Push: shows one notification per conversation (tag conv:<conv>, replaced as messages arrive, with a count),
 *   closes it on a "clear" (read elsewhere), and on a "wake" asks the server what to show.
 * - Click: focuses an open tab of the app and tells it to open the conversation, or opens /?conv=<conv>.
 */
const SHELL = 'hubbub-shell-v1'
const SHELL_URLS = ['/', '/manifest.webmanifest', '/icon-192.png']

/** The page, and the hashed script and style it names (their names change with every build). */
async function cacheShell() {
  const cache = await caches.open(SHELL)
  await cache.addAll(SHELL_URLS)
  const page = await (await cache.match('/')).text()
  const assets = [...page.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1])
  await cache.addAll(assets)
}

self.addEventListener('install', (event) => {
  event.waitUntil(cacheShell().then(() => self.skipWaiting()))
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  )
})

function isShell(url) {
  if (url.origin !== self.location.origin) return false
  const p = url.pathname
  return !(p.startsWith('/api/') || p === '/ws' || p.startsWith('/metrics') || p.endsWith('.json'))
}

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  if (!isShell(url)) return
  const page = request.mode === 'navigate'
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone()
          void caches.open(SHELL).then((cache) => cache.put(page ? '/' : request, copy))
        }
        return response
      })
      .catch(() => caches.match(page ? '/' : request).then((hit) => hit || Response.error())),
  )
})

function show(data) {
  const count = data.count || 1
  const body = data.body !== undefined ? data.body : count > 1 ? `${count} new messages` : 'New message'
  return self.registration.showNotification(data.title || 'Hubbub', {
    body: data.body !== undefined && count > 1 ? `${body} (${count})` : body,
    tag: data.tag || `conv:${data.conv}`,
    renotify: true,
    icon: '/icon-192.png',
    badge: '/icon-192.png',
    data: { conv: data.conv, seq: data.seq },
  })
}

async function closeTag(tag) {
  const shown = await self.registration.getNotifications({ tag })
  shown.forEach((n) => n.close())
}

async function wake() {
  const sub = await self.registration.pushManager.getSubscription()
  if (!sub) return self.registration.showNotification('Hubbub', { body: 'New activity', tag: 'hubbub-wake' })
  try {
    const res = await fetch('/api/v1/push/wake', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ endpoint: sub.endpoint }),
    })
    const { notifications } = await res.json()
    if (!notifications.length) return
    await Promise.all(notifications.map((n) => show({ ...n, type: 'msg' })))
  } catch {
    return self.registration.showNotification('Hubbub', { body: 'New activity', tag: 'hubbub-wake' })
  }
}

self.addEventListener('push', (event) => {
  let data = {}
  try {
    data = event.data ? event.data.json() : {}
  } catch {
    data = { type: 'msg', title: 'Hubbub', body: event.data ? event.data.text() : '' }
  }
  if (data.type === 'clear') event.waitUntil(closeTag(data.tag || `conv:${data.conv}`))
  else if (data.type === 'call')
    event.waitUntil(
      self.registration.showNotification(data.title || 'Hubbub', {
        body: data.media === 'video' ? 'Incoming video call' : 'Incoming voice call',
        tag: 'call',
        renotify: true,
        requireInteraction: true,
        icon: '/icon-192.png',
        data: { conv: data.conv },
      }),
    )
  else if (data.type === 'wake') event.waitUntil(wake())
  else event.waitUntil(show(data))
})

self.addEventListener('notificationclick', (event) => {
  const conv = event.notification.data && event.notification.data.conv
  event.notification.close()
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((tabs) => {
      const tab = tabs.find((c) => new URL(c.url).origin === self.location.origin)
      if (tab) {
        tab.postMessage({ type: 'open-conv', conv })
        return tab.focus()
      }
      return self.clients.openWindow(conv ? `/?conv=${encodeURIComponent(conv)}` : '/')
    }),
  )
})
