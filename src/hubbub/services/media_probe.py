"""What an uploaded file is, decided from its bytes: sniffing, image decoding and thumbnails, durations.

Pure functions on local files (the upload spool), run in a worker thread by the media service; no network,
no external binaries. Docs: docs/media.md.

- Types come from magic bytes, never from the client's file name or Content-Type.
- Images are decoded with Pillow (JPEG, PNG, GIF, WebP; SVG is not an image here: it can carry script).
  Decompression bombs are refused from the header's dimensions, before any pixel is decoded.
- Durations: MP4/MOV from the ``mvhd`` box, WebM/Matroska from the EBML ``Info`` element, everything else
  (MP3, Ogg Opus/Vorbis, WAV, FLAC, AAC) through mutagen. Video posters need a video decoder (ffmpeg), so the
  server makes none: a client may upload a frame as an image and name it as the message's ``poster``.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import mutagen
from PIL import Image, ImageOps

from hubbub.core.errors import Code, HubbubError

#: Bytes of the file's start that sniffing looks at.
HEAD_BYTES = 64

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


# -- images ------------------------------------------------------------------------------------------
@dataclass
class ImageResult:
    #: The file to store as the original: the upload itself, or a re-encoded copy without metadata.
    path: Path
    mime: str
    width: int
    height: int
    thumb: bytes
    thumb_mime: str
    thumb_width: int
    thumb_height: int


def _metadata(im: Image.Image) -> bool:
    """Whether the image carries EXIF or XMP (camera, time and location data)."""
    return bool(im.getexif()) or any(k in im.info for k in ("exif", "xmp", "XML:com.adobe.xmp"))


def process_image(path: Path, out: Path, max_pixels: int, thumb_px: int) -> ImageResult:
    """Decode, orient, strip metadata and thumbnail an image. ``out`` receives a re-encoded original if one
    is needed. Raises BAD_MEDIA for what does not decode, TOO_LARGE for decompression bombs."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own guard (a warning above it, an error above twice it)
    try:
        with Image.open(path) as im:
            mime = IMAGE_TYPES.get(im.format or "")
            if mime is None:
                raise HubbubError(Code.UNSUPPORTED_MEDIA, f"{im.format} images are not accepted")
            width, height = im.size
            frames = int(getattr(im, "n_frames", 1))
            if width * height > max_pixels or width * height * frames > 4 * max_pixels:
                raise HubbubError(
                    Code.TOO_LARGE, f"image of {width}x{height}x{frames} is over {max_pixels} pixels"
                )
            strip = _metadata(im) and im.format != "GIF"
            if not strip and im.format == "JPEG":
                im.draft("RGB", (thumb_px * 2, thumb_px * 2))  # decode at 1/2..1/8 scale: much faster
            im.load()
            oriented = ImageOps.exif_transpose(im) if strip else im
            assert oriented is not None
            result_path = path
            if strip:
                result_path = out
                _save_clean(im, oriented, out, frames > 1)
                width, height = oriented.size
            mode = "RGBA" if _has_alpha(oriented) else "RGB"
            if oriented.mode not in ("RGB", "RGBA", "L"):
                oriented = oriented.convert(mode)  # palette and 16-bit images resample badly as they are
            oriented.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)  # in place: no longer needed
            thumb = oriented.convert(mode)
            buffer = io.BytesIO()
            thumb.save(buffer, "WEBP", quality=80, method=4)
            return ImageResult(
                result_path, mime, width, height, buffer.getvalue(), "image/webp", thumb.width, thumb.height
            )
    except HubbubError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise HubbubError(Code.TOO_LARGE, f"image is a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise HubbubError(Code.BAD_MEDIA, f"the image does not decode: {exc}") from exc


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def _save_clean(source: Image.Image, oriented: Image.Image, out: Path, animated: bool) -> None:
    """Re-encode without EXIF/XMP (so without GPS), keeping the colour profile."""
    fmt = source.format
    params: dict[str, Any] = {}
    if icc := source.info.get("icc_profile"):
        params["icc_profile"] = icc
    if fmt == "JPEG":
        image = oriented if oriented.mode in ("RGB", "L", "CMYK") else oriented.convert("RGB")
        image.save(out, "JPEG", quality=90, **params)
    elif fmt == "PNG":
        oriented.save(out, "PNG", **params)
    elif animated:
        source.save(out, "WEBP", save_all=True, quality=90, **params)
    else:
        oriented.save(out, "WEBP", quality=90, lossless=bool(source.info.get("lossless")), **params)


# -- durations ---------------------------------------------------------------------------------------
def duration(path: Path, mime: str) -> float | None:
    """Seconds of audio/video, or None where the container does not say (WebM written live by browsers).
    Raises BAD_MEDIA if the file is not a readable container of its type."""
    try:
        with path.open("rb") as f:
            if mime in ("video/mp4", "video/quicktime", "video/3gpp", "audio/mp4"):
                return _mp4_duration(f)
            if mime in ("video/webm", "video/x-matroska", "audio/webm"):
                return _ebml_duration(f)
        audio = mutagen.File(path)  # type: ignore[attr-defined]
    except HubbubError:
        raise
    except (mutagen.MutagenError, OSError, ValueError, struct.error, EOFError) as exc:
        raise HubbubError(Code.BAD_MEDIA, f"not a readable {mime} file: {exc}") from exc
    if audio is None or audio.info is None or not audio.info.length or audio.info.length <= 0:
        raise HubbubError(Code.BAD_MEDIA, f"not a readable {mime} file")
    return round(float(audio.info.length), 3)


def _boxes(f: BinaryIO, end: int) -> Any:
    """ISO-BMFF boxes (type, payload start, payload end) between the current position and ``end``."""
    while f.tell() + 8 <= end:
        start = f.tell()
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise ValueError("box overruns its container")
        yield kind, start + header, start + size
        f.seek(start + size)


def _mp4_duration(f: BinaryIO) -> float:
    f.seek(0, 2)
    total = f.tell()
    f.seek(0)
    for kind, start, end in _boxes(f, total):
        if kind != b"moov":
            continue
        f.seek(start)
        for inner, istart, _iend in _boxes(f, end):
            if inner == b"mvhd":
                f.seek(istart)
                version = f.read(1)[0]
                f.read(3)
                if version == 1:
                    _c, _m, scale, length = struct.unpack(">QQIQ", f.read(28))
                else:
                    _c, _m, scale, length = struct.unpack(">IIII", f.read(16))
                if not scale:
                    raise ValueError("mvhd has no timescale")
                return round(float(length) / float(scale), 3)
    raise HubbubError(Code.BAD_MEDIA, "no movie header (moov/mvhd): a truncated or unfinished file")


def _vint(f: BinaryIO, strip_marker: bool) -> tuple[int, int]:
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
    for byte in f.read(length - 1):
        value = (value << 8) | byte
    return value, length


def _ebml_duration(f: BinaryIO) -> float | None:
    f.seek(0, 2)
    total = f.tell()
    f.seek(0)
    unknown = {(1 << (7 * n)) - 1 for n in range(1, 9)}
    ident, _ = _vint(f, False)
    if ident != 0x1A45DFA3:
        raise ValueError("not EBML")
    size, _ = _vint(f, True)
    f.seek(size, 1)
    ident, _ = _vint(f, False)
    if ident != 0x18538067:  # Segment
        raise ValueError("no Segment")
    _vint(f, True)
    while f.tell() < total:
        ident, _ = _vint(f, False)
        size, _ = _vint(f, True)
        if ident == 0x1549A966:  # Info
            end = f.tell() + size
            scale, seconds = 1_000_000, None
            while f.tell() < end:
                child, _ = _vint(f, False)
                csize, _ = _vint(f, True)
                data = f.read(csize)
                if child == 0x2AD7B1:
                    scale = int.from_bytes(data, "big")
                elif child == 0x4489:
                    seconds = struct.unpack(">f" if csize == 4 else ">d", data)[0]
            if seconds is None:
                return None
            return round(float(seconds) * scale / 1e9, 3)
        if ident == 0x1F43B675 or size in unknown:  # a Cluster before Info: no duration in the header
            return None
        f.seek(size, 1)
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()
