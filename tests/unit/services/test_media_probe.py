"""The image stripper against the variety of real encodings: what it stores decodes to the same pixels as what
was uploaded (the lossless path copies the compressed data), and it never keeps metadata. Pure functions, no
sockets: the socket-level tests are in tests/e2e/test_media.py and tests/security/test_limits.py."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from hubbub.core.errors import HubbubError
from hubbub.services import media_probe as probe

LIMITS = probe.ImageLimits(max_pixels=50_000_000, pixels_per_byte=64.0, thumb_px=64)


def picture(mode: str, size: tuple[int, int] = (97, 61)) -> Image.Image:
    base = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 30)
    rgb = Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), base))
    if mode == "P":
        return rgb.quantize(64)
    if mode == "I;16":
        return base.convert("I").point(lambda v: v * 256).convert("I;16")
    return rgb.convert(mode)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, comment=b"COMMENTSECRET", **params) if fmt in ("JPEG", "GIF") else image.save(
        out, fmt, **params
    )
    return out.getvalue()


VARIANTS = {
    "jpeg-baseline": lambda: encode(picture("RGB"), "JPEG", quality=85),
    "jpeg-progressive": lambda: encode(picture("RGB"), "JPEG", progressive=True, quality=80),
    "jpeg-restart-markers": lambda: encode(picture("RGB"), "JPEG", restart_marker_blocks=1),
    "jpeg-grey": lambda: encode(picture("L"), "JPEG"),
    "jpeg-cmyk": lambda: encode(picture("CMYK"), "JPEG"),
    "jpeg-icc": lambda: encode(picture("RGB"), "JPEG", icc_profile=b"\0" * 128),
    "png-rgb": lambda: encode(picture("RGB"), "PNG"),
    "png-rgba": lambda: encode(picture("RGBA"), "PNG"),
    "png-palette-transparent": lambda: encode(picture("P"), "PNG", transparency=0),
    "png-16bit": lambda: encode(picture("I;16"), "PNG"),
    "png-small-idat-chunks": lambda: _split_idat(encode(picture("RGB"), "PNG")),
    "apng": lambda: encode(picture("RGB"), "PNG", save_all=True, append_images=[picture("L").convert("RGB")]),
    "gif": lambda: encode(picture("P"), "GIF"),
    "gif-animated": lambda: encode(
        picture("P"), "GIF", save_all=True, append_images=[picture("L").convert("P")]
    ),
    "webp-lossy": lambda: encode(picture("RGB"), "WEBP", quality=80),
    "webp-lossless-alpha": lambda: encode(
        picture("RGBA"), "WEBP", lossless=True, exif=b"Exif\0\0MM\0*\0\0\0\x08\0\0"
    ),
    "webp-animated": lambda: encode(
        picture("RGB"), "WEBP", save_all=True, append_images=[picture("L").convert("RGB")]
    ),
}


def _split_idat(data: bytes) -> bytes:
    """Re-chunk a PNG's image data into 100-byte IDAT chunks (as some encoders write it)."""
    import struct
    import zlib

    pos, head, idat, tail = 8, [data[:8]], b"", []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        else:
            (tail if idat else head).append(data[pos : pos + 12 + length])
        pos += 12 + length
    chunks = [
        struct.pack(">I", len(part)) + b"IDAT" + part + struct.pack(">I", zlib.crc32(b"IDAT" + part))
        for part in (idat[i : i + 100] for i in range(0, len(idat), 100))
    ]
    return b"".join(head + chunks + tail)


def _after_gif_header(gif: bytes, block: bytes) -> bytes:
    flags = gif[10]
    at = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    return gif[:at] + block + gif[at:]


def frames_of(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as image:
        out = []
        for i in range(getattr(image, "n_frames", 1)):
            image.seek(i)
            out.append(image.convert("RGBA"))
        return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_stripping_keeps_every_pixel_and_no_metadata(name: str, tmp_path: Path) -> None:
    data = VARIANTS[name]()
    src, out = tmp_path / "in", tmp_path / "out"
    src.write_bytes(data)
    result = probe.process_image(src, out, LIMITS)
    stored = out.read_bytes()
    assert result.size == len(stored) and len(result.thumb) > 0
    before, after = frames_of(data), frames_of(stored)
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        assert ImageChops.difference(a, b).getbbox() is None  # the very same pixels
    assert b"COMMENTSECRET" not in stored and b"Exif" not in stored
    assert 0 < result.work.elements < probe.MAX_IMAGE_STEPS


def test_crafted_images_cost_bounded_work(tmp_path: Path) -> None:
    """A JPEG of nothing but fill bytes, a PNG of empty ancillary chunks, a GIF of 1-byte sub-blocks: each
    stops at its step budget with bad_media instead of walking millions of elements."""
    import struct
    import zlib

    empty = struct.pack(">I", 0) + b"aaAa" + struct.pack(">I", zlib.crc32(b"aaAa"))
    png = encode(picture("RGB"), "PNG")
    crafted = {
        "jpeg": b"\xff\xd8" + b"\xff" * 4_000_000,
        "png": png[:33] + empty * 350_000 + png[33:],
        "gif": _after_gif_header(encode(picture("P"), "GIF"), b"\x21\xfe" + b"\x01x" * 1_500_000 + b"\0"),
    }
    for name, data in crafted.items():
        src = tmp_path / name
        src.write_bytes(data)
        with pytest.raises(HubbubError) as refused:
            probe.process_image(src, tmp_path / f"{name}.out", LIMITS)
        assert refused.value.code == "bad_media", name
        assert "container elements" in refused.value.message, (name, refused.value.message)
