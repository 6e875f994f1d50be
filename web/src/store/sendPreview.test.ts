import { afterEach, describe, expect, it } from 'vitest'
import { closeSendPreview, commitSendPreview, openSendPreview, removePreviewItem, sendPreview } from './sendPreview'

const file = (name: string, type: string) => new File(['x'], name, { type })

afterEach(() => closeSendPreview())

describe('send preview', () => {
  it('collects several files, removes one, sends the rest with the caption on the first', () => {
    openSendPreview('p:1:2', [file('a.png', 'image/png'), file('b.mp4', 'video/mp4')])
    openSendPreview('p:1:2', [file('c.pdf', 'application/pdf')])
    expect(sendPreview.items.map((i) => i.kind)).toEqual(['image', 'video', 'file'])
    removePreviewItem(sendPreview.items[0]!.id)
    sendPreview.caption = '  holiday  '
    const sent: [string, string, object][] = []
    expect(commitSendPreview((conv, f, opts) => sent.push([conv, f.name, opts]))).toBe(2)
    expect(sent).toEqual([
      ['p:1:2', 'b.mp4', { caption: 'holiday' }],
      ['p:1:2', 'c.pdf', {}],
    ])
    expect(sendPreview.conv).toBeNull()
    expect(sendPreview.items).toEqual([])
  })

  it('closes when the last item is removed, and starts over for another conversation', () => {
    openSendPreview('p:1:2', [file('a.png', 'image/png')])
    openSendPreview('g:5', [file('b.png', 'image/png')])
    expect(sendPreview.conv).toBe('g:5')
    expect(sendPreview.items.map((i) => i.file.name)).toEqual(['b.png'])
    removePreviewItem(sendPreview.items[0]!.id)
    expect(sendPreview.conv).toBeNull()
  })
})
