import { createApp } from 'vue'
import App from './App.vue'
import { Api } from './api/rest'
import { CallKey, StoreKey, createCallStore, createChatStore } from './store'
import { AccessKey, createAccess } from './store/access'
import { createRinger } from './util/ringtone'
import { applyTheme } from './theme'
import { locale, t } from './i18n'
import { messageSummary } from './util/format'
import { DeviceId } from './util/device'
import { installDeepLinks } from './util/deeplinks'
import { installUnreadMarks } from './store/unreadMark'
import { SocialKey, createSocialStore } from './store/social'
import './style.css'
import { convFromUrl, onNotificationClick, registerWorker, reportVisibility, watchInstallPrompt } from './push'

const api = new Api(localStorage)
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`

const store = createChatStore({
  api,
  wsUrl,
  storage: localStorage,
  device: new DeviceId(sessionStorage),
  isVisible: () => document.visibilityState === 'visible',
  notify: ({ title, body, conv }) => {
    if (document.visibilityState === 'visible') return
    if (social.isMuted(conv)) return // a muted chat counts, but does not pop up
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return
    try {
      const n = new Notification(title, { body: messageSummary(body), tag: conv })
      n.onclick = () => {
        window.focus()
        store.openConv(conv)
        n.close()
      }
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  },
})

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') store.markActiveRead()
})
window.addEventListener('online', () => store.reconnectNow())
window.addEventListener('focus', () => store.markActiveRead())

const calls = createCallStore({
  request: (frame) => store.callRequest(frame),
  onFrame: (sink) => store.onCallFrame(sink),
  onReady: (cb) => store.onCallReady(cb),
  iceServers: () => api.iceServers(),
  storage: sessionStorage,
  ringer: createRinger(),
  notifyIncoming: (peer, media) => {
    if (document.visibilityState === 'visible') return // the dialog and the ringtone are enough
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return
    try {
      const n = new Notification(t(media === 'video' ? 'call.incomingVideo' : 'call.incomingVoice'), {
        body: store.displayName(peer),
        tag: 'hubbub-call',
        requireInteraction: true,
      })
      n.onclick = () => {
        window.focus()
        n.close()
      }
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  },
})

applyTheme()
document.documentElement.lang = locale.value === 'zh' ? 'zh-CN' : 'en'
document.title = t('app.name')
installUnreadMarks(store)
const social = createSocialStore(store, api)
store.boot()
installDeepLinks({ state: store.state, openConv: store.openConv })

// The installable app and Web Push (push.ts, public/sw.js).
void registerWorker()
watchInstallPrompt()
reportVisibility((state) => {
  store.callRequest({ type: 'visibility', state }).catch(() => {
    /* not connected: a new connection starts in the foreground, and a hidden tab reports again */
  })
})
onNotificationClick((conv) => store.openConv(conv))
const openedFor = convFromUrl()
if (openedFor) store.openConv(openedFor)

const access = createAccess(api)
void access.loadServer()

createApp(App).provide(StoreKey, store).provide(CallKey, calls).provide(AccessKey, access).provide(SocialKey, social).mount('#app')
