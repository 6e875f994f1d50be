/**
 * A tiny i18n: one dictionary per language, `t(key, params)` with `{name}` placeholders. The Chinese
 * dictionary is typed against the English one, so a missing translation is a type error.
 */
import { ref, watch } from 'vue'

const en = {
  'app.name': 'Hubbub',
  'app.tagline': 'Chat with your people, on your own server.',
  'auth.login': 'Log in',
  'auth.register': 'Create account',
  'auth.username': 'Username',
  'auth.password': 'Password',
  'auth.nickname': 'Display name (optional)',
  'auth.noAccount': 'New here?',
  'auth.haveAccount': 'Already have an account?',
  'auth.working': 'One moment…',
  'auth.ended': 'You were signed out. Please log in again.',
  'tab.chats': 'Chats',
  'tab.contacts': 'Contacts',
  'sidebar.empty': 'No conversations yet',
  'sidebar.emptyHint': 'Add a friend and say hello.',
  'sidebar.findPeople': 'Find people',
  'contacts.requests': 'Friend requests',
  'contacts.sent': 'Sent requests',
  'contacts.friends': 'Friends',
  'contacts.none': 'No friends yet. Search for people above.',
  'contacts.accept': 'Accept',
  'contacts.decline': 'Decline',
  'contacts.pending': 'Pending',
  'contacts.online': 'Online',
  'contacts.offline': 'Offline',
  'search.placeholder': 'Search by username or name',
  'search.none': 'No one found',
  'search.add': 'Add',
  'search.message': 'Message',
  'search.requested': 'Requested',
  'search.you': 'You',
  'search.note': 'Say something (optional)',
  'search.noteDefault': "Hi, it's {name}",
  'search.send': 'Send request',
  'common.cancel': 'Cancel',
  'common.save': 'Save',
  'common.close': 'Close',
  'common.back': 'Back',
  'status.connecting': 'Connecting…',
  'status.waiting': 'Offline. Reconnecting in {s}s…',
  'status.reconnect': 'Reconnect now',
  'status.replaced': 'Hubbub is open in another tab or window.',
  'status.useHere': 'Use here',
  'chat.pick': 'Pick a conversation',
  'chat.pickHint': 'Or find someone in Contacts to start one.',
  'chat.today': 'Today',
  'chat.yesterday': 'Yesterday',
  'chat.typing': 'typing…',
  'chat.online': 'online',
  'chat.offline': 'offline',
  'chat.latest': 'Jump to latest',
  'chat.newCount': '{n} new',
  'chat.loading': 'Loading…',
  'chat.start': 'This is the beginning of your chat with {name}.',
  'chat.recalledMine': 'You recalled a message',
  'chat.recalledOther': '{name} recalled a message',
  'chat.recalled': 'Message recalled',
  'chat.sending': 'Sending',
  'chat.sent': 'Sent',
  'chat.read': 'Read',
  'chat.failed': 'Not sent',
  'chat.retry': 'Retry',
  'chat.delete': 'Delete',
  'chat.recall': 'Recall',
  'chat.copy': 'Copy',
  'chat.placeholder': 'Write a message',
  'chat.send': 'Send',
  'chat.emoji': 'Emoji',
  'chat.hint': 'Enter to send, Shift+Enter for a new line',
  'msg.image': '[image]',
  'msg.file': '[file]',
  'msg.voice': '[voice]',
  'msg.video': '[video]',
  'msg.system': '[system message]',
  'msg.unknown': '[unsupported message]',
  'msg.you': 'You: ',
  'profile.title': 'Profile',
  'profile.nickname': 'Name',
  'profile.signature': 'What’s up',
  'profile.saved': 'Profile saved',
  'profile.logout': 'Log out',
  'settings.theme': 'Theme',
  'settings.light': 'Light',
  'settings.dark': 'Dark',
  'settings.system': 'System',
  'settings.language': 'Language',
  'settings.notifications': 'Desktop notifications',
  'settings.enable': 'Enable',
  'settings.enabled': 'On',
  'settings.blocked': 'Blocked by the browser',
  'notify.prompt': 'Get a notification when a message arrives',
  'toast.friendRequest': '{name} sent you a friend request',
  'toast.accepted': '{name} accepted your friend request',
  'toast.requestSent': 'Friend request sent to {name}',
  'err.network': 'Cannot reach the server',
  'err.unauthorized': 'Wrong username or password',
  'err.username_taken': 'That username is taken',
  'err.invalid_field': 'Please check the form: {message}',
  'err.conflict': 'Already done',
  'err.not_friends': 'You are not friends any more',
  'err.forbidden': 'Not allowed',
  'err.not_found': 'Not found',
  'err.recall_expired': 'Too late to recall (2 minutes)',
  'err.rate_limited': 'Slow down a little',
  'err.too_large': 'Too large',
  'err.too_long': 'Messages can be at most 4,000 characters',
  'err.timeout': 'The server did not answer',
  'err.unavailable': 'The server is busy, try again',
  'err.internal': 'Something went wrong',
}

export type MessageKey = keyof typeof en

const zh: Record<MessageKey, string> = {
  'app.name': 'Hubbub',
  'app.tagline': '在你自己的服务器上，和你在乎的人聊天。',
  'auth.login': '登录',
  'auth.register': '注册账号',
  'auth.username': '用户名',
  'auth.password': '密码',
  'auth.nickname': '昵称（可选）',
  'auth.noAccount': '还没有账号？',
  'auth.haveAccount': '已有账号？',
  'auth.working': '请稍候…',
  'auth.ended': '你已退出登录，请重新登录。',
  'tab.chats': '聊天',
  'tab.contacts': '联系人',
  'sidebar.empty': '还没有会话',
  'sidebar.emptyHint': '添加好友，打个招呼吧。',
  'sidebar.findPeople': '查找用户',
  'contacts.requests': '好友申请',
  'contacts.sent': '已发送的申请',
  'contacts.friends': '好友',
  'contacts.none': '还没有好友，在上方搜索用户。',
  'contacts.accept': '接受',
  'contacts.decline': '拒绝',
  'contacts.pending': '等待验证',
  'contacts.online': '在线',
  'contacts.offline': '离线',
  'search.placeholder': '搜索用户名或昵称',
  'search.none': '没有找到用户',
  'search.add': '添加',
  'search.message': '发消息',
  'search.requested': '已申请',
  'search.you': '你自己',
  'search.note': '附言（可选）',
  'search.noteDefault': '你好，我是{name}',
  'search.send': '发送申请',
  'common.cancel': '取消',
  'common.save': '保存',
  'common.close': '关闭',
  'common.back': '返回',
  'status.connecting': '连接中…',
  'status.waiting': '连接已断开，{s} 秒后重连…',
  'status.reconnect': '立即重连',
  'status.replaced': 'Hubbub 已在另一个标签页或窗口中打开。',
  'status.useHere': '在此处使用',
  'chat.pick': '选择一个会话',
  'chat.pickHint': '或在联系人中找人开始聊天。',
  'chat.today': '今天',
  'chat.yesterday': '昨天',
  'chat.typing': '正在输入…',
  'chat.online': '在线',
  'chat.offline': '离线',
  'chat.latest': '回到最新',
  'chat.newCount': '{n} 条新消息',
  'chat.loading': '加载中…',
  'chat.start': '这是你和 {name} 聊天的开始。',
  'chat.recalledMine': '你撤回了一条消息',
  'chat.recalledOther': '{name} 撤回了一条消息',
  'chat.recalled': '消息已撤回',
  'chat.sending': '发送中',
  'chat.sent': '已发送',
  'chat.read': '已读',
  'chat.failed': '发送失败',
  'chat.retry': '重试',
  'chat.delete': '删除',
  'chat.recall': '撤回',
  'chat.copy': '复制',
  'chat.placeholder': '输入消息',
  'chat.send': '发送',
  'chat.emoji': '表情',
  'chat.hint': 'Enter 发送，Shift+Enter 换行',
  'msg.image': '[图片]',
  'msg.file': '[文件]',
  'msg.voice': '[语音]',
  'msg.video': '[视频]',
  'msg.system': '[系统消息]',
  'msg.unknown': '[暂不支持的消息]',
  'msg.you': '我：',
  'profile.title': '个人资料',
  'profile.nickname': '昵称',
  'profile.signature': '个性签名',
  'profile.saved': '已保存',
  'profile.logout': '退出登录',
  'settings.theme': '主题',
  'settings.light': '浅色',
  'settings.dark': '深色',
  'settings.system': '跟随系统',
  'settings.language': '语言',
  'settings.notifications': '桌面通知',
  'settings.enable': '开启',
  'settings.enabled': '已开启',
  'settings.blocked': '已被浏览器禁止',
  'notify.prompt': '新消息到达时通知我',
  'toast.friendRequest': '{name} 请求添加你为好友',
  'toast.accepted': '{name} 通过了你的好友申请',
  'toast.requestSent': '已向 {name} 发送好友申请',
  'err.network': '无法连接服务器',
  'err.unauthorized': '用户名或密码错误',
  'err.username_taken': '用户名已被占用',
  'err.invalid_field': '请检查填写内容：{message}',
  'err.conflict': '已经处理过了',
  'err.not_friends': '你们已不是好友',
  'err.forbidden': '没有权限',
  'err.not_found': '未找到',
  'err.recall_expired': '超过 2 分钟，无法撤回',
  'err.rate_limited': '操作太频繁，请稍后再试',
  'err.too_large': '内容太大',
  'err.too_long': '消息最多 4000 个字符',
  'err.timeout': '服务器没有响应',
  'err.unavailable': '服务器繁忙，请重试',
  'err.internal': '出错了',
}

export type Locale = 'en' | 'zh'
const dicts: Record<Locale, Record<MessageKey, string>> = { en, zh }
const STORAGE_KEY = 'hubbub.locale'

function initialLocale(): Locale {
  try {
    const saved = globalThis.localStorage?.getItem(STORAGE_KEY)
    if (saved === 'en' || saved === 'zh') return saved
  } catch {
    /* storage blocked */
  }
  const nav = globalThis.navigator?.language ?? 'en'
  return nav.toLowerCase().startsWith('zh') ? 'zh' : 'en'
}

export const locale = ref<Locale>(initialLocale())

watch(locale, (l) => {
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, l)
  } catch {
    /* storage blocked */
  }
  if (globalThis.document) document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en'
})

export function hasKey(key: string): key is MessageKey {
  return key in en
}

export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  const s = dicts[locale.value][key] ?? en[key] ?? key
  return s.replace(/\{(\w+)\}/g, (_, k: string) => (k in params ? String(params[k]) : `{${k}}`))
}

/** Text for an error code from the server (`err.<code>`), falling back to its own message. */
export function errorText(code: string, message = ''): string {
  const key = `err.${code}`
  if (hasKey(key)) return t(key, { message })
  return message || t('err.internal')
}

export function toggleLocale(): void {
  locale.value = locale.value === 'en' ? 'zh' : 'en'
}
