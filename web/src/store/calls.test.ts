import { describe, expect, it } from 'vitest'
import { WsError } from '../api/socket'
import type { CallPushFrame, ClientFrame } from '../api/types'
import { createCallStore, mediaErrorKey, type CallDeps } from './calls'
import { callDuration, callText } from '../util/callRecord'

class FakeTrack {
  enabled = true
  stopped = false
  readyState = 'live'
  muted = false
  constructor(public kind: 'audio' | 'video') {}
  stop(): void {
    this.stopped = true
  }
}

class FakeStream {
  tracks: FakeTrack[]
  constructor(tracks: FakeTrack[]) {
    this.tracks = tracks
  }
  getTracks() {
    return this.tracks
  }
  getAudioTracks() {
    return this.tracks.filter((t) => t.kind === 'audio')
  }
  getVideoTracks() {
    return this.tracks.filter((t) => t.kind === 'video')
  }
  addTrack(t: FakeTrack) {
    this.tracks.push(t)
  }
  removeTrack(t: FakeTrack) {
    this.tracks = this.tracks.filter((x) => x !== t)
  }
}

class FakePeer {
  added: FakeTrack[] = []
  closed = false
  signalingState = 'stable'
  localDescription: { type: string; sdp: string } | null = null
  remoteDescription: { type: string; sdp: string } | null = null
  candidates: unknown[] = []
  onnegotiationneeded: (() => void) | null = null
  onicecandidate: unknown = null
  ontrack: unknown = null
  onconnectionstatechange: unknown = null
  constructor(public config: RTCConfiguration) {}
  addTrack(t: FakeTrack) {
    this.added.push(t)
    // As a browser: a track added to a transceiver the remote offer created needs no new negotiation.
    if (this.remoteDescription === null) void Promise.resolve().then(() => this.onnegotiationneeded?.())
  }
  async setLocalDescription() {
    const type = this.signalingState === 'have-remote-offer' ? 'answer' : 'offer'
    this.localDescription = { type, sdp: `local ${type}` }
    this.signalingState = type === 'offer' ? 'have-local-offer' : 'stable'
  }
  async setRemoteDescription(d: { type: string; sdp: string }) {
    this.remoteDescription = d
    this.signalingState = d.type === 'offer' ? 'have-remote-offer' : 'stable'
  }
  async addIceCandidate(c: unknown) {
    this.candidates.push(c)
  }
  getSenders() {
    return []
  }
  close() {
    this.closed = true
  }
}

function harness(overrides: Partial<CallDeps> = {}) {
  const sent: ClientFrame[] = []
  const peers: FakePeer[] = []
  const saved = new Map<string, string>()
  let sink: (f: CallPushFrame) => void = () => {}
  let ready: () => void = () => {}
  const replies: Record<string, unknown> = {
    call_invite: { type: 'call_invited', call: { id: 'c1', caller: 1, callee: 2, media: 'video', state: 'ringing', created_at: 0 } },
  }
  const deps: CallDeps = {
    request: async (frame) => {
      sent.push(frame)
      const reply = replies[frame.type]
      if (reply instanceof Error) throw reply
      return (reply ?? { type: 'ok' }) as never
    },
    onFrame: (s) => (sink = s),
    onReady: (cb) => (ready = cb),
    iceServers: async () => ({ ice_servers: [{ urls: ['turn:t:3478'], username: 'u', credential: 'p' }], ttl_s: 60, ice_transport_policy: 'relay' }),
    getUserMedia: async (c) =>
      new FakeStream([new FakeTrack('audio'), ...(c.video ? [new FakeTrack('video')] : [])]) as unknown as MediaStream,
    enumerateDevices: async () => [],
    createPeer: (config) => {
      const p = new FakePeer(config)
      peers.push(p)
      return p as unknown as RTCPeerConnection
    },
    storage: { getItem: (k) => saved.get(k) ?? null, setItem: (k, v) => void saved.set(k, v), removeItem: (k) => void saved.delete(k) },
    now: () => 1000,
    endedShowMs: 10,
    ...overrides,
  }
  const calls = createCallStore(deps)
  return { calls, sent, peers, saved, replies, push: (f: CallPushFrame) => sink(f), ready: () => ready(), deps }
}

const tick = () => new Promise((r) => setTimeout(r, 0))

describe('call store', () => {
  it('places a call, offers when it is accepted, and hangs up', async () => {
    const h = harness()
    await h.calls.start(2, 'video')
    expect(h.sent[0]).toEqual({ type: 'call_invite', to: 2, media: 'video' })
    expect(h.calls.state).toMatchObject({ phase: 'outgoing', id: 'c1', outgoing: true, cameraOn: true })
    expect(h.saved.get('hubbub.call')).toContain('c1')
    h.push({ type: 'call_ringing', call: 'c1' })
    expect(h.calls.state.ringing).toBe(true)
    h.push({ type: 'call_accepted', call: 'c1', media: 'video' })
    await tick()
    const [peer] = h.peers
    expect(peer!.config).toMatchObject({ iceTransportPolicy: 'relay', iceServers: [{ urls: ['turn:t:3478'] }] })
    expect(peer!.added.map((t) => t.kind)).toEqual(['audio', 'video'])
    expect(h.sent).toContainEqual({ type: 'call_sdp', call: 'c1', kind: 'offer', sdp: 'local offer' })
    h.push({ type: 'call_sdp', call: 'c1', kind: 'answer', sdp: 'remote answer' })
    h.push({ type: 'call_ice', call: 'c1', candidate: { candidate: 'x' } })
    await tick()
    expect(peer!.remoteDescription).toEqual({ type: 'answer', sdp: 'remote answer' })
    h.calls.hangup()
    expect(h.sent.at(-1)).toEqual({ type: 'call_hangup', call: 'c1' })
    expect(h.calls.state.phase).toBe('ended')
    expect(peer!.closed).toBe(true)
    expect(h.saved.has('hubbub.call')).toBe(false)
  })

  it('rings, answers the offer with its own tracks, and hears the end', async () => {
    const h = harness()
    h.push({ type: 'call_incoming', call: { id: 'c9', caller: 7, callee: 1, media: 'audio', state: 'ringing', created_at: 0 } })
    expect(h.calls.state).toMatchObject({ phase: 'incoming', peer: 7, media: 'audio' })
    expect(h.sent).toEqual([{ type: 'call_ring', call: 'c9' }])
    await h.calls.accept()
    expect(h.sent.at(-1)).toEqual({ type: 'call_accept', call: 'c9' })
    h.push({ type: 'call_ice', call: 'c9', candidate: { candidate: 'early' } }) // before the offer: kept
    h.push({ type: 'call_sdp', call: 'c9', kind: 'offer', sdp: 'remote offer' })
    await tick()
    await tick()
    const [peer] = h.peers
    expect(peer!.added.map((t) => t.kind)).toEqual(['audio'])
    expect(peer!.candidates).toEqual([{ candidate: 'early' }])
    expect(h.sent).toContainEqual({ type: 'call_sdp', call: 'c9', kind: 'answer', sdp: 'local answer' })
    h.push({ type: 'call_ended', call: 'c9', reason: 'hangup', duration_ms: 5000, by: 7 })
    expect(h.calls.state).toMatchObject({ phase: 'ended', reason: 'hangup', durationMs: 5000 })
    await new Promise((r) => setTimeout(r, 20))
    expect(h.calls.state.phase).toBe('idle') // the ended banner goes by itself
  })

  it('stops ringing when another device answers, and ignores other calls', async () => {
    const h = harness()
    h.push({ type: 'call_incoming', call: { id: 'c2', caller: 7, callee: 1, media: 'video', state: 'ringing', created_at: 0 } })
    h.push({ type: 'call_ended', call: 'other', reason: 'hangup' })
    expect(h.calls.state.phase).toBe('incoming')
    h.push({ type: 'call_ended', call: 'c2', reason: 'answered_elsewhere' })
    expect(h.calls.state).toMatchObject({ phase: 'ended', reason: 'answered_elsewhere' })
  })

  it('explains media errors and places no call without a microphone', async () => {
    expect(mediaErrorKey({ name: 'NotAllowedError' }, true)).toBe('call.errDenied')
    expect(mediaErrorKey({ name: 'NotFoundError' }, true)).toBe('call.errNoCamera')
    expect(mediaErrorKey({ name: 'NotFoundError' }, false)).toBe('call.errNoMic')
    expect(mediaErrorKey({ name: 'NotReadableError' }, false)).toBe('call.errInUse')
    const denied = harness({ getUserMedia: async () => Promise.reject(Object.assign(new Error('no'), { name: 'NotAllowedError' })) })
    await denied.calls.start(2, 'audio')
    expect(denied.sent).toEqual([])
    expect(denied.calls.state).toMatchObject({ phase: 'ended', error: 'call.errDenied' })
    // A video call without a camera goes on as voice, saying why.
    const noCamera = harness({
      getUserMedia: async (c) =>
        c.video
          ? Promise.reject(Object.assign(new Error('no'), { name: 'NotFoundError' }))
          : (new FakeStream([new FakeTrack('audio')]) as unknown as MediaStream),
    })
    await noCamera.calls.start(2, 'video')
    expect(noCamera.calls.state).toMatchObject({ phase: 'outgoing', cameraOn: false, error: 'call.errNoCamera' })
  })

  it('shows busy in words', async () => {
    const h = harness()
    h.replies.call_invite = new WsError('busy', 'they are in another call')
    await h.calls.start(2, 'audio')
    expect(h.calls.state).toMatchObject({ phase: 'ended', error: 'call.busy' })
  })

  it('shows a call that was live before a reload as ended, and ends it on the server once connected', async () => {
    const saved = new Map([['hubbub.call', JSON.stringify({ id: 'c5', peer: 3, media: 'video' })]])
    const h = harness({
      storage: { getItem: (k) => saved.get(k) ?? null, setItem: () => {}, removeItem: (k) => void saved.delete(k) },
    })
    expect(h.calls.state).toMatchObject({ phase: 'ended', reason: 'reload', peer: 3, id: 'c5' })
    expect(saved.size).toBe(0)
    h.ready()
    await tick()
    expect(h.sent).toEqual([
      { type: 'call_resume', call: 'c5' },
      { type: 'call_hangup', call: 'c5' },
    ])
  })

  it('takes an answered call along when the socket reconnects, and ends it if the server refuses', async () => {
    const h = harness()
    await h.calls.start(2, 'video')
    h.push({ type: 'call_accepted', call: 'c1', media: 'video' })
    h.ready()
    await tick()
    expect(h.sent).toContainEqual({ type: 'call_resume', call: 'c1' })
    expect(h.calls.state.phase).toBe('connecting')
    h.replies.call_resume = new WsError('not_found', 'call not found')
    h.ready()
    await tick()
    expect(h.calls.state).toMatchObject({ phase: 'ended', reason: 'lost' })
  })

  it('words call records', () => {
    expect(callDuration(65_000)).toBe('1:05')
    expect(callDuration(3_725_000)).toBe('1:02:05')
    expect(callText({ kind: 'completed', media: 'video', duration_ms: 65_000 }, true)).toBe('Video call · 1:05')
    expect(callText({ kind: 'missed', media: 'audio' }, false)).toBe('Missed voice call')
    expect(callText({ kind: 'missed', media: 'audio' }, true)).toBe('Call not answered')
    expect(callText({ kind: 'declined', media: 'audio' }, true)).toBe('Call declined')
  })
})
