"""What an uploaded file is, decided from its bytes: sniffing, metadata stripping, thumbnails, durations.

Pure functions on local files (the upload spool), run by the media service in its own bounded thread pools
(one for images, one for audio/video), never in the default executor; no network, no external binaries.
Docs: docs/media.md.

- Types come from magic bytes, never from the client's file name or Content-Type.
- Every parser here is bounded: it counts the container elements it visits and the bytes it reads
  (:class:`Work`) and gives up with ``bad_media`` past its budget (:data:`MAX_PROBE_STEPS` and
  :data:`MAX_READ_BYTES` for durations, :data:`MAX_IMAGE_STEPS` for images), so a
  crafted file costs at most a fixed amount of CPU, whatever its size (issue 12.13: a WebM of empty 2-byte
  elements used to cost ~1 s of CPU per MB).
- Images (JPEG, PNG, GIF, WebP; SVG is not an image here: it can carry script) are first stripped of every
  metadata block by walking their segments/chunks/blocks (lossless: the compressed pixels are copied as
  they are), so Pillow only ever sees metadata-free bytes; the EXIF orientation is read on the way and, when
  it is not "upright", applied by decoding and re-encoding. Decompression bombs are refused from the
  header's dimensions before any pixel is decoded: at most ``max_pixels`` in all, and at most
  ``pixels_per_byte`` per compressed byte above :data:`FREE_PIXELS` (a 160 KB PNG of 7000x7000 is refused).
- Durations: MP4/MOV from the ``mvhd`` box, WebM/Matroska from the EBML ``Info`` element, WAV, FLAC and Ogg
  (Opus, Vorbis) from their headers and last page, MP3 and AAC through mutagen's stream readers behind a
  counting file (both skip an ID3 tag by its size rather than parsing it; no tags are ever parsed).
- Video posters need a video decoder: the server makes none (PyAV was measured and not adopted, see
  docs/media.md); a client may upload a frame as an image and name it as the message's ``poster``.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mutagen
import mutagen.aac
import mutagen.mp3
from PIL import Image

from hubbub.core.errors import Code, HubbubError

#: Bytes of the file's start that sniffing looks at.
HEAD_BYTES = 64
#: Steps (container elements visited, and read calls) one duration probe may take. Real files take tens
#: (an MP4 12, a browser's WebM 45; a multiplexed Ogg a few per page); 20,000 is ~10 ms of CPU.
MAX_PROBE_STEPS = 20_000
#: Steps (segments, chunks, sub-blocks) stripping one image may take, or one per 128 bytes of a larger file:
#: a 20 MB PNG in 8 KiB IDAT chunks has 2,560; a 20 MB GIF in 255-byte sub-blocks ~82,000.
MAX_IMAGE_STEPS = 200_000
#: Bytes one duration probe may read (headers only: the media data is skipped by seeking).
MAX_READ_BYTES = 4 * 1024 * 1024
#: Images up to this many pixels are decoded whatever their compression ratio (4000x3000: 48 MB as RGBA).
FREE_PIXELS = 12_000_000

IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/flac": ".flac",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
    "audio/webm": ".webm",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/3gpp": ".3gp",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
}
VOICE_TYPES = frozenset(
    {"audio/ogg", "audio/mpeg", "audio/wav", "audio/flac", "audio/aac", "audio/mp4", "audio/webm"}
)
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/3gpp", "video/webm", "video/x-matroska"})


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes of a file announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"  # ADTS frame: sync word, layer 00
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # MPEG audio frame sync, layer I-III
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return "audio/mp4"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand[:3] in (b"3gp", b"3g2"):
            return "video/3gpp"
        return "video/mp4"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    return None


def kind_mime(kind: str, sniffed: str | None) -> str:
    """The type an upload of ``kind`` is stored as; raises UNSUPPORTED_MEDIA if its bytes are not that kind."""
    if kind == "file":
        return sniffed or "application/octet-stream"
    if kind == "image" and sniffed is not None and sniffed in IMAGE_TYPES.values():
        return sniffed
    if kind == "voice":
        if sniffed in ("video/webm", "video/x-matroska"):
            return "audio/webm"  # what browsers record voice into
        if sniffed in VOICE_TYPES:
            return sniffed
    if kind == "video" and sniffed in VIDEO_TYPES:
        return sniffed
    accepted = {
        "image": "JPEG, PNG, GIF or WebP",
        "voice": "Ogg, MP3, WAV, FLAC, AAC, M4A or WebM audio",
        "video": "MP4, MOV, 3GP, WebM or Matroska",
    }
    raise HubbubError(
        Code.UNSUPPORTED_MEDIA, f"this is not a {kind} we accept (send {accepted.get(kind, kind)})"
    )


_UNSAFE = re.compile(r'[<>:"|?*]')


def safe_name(raw: str | None, default: str) -> str:
    """A file name fit to show and to put in Content-Disposition: no directories, no control or bidi
    characters, no reserved characters, at most 200 UTF-8 bytes. It never becomes a path on the server."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = _UNSAFE.sub("_", name).strip(" .")
    while len(name.encode()) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if dot and len(ext) <= 16 and stem else name[:-1]
    return name or default


# -- bounded work ----------------------------------------------------------------------------------
@dataclass
class Work:
    """What probes cost: container elements visited and bytes read. Raises ``bad_media`` past the bounds."""

    #: Container elements visited plus read calls made.
    elements: int = 0
    bytes_read: int = 0
    max_elements: int = MAX_PROBE_STEPS
    max_bytes: int = MAX_READ_BYTES

    def element(self, n: int = 1) -> None:
        self.elements += n
        if self.elements > self.max_elements:
            raise HubbubError(
                Code.BAD_MEDIA, f"the file has more than {self.max_elements} container elements to read"
            )

    def read(self, n: int) -> None:
        self.bytes_read += n
        if self.bytes_read > self.max_bytes:
            raise HubbubError(Code.BAD_MEDIA, f"the file's headers take more than {self.max_bytes} bytes")

    def add(self, other: Work) -> None:
        self.elements += other.elements
        self.bytes_read += other.bytes_read


class _Counted(io.RawIOBase):
    """A read-only file that charges every read to a :class:`Work` (one element per read call), so a
    library parser behind it (mutagen) is bounded in bytes and in steps without knowing it."""

    def __init__(self, raw: io.BufferedReader, work: Work, name: str) -> None:
        self._raw = raw
        self.work = work
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.work.max_bytes - self.work.bytes_read + 1  # never more than the budget
        data = self._raw.read(size)
        self.work.element()
        self.work.read(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


# -- images ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    pixels_per_byte: float
    thumb_px: int


@dataclass
class ImageResult:
    #: The file to store as the original: always a copy without metadata, oriented upright.
    path: Path
    mime: str
    width: int
    height: int
    size: int
    sha256: str
    thumb: bytes
    thumb_mime: str
    thumb_width: int
    thumb_height: int
    work: Work = field(default_factory=Work)


@dataclass
class _Stripped:
    data: bytes
    frames: int
    #: The EXIF block (TIFF bytes), read for its orientation only: it is not in ``data``.
    exif: bytes | None


#: EXIF orientation -> the transpose that makes the image upright (as ``ImageOps.exif_transpose``).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def process_image(path: Path, out: Path, limits: ImageLimits) -> ImageResult:
    """Strip, orient, check and thumbnail an image; ``out`` receives the original to store. Raises
    BAD_MEDIA for what does not decode, TOO_LARGE for decompression bombs."""
    try:
        data = path.read_bytes()
        # Stripping walks every segment, chunk or sub-block: a budget that grows with the (size-limited)
        # file, so real images always fit and a crafted one costs at most a fixed amount per byte.
        work = Work(max_elements=max(MAX_IMAGE_STEPS, len(data) // 128), max_bytes=len(data))
        stripped, mime = _strip(data, work)
        with Image.open(io.BytesIO(stripped.data)) as im:
            if IMAGE_TYPES.get(im.format or "") != mime:
                raise HubbubError(Code.BAD_MEDIA, "the image's bytes and its format disagree")
            width, height = im.size
            _check_pixels(width, height, stripped.frames, len(data), limits)
            orientation = _orientation(stripped.exif) if stripped.frames == 1 else 1
            if orientation in _TRANSPOSE:
                im.load()
                upright = im.transpose(_TRANSPOSE[orientation])
                stored = _encode_upright(im, upright)
                width, height = upright.size
            else:
                stored = stripped.data
                if im.format == "JPEG":
                    im.draft("RGB", (limits.thumb_px * 2, limits.thumb_px * 2))  # decode at 1/2..1/8 scale
                im.load()
                upright = im
            thumb, thumb_size = _thumbnail(upright, limits.thumb_px)
        out.write_bytes(stored)
        return ImageResult(
            out, mime, width, height, len(stored), hashlib.sha256(stored).hexdigest(),
            thumb, "image/webp", thumb_size[0], thumb_size[1], work,
        )  # fmt: skip
    except HubbubError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise HubbubError(Code.TOO_LARGE, f"image is a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise HubbubError(Code.BAD_MEDIA, f"the image does not decode: {exc}") from exc


def _check_pixels(width: int, height: int, frames: int, compressed: int, limits: ImageLimits) -> None:
    """Refuse decompression bombs from the header: too many pixels in all, or too many for the file's size
    (a real photo has a few pixels per byte; a bomb hundreds)."""
    pixels = width * height
    allowed = min(limits.max_pixels, max(FREE_PIXELS, int(limits.pixels_per_byte * compressed)))
    if pixels > allowed or pixels * frames > 4 * limits.max_pixels:
        raise HubbubError(
            Code.TOO_LARGE,
            f"an image of {width}x{height}x{frames} in {compressed} bytes is over the limit of {allowed} "
            "pixels (a decompression bomb, or a larger image than this server takes)",
        )


def _thumbnail(image: Image.Image, thumb_px: int) -> tuple[bytes, tuple[int, int]]:
    mode = "RGBA" if _has_alpha(image) else "RGB"
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert(mode)  # palette and 16-bit images resample badly as they are
    image.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)
    thumb = image.convert(mode)
    buffer = io.BytesIO()
    thumb.save(buffer, "WEBP", quality=80, method=4)
    return buffer.getvalue(), thumb.size


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def _encode_upright(source: Image.Image, upright: Image.Image) -> bytes:
    """Re-encode an oriented still image in its own format. ``source`` was decoded from stripped bytes, so
    the only metadata carried over is the colour profile."""
    params: dict[str, Any] = {}
    if icc := source.info.get("icc_profile"):
        params["icc_profile"] = icc
    out = io.BytesIO()
    if source.format == "JPEG":
        image = upright if upright.mode in ("RGB", "L", "CMYK") else upright.convert("RGB")
        image.save(out, "JPEG", quality=90, **params)
    elif source.format == "PNG":
        upright.save(out, "PNG", **params)
    else:
        upright.save(out, "WEBP", quality=90, lossless=bool(source.info.get("lossless")), **params)
    return out.getvalue()


def _orientation(exif: bytes | None) -> int:
    """The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; 1 if absent or malformed."""
    if not exif:
        return 1
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return 1
    (ifd,) = struct.unpack_from(order + "I", exif, 4)
    if ifd + 2 > len(exif):
        return 1
    (count,) = struct.unpack_from(order + "H", exif, ifd)
    for i in range(min(count, (len(exif) - ifd - 2) // 12)):  # at most 65535 entries: bounded
        tag, kind, _n, value = struct.unpack_from(order + "HHI4s", exif, ifd + 2 + 12 * i)
        if tag == 0x0112 and kind == 3:
            (orientation,) = struct.unpack_from(order + "H", value)
            return int(orientation) if 1 <= orientation <= 8 else 1
    return 1


def _strip(data: bytes, work: Work) -> tuple[_Stripped, str]:
    mime = sniff(data[:HEAD_BYTES])
    if mime == "image/jpeg":
        return _strip_jpeg(data, work), mime
    if mime == "image/png":
        return _strip_png(data, work), mime
    if mime == "image/gif":
        return _strip_gif(data, work), mime
    if mime == "image/webp":
        return _strip_webp(data, work), mime
    raise HubbubError(Code.UNSUPPORTED_MEDIA, "only JPEG, PNG, GIF and WebP images are accepted")


def _malformed(what: str) -> HubbubError:
    return HubbubError(Code.BAD_MEDIA, f"the image does not decode: {what}")


def _strip_jpeg(data: bytes, work: Work) -> _Stripped:
    """Keep the segments that make the picture (tables, frame, scans), JFIF, the ICC profile and Adobe's
    colour transform; drop EXIF, XMP, IPTC/Photoshop, comments, other APPn and anything after the end."""
    out = [b"\xff\xd8"]
    exif: bytes | None = None
    pos, n = 2, len(data)
    while pos < n:
        work.element()
        if data[pos] != 0xFF:
            raise _malformed("JPEG bytes between segments")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            work.element()
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # end of image
            out.append(b"\xff\xd9")
            return _Stripped(b"".join(out), 1, exif)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > n:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > n:
            raise _malformed("a JPEG segment overruns the file")
        payload = data[pos + 2 : pos + length]
        if marker == 0xE1 and payload.startswith(b"Exif\0\0") and exif is None:
            exif = payload[6:]
        if _keep_jpeg_segment(marker, payload):
            out.append(data[pos - 2 : pos + length])
        pos += length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker that is not RSTn
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                raise _malformed("the JPEG ends inside a scan")
            out.append(data[pos : found.start()])
            pos = found.start()
    raise _malformed("the JPEG has no end-of-image marker")


#: A marker after entropy-coded data: 0xFF then neither a stuffed 0x00, a restart marker nor a fill byte.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    if marker == 0xFE:  # comment
        return False
    if 0xE0 <= marker <= 0xEF:  # APPn: only what decoding needs
        return (
            (marker == 0xE0 and payload.startswith(b"JFIF\0"))
            or (marker == 0xE2 and payload.startswith(b"ICC_PROFILE\0"))
            or (marker == 0xEE and payload.startswith(b"Adobe"))
        )
    return True


#: PNG chunks kept: the picture, its colour interpretation, its pixel size and APNG animation.
_PNG_KEEP = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"bKGD",
     b"pHYs", b"acTL", b"fcTL", b"fdAT"}
)  # fmt: skip


def _strip_png(data: bytes, work: Work) -> _Stripped:
    """Keep the chunks of :data:`_PNG_KEEP`; drop text (tEXt, zTXt, iTXt), eXIf, tIME and every other
    ancillary chunk, and anything after IEND. An unknown critical chunk is refused (no decoder knows it)."""
    out = [data[:8]]
    exif: bytes | None = None
    frames = 0
    pos, n = 8, len(data)
    while pos + 12 <= n:
        work.element()
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            raise _malformed("a PNG chunk overruns the file")
        if kind == b"eXIf" and exif is None:
            exif = data[pos + 8 : pos + 8 + length]
        if kind == b"fcTL":
            frames += 1
        if kind in _PNG_KEEP:
            out.append(data[pos:end])
        elif not kind[0] & 0x20:
            raise _malformed(f"unknown critical PNG chunk {kind!r}")
        pos = end
        if kind == b"IEND":
            return _Stripped(b"".join(out), max(frames, 1), exif)
    raise _malformed("the PNG has no IEND chunk")


def _strip_gif(data: bytes, work: Work) -> _Stripped:
    """Keep the screen, colour tables, images, graphic controls and the looping extension; drop comments,
    plain text, XMP and every other application extension."""
    if len(data) < 13:
        raise _malformed("the GIF ends in its header")
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    out = [data[:pos]]
    frames = 0
    n = len(data)
    while pos < n:
        work.element()
        block = data[pos]
        if block == 0x3B:  # trailer
            out.append(b"\x3b")
            return _Stripped(b"".join(out), max(frames, 1), None)
        if block == 0x21 and pos + 2 <= n:
            label = data[pos + 1]
            end = _gif_sub_blocks(data, pos + 2, work)
            app = data[pos + 3 : pos + 14] if label == 0xFF and data[pos + 2] == 11 else b""
            if label == 0xF9 or app in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
                out.append(data[pos:end])
            pos = end
        elif block == 0x2C and pos + 10 <= n:
            local = data[pos + 9]
            start = pos + 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1  # + LZW code size
            end = _gif_sub_blocks(data, start, work)
            out.append(data[pos:end])
            frames += 1
            pos = end
        else:
            raise _malformed(f"unexpected GIF block 0x{block:02x}")
    raise _malformed("the GIF has no trailer")


def _gif_sub_blocks(data: bytes, pos: int, work: Work) -> int:
    """The offset after a chain of data sub-blocks starting at ``pos`` (each counted as an element)."""
    n = len(data)
    while True:
        if pos >= n:
            raise _malformed("the GIF ends inside a block")
        size = data[pos]
        pos += size + 1
        if size == 0:
            return pos
        work.element()


def _strip_webp(data: bytes, work: Work) -> _Stripped:
    """Keep the image chunks (VP8, VP8L, VP8X, ALPH, ANIM, ANMF) and the ICC profile; drop EXIF, XMP and
    the rest, clearing their flags in VP8X and fixing the RIFF size."""
    out: list[bytes] = []
    exif: bytes | None = None
    frames = 0
    pos, n = 12, min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= n:
        work.element()
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > n:
            raise _malformed("a WebP chunk overruns the file")
        chunk = data[pos:end]
        if kind == b"EXIF" and exif is None:
            exif = data[pos + 8 : pos + 8 + length]
        elif kind == b"VP8X" and length >= 10:
            chunk = chunk[:8] + bytes((chunk[8] & ~0x0C,)) + chunk[9:]  # no EXIF (0x08), no XMP (0x04)
            out.append(chunk)
        elif kind in (b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"):
            out.append(chunk)
        frames += kind == b"ANMF"
        pos = end
    body = b"".join(out)
    if not body:
        raise _malformed("the WebP has no image")
    return _Stripped(b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body, max(frames, 1), exif)


# -- durations ---------------------------------------------------------------------------------------
def duration(path: Path, mime: str, work: Work) -> float | None:
    """Seconds of audio/video, or None where the container does not say (WebM written live by browsers).
    Raises BAD_MEDIA if the file is not a readable container of its type, or takes more work to read than
    ``work`` allows."""
    try:
        with path.open("rb") as raw:
            f = _Counted(raw, work, str(path))
            if mime in ("video/mp4", "video/quicktime", "video/3gpp", "audio/mp4"):
                return _mp4_duration(f, work)
            if mime in ("video/webm", "video/x-matroska", "audio/webm"):
                return _ebml_duration(f, work)
            if mime == "audio/wav":
                return _wav_duration(f, work)
            if mime == "audio/flac":
                return _flac_duration(f)
            if mime == "audio/ogg":
                return _ogg_duration(f)
            if mime == "audio/mpeg":
                length = mutagen.mp3.MPEGInfo(f).length  # skips an ID3 tag by its size
            else:  # audio/aac: ADTS frames (an ID3 tag skipped by its size)
                length = mutagen.aac.AACInfo(f).length
    except HubbubError:
        raise
    except (mutagen.MutagenError, OSError, ValueError, struct.error, EOFError, IndexError) as exc:
        raise HubbubError(Code.BAD_MEDIA, f"not a readable {mime} file: {exc}") from exc
    if not length or length <= 0:
        raise HubbubError(Code.BAD_MEDIA, f"not a readable {mime} file")
    return round(float(length), 3)


def _read(f: _Counted, n: int) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise EOFError("the file ends early")
    return data


def _size(f: _Counted) -> int:
    here = f.tell()
    total = f.seek(0, 2)
    f.seek(here)
    return total


def _boxes(f: _Counted, end: int, work: Work) -> Iterator[tuple[bytes, int, int]]:
    """ISO-BMFF boxes (type, payload start, payload end) between the current position and ``end``."""
    while f.tell() + 8 <= end:
        work.element()
        start = f.tell()
        size, kind = struct.unpack(">I4s", _read(f, 8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", _read(f, 8))[0]
            header = 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise ValueError("box overruns its container")
        yield kind, start + header, start + size
        f.seek(start + size)


def _mp4_duration(f: _Counted, work: Work) -> float:
    for kind, start, end in _boxes(f, _size(f), work):
        if kind != b"moov":
            continue
        f.seek(start)
        for inner, istart, _iend in _boxes(f, end, work):
            if inner == b"mvhd":
                f.seek(istart)
                version = _read(f, 4)[0]
                if version == 1:
                    _c, _m, scale, length = struct.unpack(">QQIQ", _read(f, 28))
                else:
                    _c, _m, scale, length = struct.unpack(">IIII", _read(f, 16))
                if not scale:
                    raise ValueError("mvhd has no timescale")
                return round(float(length) / float(scale), 3)
    raise HubbubError(Code.BAD_MEDIA, "no movie header (moov/mvhd): a truncated or unfinished file")


def _vint(f: _Counted, strip_marker: bool) -> int:
    first = f.read(1)
    if not first:
        raise EOFError("EBML ends early")
    b = first[0]
    length = 1
    while length <= 8 and not b & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML number")
    value = b & (0xFF >> length) if strip_marker else b
    for byte in _read(f, length - 1):
        value = (value << 8) | byte
    return value


#: EBML sizes that mean "unknown" (a live recording's Segment and Clusters).
_UNKNOWN = frozenset((1 << (7 * n)) - 1 for n in range(1, 9))


def _ebml_duration(f: _Counted, work: Work) -> float | None:
    total = _size(f)
    if _vint(f, False) != 0x1A45DFA3:
        raise ValueError("not EBML")
    f.seek(_vint(f, True), 1)
    if _vint(f, False) != 0x18538067:  # Segment
        raise ValueError("no Segment")
    _vint(f, True)
    while f.tell() < total:
        work.element()
        ident, size = _vint(f, False), _vint(f, True)
        if ident == 0x1549A966:  # Info
            end = min(f.tell() + size, total)
            scale, seconds = 1_000_000, None
            while f.tell() < end:
                work.element()
                child, csize = _vint(f, False), _vint(f, True)
                if child in (0x2AD7B1, 0x4489) and csize <= 8:  # TimestampScale, Duration
                    data = _read(f, csize)
                    if child == 0x2AD7B1:
                        scale = int.from_bytes(data, "big")
                    elif csize in (4, 8):
                        seconds = struct.unpack(">f" if csize == 4 else ">d", data)[0]
                else:
                    f.seek(csize, 1)
            if seconds is None:
                return None
            return round(float(seconds) * scale / 1e9, 3)
        if ident == 0x1F43B675 or size in _UNKNOWN:  # a Cluster before Info: no duration in the header
            return None
        f.seek(size, 1)
    return None


def _wav_duration(f: _Counted, work: Work) -> float:
    header = _read(f, 12)
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise ValueError("not a WAVE file")
    byte_rate = 0
    total = _size(f)
    while f.tell() + 8 <= total:
        work.element()
        kind, size = struct.unpack("<4sI", _read(f, 8))
        if kind == b"fmt " and size >= 16:
            _tag, _channels, _rate, byte_rate = struct.unpack("<HHII", _read(f, 12))
            f.seek(size - 12 + (size & 1), 1)
        elif kind == b"data":
            if not byte_rate:
                raise ValueError("the data chunk comes before the format")
            return round(float(min(size, total - f.tell())) / float(byte_rate), 3)
        else:
            f.seek(size + (size & 1), 1)
    raise ValueError("no data chunk")


#: How far from its end an Ogg file's last page of the first stream is looked for (a page is at most ~64 KiB).
_OGG_TAIL = 128 * 1024


def _ogg_duration(f: _Counted) -> float | None:
    """From the first stream's identification header (Opus: 48 kHz less the pre-skip; Vorbis: its rate) and
    the granule position of its last page, found in the file's last 128 KiB: two reads, whatever the file
    holds (tags are never parsed). None when the stream's last page is not there (a multiplexed file)."""
    first = _read(f, 27)
    if first[:4] != b"OggS":
        raise ValueError("not an Ogg page")
    serial = first[14:18]
    f.seek(27 + first[26])  # past the segment table: the first packet starts here
    packet = f.read(64)
    if packet.startswith(b"OpusHead") and len(packet) >= 12:
        rate, skip = 48_000, int.from_bytes(packet[10:12], "little")
    elif packet.startswith(b"\x01vorbis") and len(packet) >= 16:
        rate, skip = int.from_bytes(packet[12:16], "little"), 0
    else:
        raise HubbubError(Code.BAD_MEDIA, "an Ogg file that is neither Opus nor Vorbis")
    total = _size(f)
    f.seek(max(0, total - _OGG_TAIL))
    tail = f.read(_OGG_TAIL)
    at = len(tail)
    while (at := tail.rfind(b"OggS", 0, at)) >= 0:
        if tail[at + 14 : at + 18] == serial:
            granule = int.from_bytes(tail[at + 6 : at + 14], "little", signed=True)
            if granule > skip and rate > 0:
                return round((granule - skip) / rate, 3)
    return None


def _flac_duration(f: _Counted) -> float:
    """From STREAMINFO, which the format puts first: sample rate (20 bits) and total samples (36 bits)."""
    header = _read(f, 8 + 34)
    if header[:4] != b"fLaC" or header[4] & 0x7F != 0:
        raise ValueError("no FLAC STREAMINFO")
    info = int.from_bytes(header[18:26], "big")
    rate, samples = info >> 44, info & ((1 << 36) - 1)
    if not rate or not samples:
        raise ValueError("STREAMINFO has no rate or length")
    return round(samples / rate, 3)
