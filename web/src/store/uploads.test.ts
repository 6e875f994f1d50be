import { describe, expect, it } from 'vitest'
import { fitBox, formatBytes, formatDuration, kindFor, markDone, markFailed, newUpload, progressOf, setProgress } from './uploads'
import { can } from './permissions'

describe('upload state', () => {
  it('sends images the server accepts as images; SVG and the rest as files', () => {
    expect(kindFor({ type: 'image/png', name: 'a.png' })).toBe('image')
    expect(kindFor({ type: 'image/jpeg', name: 'a.jpg' })).toBe('image')
    expect(kindFor({ type: 'image/svg+xml', name: 'a.svg' })).toBe('file')
    expect(kindFor({ type: 'video/mp4', name: 'a.mp4' })).toBe('video')
    expect(kindFor({ type: 'application/pdf', name: 'a.pdf' })).toBe('file')
    expect(kindFor({ type: '', name: 'noext' })).toBe('file')
    expect(kindFor({ type: 'audio/webm', name: 'voice.webm' }, 'voice')).toBe('voice')
  })

  it('tracks progress monotonically, below 100% until the server answers', () => {
    const u = newUpload('u1', 'g:1', { name: 'cat.png', size: 1000, type: 'image/png' }, 'image', 5)
    expect(u).toMatchObject({ status: 'uploading', sent: 0, name: 'cat.png', kind: 'image' })
    expect(progressOf(u)).toBe(0)
    setProgress(u, 500, 1000)
    expect(progressOf(u)).toBe(0.5)
    setProgress(u, 300, 1000) // a late, smaller event never moves it back
    expect(progressOf(u)).toBe(0.5)
    setProgress(u, 1000, 1000)
    expect(progressOf(u)).toBe(0.99)
    markDone(u, { upload: 'f'.repeat(32), kind: 'image', name: 'cat.png', size: 1000, mime: 'image/png' })
    expect(progressOf(u)).toBe(1)
    expect(u.result?.upload).toBe('f'.repeat(32))
  })

  it('records a failure with its code, and names nameless blobs by kind', () => {
    const u = newUpload('u2', 'p:1:2', { name: '', size: 10, type: 'audio/webm' }, 'voice', 0)
    expect(u.name).toBe('voice.webm')
    markFailed(u, 'too_large')
    expect(u).toMatchObject({ status: 'failed', error: 'too_large' })
    const pasted = newUpload('u3', 'p:1:2', { name: '', size: 10, type: 'image/jpeg' }, 'image', 0)
    expect(pasted.name).toBe('image.jpg')
  })

  it('formats sizes and durations, and fits images into a box', () => {
    expect(formatBytes(12)).toBe('12 B')
    expect(formatBytes(2048)).toBe('2.0 KB')
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MB')
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MB')
    expect(formatDuration(7.4)).toBe('0:07')
    expect(formatDuration(723)).toBe('12:03')
    expect(fitBox(3000, 4000, 260, 300)).toEqual({ width: 225, height: 300 })
    expect(fitBox(100, 50, 260, 300)).toEqual({ width: 100, height: 50 })
    expect(fitBox(undefined, undefined, 260, 300)).toEqual({ width: 260, height: 195 })
  })
})

describe('group permissions (mirror of the server table)', () => {
  it('lets admins manage members, the owner everyone, nobody a peer', () => {
    expect(can('kick', 'admin', 'member')).toBe(true)
    expect(can('kick', 'admin', 'admin')).toBe(false)
    expect(can('kick', 'owner', 'admin')).toBe(true)
    expect(can('mute', 'member', 'member')).toBe(false)
    expect(can('set_admin', 'admin', 'member')).toBe(false)
    expect(can('set_admin', 'owner', 'member')).toBe(true)
    expect(can('transfer', 'owner', 'admin')).toBe(true)
    expect(can('quit', 'owner')).toBe(false)
    expect(can('quit', 'member')).toBe(true)
    expect(can('dismiss', 'admin')).toBe(false)
    expect(can('invite', 'member', null, 'members')).toBe(true)
    expect(can('invite', 'member', null, 'admins')).toBe(false)
    expect(can('mention_all', 'member')).toBe(false)
  })
})
