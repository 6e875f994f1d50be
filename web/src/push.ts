/**
 * The installable app and Web Push in the page (docs/protocol.md, "Web Push"): registers the service worker
 * (public/sw.js), subscribes this browser with the server's VAPID key, reports this tab's visibility on the
 * WebSocket so a focused tab suppresses pushes, and opens the conversation a notification was clicked for.
 */
import { ref } from 'vue'
import type { Api } from './api/rest'

/** The browser's install offer (Chromium's ``beforeinstallprompt``), kept until the user takes it. */
interface InstallPrompt extends Event {
  prompt(): Promise<void>
  userChoice: Promise<{ outcome: 'accepted' | 'dismissed' }>
}
const installPrompt = ref<InstallPrompt | null>(null)
/** The browser offers to install the app (the settings show an "Install" button while it does). */
export const installable = () => installPrompt.value !== null

export function watchInstallPrompt(): void {
  window.addEventListener('beforeinstallprompt', (event) => {
    event.preventDefault() // shown from the settings, not as the browser's own mini-bar
    installPrompt.value = event as InstallPrompt
  })
  window.addEventListener('appinstalled', () => (installPrompt.value = null))
}

export async function install(): Promise<void> {
  const offer = installPrompt.value
  if (!offer) return
  await offer.prompt()
  await offer.userChoice
  installPrompt.value = null
}

export interface PushDevice {
  id: string
  kind: string
  label: string
  created_at: number
  last_ok_at: number
  current: boolean
}
export interface PushPrefs {
  preview: 'full' | 'sender' | 'none'
  mentions_through_mute: boolean
  hot_groups: 'mentions' | 'all'
}

export const pushSupported = (): boolean =>
  typeof navigator !== 'undefined' && 'serviceWorker' in navigator && typeof PushManager !== 'undefined'

export async function registerWorker(): Promise<ServiceWorkerRegistration | null> {
  if (typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return null
  try {
    return await navigator.serviceWorker.register('/sw.js', { scope: '/' })
  } catch {
    return null
  }
}

function keyBytes(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64url.length % 4)) % 4)
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)) as Uint8Array<ArrayBuffer>
}

function deviceLabel(): string {
  const ua = navigator.userAgent
  const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser'
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac/.test(ua) ? 'macOS' : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : ''
  return os ? `${browser} on ${os}` : browser
}

/** Ask for permission, subscribe with the server's key, and register the device. */
export async function enablePush(api: Api): Promise<PushDevice> {
  const reg = (await navigator.serviceWorker.getRegistration('/')) ?? (await registerWorker())
  if (!reg) throw new Error('no service worker')
  if ((await Notification.requestPermission()) !== 'granted') throw new Error('permission denied')
  const { public_key } = await api.authed<{ public_key: string }>('GET', '/push/key')
  let sub = await reg.pushManager.getSubscription()
  if (sub) {
    const current = sub.options.applicationServerKey
    const same = current && btoa(String.fromCharCode(...new Uint8Array(current))) === btoa(String.fromCharCode(...keyBytes(public_key)))
    if (!same) {
      await sub.unsubscribe()
      sub = null
    }
  }
  sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(public_key) })
  return api.authed<PushDevice>('POST', '/push/devices', { ...sub.toJSON(), label: deviceLabel() })
}

export const listDevices = (api: Api) =>
  api.authed<{ devices: PushDevice[] }>('GET', '/push/devices').then((r) => r.devices)
export const removeDevice = (api: Api, id: string) => api.authed<void>('DELETE', `/push/devices/${encodeURIComponent(id)}`)
export const getPrefs = (api: Api) => api.authed<PushPrefs>('GET', '/push/prefs')
export const setPrefs = (api: Api, prefs: PushPrefs) => api.authed<PushPrefs>('PUT', '/push/prefs', prefs)

/**
 * Report this tab's visibility to the server: on every change, and again every 20 s while hidden (a
 * reconnection starts in the foreground, so a hidden tab repeats itself until it is heard).
 */
export function reportVisibility(send: (state: 'foreground' | 'background') => void): void {
  const report = () => send(document.visibilityState === 'visible' ? 'foreground' : 'background')
  document.addEventListener('visibilitychange', report)
  setInterval(() => {
    if (document.visibilityState !== 'visible') report()
  }, 20_000)
}

/** A notification was clicked while this tab was open: the worker asks it to open the conversation. */
export function onNotificationClick(open: (conv: string) => void): void {
  if (typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return
  navigator.serviceWorker.addEventListener('message', (event: MessageEvent) => {
    const data = event.data as { type?: string; conv?: string } | null
    if (data?.type === 'open-conv' && data.conv) open(data.conv)
  })
}

/** The conversation of a notification that opened this tab (``/?conv=...``), removed from the address. */
export function convFromUrl(): string | null {
  const params = new URLSearchParams(location.search)
  const conv = params.get('conv')
  if (conv) history.replaceState(null, '', location.pathname)
  return conv
}
