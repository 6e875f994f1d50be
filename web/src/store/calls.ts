/**
 * One 1:1 call at a time (protocol.md, "Calls"): the signalling with the server and the RTCPeerConnection.
 *
 * Phases: idle → outgoing (I invited) or incoming (my devices ring) → connecting (answered; media being set
 * up) → active (media flows) → ended (why, shown for a few seconds). The server is the judge of every step
 * (busy, answered elsewhere, timeout); this only follows its frames.
 *
 * Negotiation is "perfect negotiation": the caller is impolite, the callee polite, so two offers at once
 * (both turning a camera on) resolve without a deadlock. The caller makes the first offer when the callee
 * accepts; the callee adds its tracks when that offer arrives.
 *
 * When the WebSocket reconnects during an answered call (a network drop, a server node restarting), the
 * call follows the new connection (`call_resume`); the media never stopped. A live call is also remembered
 * in sessionStorage: after a reload, which loses the peer connection, the page shows it as ended (and tells
 * the server, so the other side hears it at once) instead of silently forgetting it.
 */
import { markRaw, reactive } from 'vue'
import { WsError } from '../api/socket'
import type {
  CallEndReason,
  CallInvitedFrame,
  CallMedia,
  CallPushFrame,
  ClientFrame,
  IceServers,
  ServerFrame,
  UserId,
} from '../api/types'
import type { Ringer } from '../util/ringtone'

export type CallPhase = 'idle' | 'outgoing' | 'incoming' | 'connecting' | 'active' | 'ended'
export type EndReason = CallEndReason | 'reload' | 'failed' | 'error'

export interface Device {
  id: string
  label: string
}

export interface CallDeps {
  request: <T extends ServerFrame>(frame: ClientFrame) => Promise<T>
  onFrame: (sink: (f: CallPushFrame) => void) => void
  /** Register what to do after each (re)connection of the WebSocket. */
  onReady?: (cb: () => void) => void
  iceServers: () => Promise<IceServers>
  getUserMedia?: (c: MediaStreamConstraints) => Promise<MediaStream>
  enumerateDevices?: () => Promise<MediaDeviceInfo[]>
  createPeer?: (config: RTCConfiguration) => RTCPeerConnection
  /** sessionStorage in the browser. */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>
  ringer?: Ringer
  /** An incoming call rings: tell the user even if the tab is in the background (a system notification). */
  notifyIncoming?: (peer: UserId, media: CallMedia) => void
  now?: () => number
  /** How long an ended call stays on screen (ms). */
  endedShowMs?: number
}

const REMEMBER_KEY = 'hubbub.call'

/** Words for a getUserMedia failure: an i18n key. */
export function mediaErrorKey(e: unknown, video: boolean): string {
  const name = (e as { name?: string } | null)?.name ?? ''
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'call.errDenied'
    case 'NotFoundError':
    case 'OverconstrainedError':
      return video ? 'call.errNoCamera' : 'call.errNoMic'
    case 'NotReadableError':
    case 'AbortError':
      return 'call.errInUse'
    case 'Insecure':
      return 'call.errInsecure'
    default:
      return 'call.errMedia'
  }
}

export type CallStore = ReturnType<typeof createCallStore>

export function createCallStore(deps: CallDeps) {
  const now = deps.now ?? Date.now
  const gum =
    deps.getUserMedia ??
    ((c: MediaStreamConstraints) => {
      if (!globalThis.navigator?.mediaDevices?.getUserMedia) {
        return Promise.reject(Object.assign(new Error('insecure context'), { name: 'Insecure' }))
      }
      return navigator.mediaDevices.getUserMedia(c)
    })
  const listDevices =
    deps.enumerateDevices ?? (() => globalThis.navigator?.mediaDevices?.enumerateDevices?.() ?? Promise.resolve([]))
  const createPeer = deps.createPeer ?? ((c: RTCConfiguration) => new RTCPeerConnection(c))

  const state = reactive({
    phase: 'idle' as CallPhase,
    id: '',
    peer: 0 as UserId,
    media: 'audio' as CallMedia,
    outgoing: false,
    /** A callee device is ringing (the caller hears ringback). */
    ringing: false,
    acceptedAt: 0,
    reason: '' as EndReason | '',
    durationMs: 0,
    /** An i18n key explaining a failure (camera denied, busy...). */
    error: '',
    muted: false,
    cameraOn: false,
    local: null as MediaStream | null,
    remote: null as MediaStream | null,
    /** Bumped when the remote stream gains or loses a track, so views re-check for video. */
    remoteTracks: 0,
    devices: { audioinput: [] as Device[], videoinput: [] as Device[], audiooutput: [] as Device[] },
    mic: '',
    camera: '',
    speaker: '',
  })

  let pc: RTCPeerConnection | null = null
  let ice: IceServers | null = null
  let makingOffer = false
  let tracksAdded = false
  let pendingIce: RTCIceCandidateInit[] = []
  /** Frames that arrived before the invite's reply told us the call id. */
  let early: CallPushFrame[] = []
  let endedTimer: ReturnType<typeof setTimeout> | null = null
  /** A call that was live before a reload: hung up as soon as the socket is back. */
  let orphan = ''
  let iceRestarted = false

  function busy(): boolean {
    return state.phase !== 'idle' && state.phase !== 'ended'
  }

  // ---- placing and answering -------------------------------------------------------------------------

  async function start(peer: UserId, media: CallMedia): Promise<void> {
    if (busy()) return
    reset()
    Object.assign(state, { phase: 'outgoing', peer, media, outgoing: true })
    ice = await deps.iceServers().catch(() => null)
    if (!(await openMedia(media))) return end('error')
    if (state.phase !== 'outgoing') return // hung up meanwhile
    try {
      const r = await deps.request<CallInvitedFrame>({ type: 'call_invite', to: peer, media })
      state.id = r.call.id
      remember()
      const queued = early
      early = []
      for (const f of queued) onFrame(f)
    } catch (e) {
      state.error = errorKey(e)
      end('error')
    }
  }

  async function accept(): Promise<void> {
    if (state.phase !== 'incoming') return
    deps.ringer?.stop()
    state.phase = 'connecting'
    ice = await deps.iceServers().catch(() => null)
    if (!(await openMedia(state.media))) {
      void deps.request({ type: 'call_reject', call: state.id }).catch(() => {})
      return end('error')
    }
    try {
      await deps.request({ type: 'call_accept', call: state.id })
    } catch (e) {
      const code = e instanceof WsError ? e.code : ''
      if (code === 'conflict') return end('answered_elsewhere')
      state.error = errorKey(e)
      return end('error')
    }
    state.acceptedAt = now()
    remember()
    ensurePeer()
  }

  function decline(): void {
    if (state.phase !== 'incoming') return
    void deps.request({ type: 'call_reject', call: state.id }).catch(() => {})
    end('declined')
  }

  function hangup(): void {
    if (!busy()) return
    if (state.id) {
      const type = state.phase === 'incoming' ? 'call_reject' : state.outgoing && !state.acceptedAt ? 'call_cancel' : 'call_hangup'
      void deps.request({ type, call: state.id }).catch(() => {})
    }
    end(state.acceptedAt ? 'hangup' : state.outgoing ? 'cancelled' : 'declined')
  }

  // ---- frames from the server ------------------------------------------------------------------------

  function onFrame(f: CallPushFrame): void {
    if (f.type === 'call_incoming') {
      if (busy()) return // the server says busy to callers; a second ring here would be a stale frame
      reset()
      Object.assign(state, { phase: 'incoming', id: f.call.id, peer: f.call.caller, media: f.call.media, outgoing: false })
      deps.ringer?.start('incoming')
      deps.notifyIncoming?.(f.call.caller, f.call.media)
      void deps.request({ type: 'call_ring', call: f.call.id }).catch(() => {})
      return
    }
    if (state.phase === 'outgoing' && !state.id) {
      early.push(f) // the invite's reply is still on its way
      return
    }
    if (f.call !== state.id || !busy()) return
    switch (f.type) {
      case 'call_ringing':
        state.ringing = true
        deps.ringer?.start('ringback')
        return
      case 'call_accepted':
        deps.ringer?.stop()
        state.phase = 'connecting'
        state.acceptedAt = now()
        ensurePeer()
        addLocalTracks() // negotiationneeded: the first offer
        return
      case 'call_ended':
        end(f.reason, f.duration_ms ?? 0)
        return
      case 'call_sdp':
        void onSdp(f.kind, f.sdp)
        return
      case 'call_ice':
        void onIce(f.candidate ?? null)
        return
    }
  }
  deps.onFrame(onFrame)

  /** After each (re)connection: take an answered call along to the new connection, or end an orphan. */
  async function onReady(): Promise<void> {
    if (orphan) {
      const id = orphan
      orphan = ''
      // The page reloaded mid-call: move the call here only to hang it up (the media is gone with the page).
      await deps.request({ type: 'call_resume', call: id }).catch(() => {})
      await deps.request({ type: 'call_hangup', call: id }).catch(() => {})
      return
    }
    if (state.phase === 'outgoing' && state.id) {
      // Our connection closed while it rang: the server cancelled the call then (docs/protocol.md, "Calls").
      end('lost')
      return
    }
    if (!state.id || !state.acceptedAt || (state.phase !== 'connecting' && state.phase !== 'active')) return
    const id = state.id
    try {
      await deps.request({ type: 'call_resume', call: id })
      if (pc && (pc.iceConnectionState === 'disconnected' || pc.iceConnectionState === 'failed')) pc.restartIce()
    } catch (e) {
      const code = e instanceof WsError ? e.code : ''
      if (code !== 'disconnected' && code !== 'timeout' && state.id === id) end('lost')
    }
  }
  deps.onReady?.(() => void onReady())

  // ---- WebRTC ----------------------------------------------------------------------------------------

  function ensurePeer(): RTCPeerConnection {
    if (pc) return pc
    const conn = createPeer({
      iceServers: ice?.ice_servers ?? [],
      iceTransportPolicy: ice?.ice_transport_policy ?? 'all',
    })
    pc = markRaw(conn)
    const id = state.id
    conn.onnegotiationneeded = async () => {
      try {
        makingOffer = true
        await conn.setLocalDescription()
        const d = conn.localDescription
        if (d) send({ type: 'call_sdp', call: id, kind: d.type === 'answer' ? 'answer' : 'offer', sdp: d.sdp })
      } catch {
        /* a newer negotiation took over */
      } finally {
        makingOffer = false
      }
    }
    conn.onicecandidate = (ev) => send({ type: 'call_ice', call: id, candidate: ev.candidate ? ev.candidate.toJSON() : null })
    conn.ontrack = (ev) => {
      const stream = ev.streams[0] ?? state.remote ?? new MediaStream()
      if (!ev.streams[0]) stream.addTrack(ev.track)
      state.remote = markRaw(stream)
      state.remoteTracks++
      ev.track.onunmute = () => state.remoteTracks++
      ev.track.onended = () => state.remoteTracks++
    }
    conn.onconnectionstatechange = () => {
      if (conn !== pc) return
      if (conn.connectionState === 'connected' && state.phase === 'connecting') state.phase = 'active'
      if (conn.connectionState === 'failed') {
        if (!iceRestarted) {
          iceRestarted = true // the network changed: one ICE restart (a new offer) before giving up
          conn.restartIce()
          return
        }
        state.error = 'call.errFailed'
        hangup()
      }
    }
    return conn
  }

  function addLocalTracks(): void {
    if (!pc || tracksAdded || !state.local) return
    tracksAdded = true
    for (const track of state.local.getTracks()) pc.addTrack(track, state.local)
  }

  async function onSdp(kind: 'offer' | 'answer', sdp: string): Promise<void> {
    const conn = ensurePeer()
    const polite = !state.outgoing
    const collision = kind === 'offer' && (makingOffer || conn.signalingState !== 'stable')
    if (!polite && collision) return // the impolite side ignores the colliding offer; ours wins
    try {
      await conn.setRemoteDescription({ type: kind, sdp })
      if (kind === 'offer') {
        addLocalTracks() // the callee answers with its own tracks on the offered transceivers
        await conn.setLocalDescription()
        const d = conn.localDescription
        if (d) send({ type: 'call_sdp', call: state.id, kind: 'answer', sdp: d.sdp })
      }
      const queued = pendingIce
      pendingIce = []
      for (const c of queued) await conn.addIceCandidate(c).catch(() => {})
    } catch {
      /* a description from a negotiation that was superseded */
    }
  }

  async function onIce(candidate: RTCIceCandidateInit | null): Promise<void> {
    if (!pc || !pc.remoteDescription) {
      if (candidate) pendingIce.push(candidate)
      return
    }
    await pc.addIceCandidate(candidate ?? undefined).catch(() => {})
  }

  function send(frame: ClientFrame): void {
    void deps.request(frame).catch(() => {})
  }

  // ---- local media -----------------------------------------------------------------------------------

  async function openMedia(media: CallMedia): Promise<boolean> {
    const video = media === 'video'
    try {
      const stream = await gum(constraints(true, video))
      state.local = markRaw(stream)
      state.cameraOn = video
    } catch (e) {
      if (!video) {
        state.error = mediaErrorKey(e, false)
        return false
      }
      // No camera (or it is busy): go on with the microphone and say why the camera is off.
      try {
        state.local = markRaw(await gum(constraints(true, false)))
        state.cameraOn = false
        state.error = mediaErrorKey(e, true)
      } catch (e2) {
        state.error = mediaErrorKey(e2, false)
        return false
      }
    }
    void loadDevices()
    return true
  }

  function constraints(audio: boolean, video: boolean): MediaStreamConstraints {
    return {
      audio: audio ? (state.mic ? { deviceId: { exact: state.mic } } : true) : false,
      video: video ? (state.camera ? { deviceId: { exact: state.camera } } : { width: 640, height: 480 }) : false,
    }
  }

  async function loadDevices(): Promise<void> {
    try {
      const all = await listDevices()
      const of = (kind: MediaDeviceKind) =>
        all.filter((d) => d.kind === kind).map((d, i) => ({ id: d.deviceId, label: d.label || `${kind} ${i + 1}` }))
      state.devices = { audioinput: of('audioinput'), videoinput: of('videoinput'), audiooutput: of('audiooutput') }
    } catch {
      /* no device list: the default devices are used */
    }
  }

  function toggleMute(): void {
    state.muted = !state.muted
    for (const t of state.local?.getAudioTracks() ?? []) t.enabled = !state.muted
  }

  /** Camera off: the track stops sending (black). Camera on in a voice call: add a video track (renegotiates). */
  async function toggleCamera(): Promise<void> {
    const local = state.local
    if (!local) return
    const tracks = local.getVideoTracks()
    if (tracks.length) {
      state.cameraOn = !state.cameraOn
      for (const t of tracks) t.enabled = state.cameraOn
      return
    }
    try {
      const [track] = (await gum(constraints(false, true))).getVideoTracks()
      if (!track) return
      local.addTrack(track)
      state.cameraOn = true
      state.error = ''
      if (pc && tracksAdded) pc.addTrack(track, local)
      state.local = markRaw(local)
    } catch (e) {
      state.error = mediaErrorKey(e, true)
    }
  }

  /** Use another microphone or camera (the track is replaced without renegotiating), or speaker. */
  async function chooseDevice(kind: 'audioinput' | 'videoinput' | 'audiooutput', id: string): Promise<void> {
    if (kind === 'audiooutput') {
      state.speaker = id
      return
    }
    const audio = kind === 'audioinput'
    if (audio) state.mic = id
    else state.camera = id
    const local = state.local
    if (!local) return
    try {
      const fresh = await gum(constraints(audio, !audio))
      const track = (audio ? fresh.getAudioTracks() : fresh.getVideoTracks())[0]
      if (!track) return
      const old = (audio ? local.getAudioTracks() : local.getVideoTracks())[0]
      track.enabled = audio ? !state.muted : state.cameraOn
      const sender = pc?.getSenders().find((s) => s.track === old)
      if (sender) await sender.replaceTrack(track)
      if (old) {
        local.removeTrack(old)
        old.stop()
      }
      local.addTrack(track)
      state.local = markRaw(local)
    } catch (e) {
      state.error = mediaErrorKey(e, !audio)
    }
  }

  // ---- ending ----------------------------------------------------------------------------------------

  function end(reason: EndReason, durationMs = 0): void {
    deps.ringer?.stop()
    const wasAccepted = state.acceptedAt
    state.reason = reason
    state.durationMs = durationMs || (wasAccepted ? now() - wasAccepted : 0)
    state.phase = 'ended'
    teardown()
    forget()
    if (endedTimer) clearTimeout(endedTimer)
    const id = state.id
    endedTimer = setTimeout(() => {
      if (state.phase === 'ended' && state.id === id && !state.error) dismiss()
    }, deps.endedShowMs ?? 4000)
  }

  function dismiss(): void {
    if (state.phase === 'ended') reset()
  }

  function teardown(): void {
    if (pc) {
      pc.onnegotiationneeded = pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null
      pc.close()
    }
    pc = null
    for (const t of state.local?.getTracks() ?? []) t.stop()
    state.local = null
    state.remote = null
    tracksAdded = false
    makingOffer = false
    iceRestarted = false
    pendingIce = []
  }

  function reset(): void {
    teardown()
    early = []
    Object.assign(state, {
      phase: 'idle',
      id: '',
      peer: 0,
      outgoing: false,
      ringing: false,
      acceptedAt: 0,
      reason: '',
      durationMs: 0,
      error: '',
      muted: false,
      cameraOn: false,
    })
  }

  function remember(): void {
    deps.storage?.setItem(REMEMBER_KEY, JSON.stringify({ id: state.id, peer: state.peer, media: state.media }))
  }

  function forget(): void {
    deps.storage?.removeItem(REMEMBER_KEY)
  }

  /** After a reload: a call that was live is over (the server ended it with the old connection). */
  function restore(): void {
    const raw = deps.storage?.getItem(REMEMBER_KEY)
    if (!raw) return
    forget()
    try {
      const saved = JSON.parse(raw) as { id?: unknown; peer?: unknown; media?: unknown }
      if (typeof saved.id !== 'string' || typeof saved.peer !== 'number') return
      Object.assign(state, {
        phase: 'ended',
        id: saved.id,
        peer: saved.peer,
        media: saved.media === 'video' ? 'video' : 'audio',
        reason: 'reload',
      })
      orphan = saved.id
    } catch {
      /* not ours */
    }
  }
  restore()

  return { state, start, accept, decline, hangup, dismiss, toggleMute, toggleCamera, chooseDevice, loadDevices, busy }
}

function errorKey(e: unknown): string {
  const code = e instanceof WsError ? e.code : (e as { code?: string } | null)?.code
  if (code === 'busy') return 'call.busy'
  if (code === 'not_friends') return 'call.notFriends'
  if (code === 'rate_limited') return 'err.rate_limited'
  if (code === 'disconnected' || code === 'timeout') return 'err.network'
  return code ? `err.${code}` : 'err.internal'
}
