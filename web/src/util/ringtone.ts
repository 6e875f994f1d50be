/**
 * Ringing sounds made with WebAudio (no audio file to ship): a two-note chime for an incoming call and a
 * soft ringback tone while the callee's device rings. Browsers keep an AudioContext suspended until the page
 * had a user gesture; then the dialog still shows, silently.
 */

export interface Ringer {
  start(kind: 'incoming' | 'ringback'): void
  stop(): void
}

type Note = [freq: number, at: number, length: number]

/** One period of each sound: notes (Hz, start s, length s) and how often it repeats (s). */
const PATTERNS: Record<'incoming' | 'ringback', { notes: Note[]; every: number; gain: number }> = {
  incoming: {
    notes: [
      [880, 0, 0.35],
      [660, 0.4, 0.35],
      [880, 1.0, 0.35],
      [660, 1.4, 0.35],
    ],
    every: 3,
    gain: 0.18,
  },
  ringback: {
    notes: [
      [440, 0, 1.6],
      [480, 0, 1.6],
    ],
    every: 4,
    gain: 0.05,
  },
}

export function createRinger(): Ringer {
  let ctx: AudioContext | null = null
  let timer: ReturnType<typeof setInterval> | null = null

  function play(kind: 'incoming' | 'ringback'): void {
    if (!ctx) return
    const p = PATTERNS[kind]
    const t0 = ctx.currentTime + 0.05
    for (const [freq, at, length] of p.notes) {
      const osc = ctx.createOscillator()
      const gain = ctx.createGain()
      osc.type = 'sine'
      osc.frequency.value = freq
      // A short attack and release: no clicks.
      gain.gain.setValueAtTime(0, t0 + at)
      gain.gain.linearRampToValueAtTime(p.gain, t0 + at + 0.02)
      gain.gain.setValueAtTime(p.gain, t0 + at + length - 0.05)
      gain.gain.linearRampToValueAtTime(0, t0 + at + length)
      osc.connect(gain).connect(ctx.destination)
      osc.start(t0 + at)
      osc.stop(t0 + at + length + 0.01)
    }
  }

  return {
    start(kind) {
      this.stop()
      const AC = globalThis.AudioContext ?? (globalThis as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext
      if (!AC) return
      try {
        ctx = new AC()
        void ctx.resume().catch(() => {})
      } catch {
        ctx = null
        return
      }
      play(kind)
      timer = setInterval(() => play(kind), PATTERNS[kind].every * 1000)
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = null
      void ctx?.close().catch(() => {})
      ctx = null
    },
  }
}
