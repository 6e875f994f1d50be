"""Media benchmark: upload and download throughput (MB/s) and thumbnail time per image.

Runs ``hubbub serve`` as a real process (pinned to core 0 where there is one; this client on core 1) on the
local blob store, or with ``--s3`` on a throwaway SeaweedFS (tests/s3server.py). Phases:

  upload    N distinct files of S MiB (kind=file) over HTTP, C at a time: MB/s of request bodies
  download  the same files back, C at a time: MB/s of response bodies
  images    12-megapixel JPEGs from a phone (EXIF orientation 6 and GPS: stripped, then decoded, rotated and
            re-encoded) and from a scanner (no EXIF: stripped losslessly, decoded at reduced scale for the
            thumbnail): time per image end to end over HTTP, and the strip + orient + thumbnail time measured
            in-process with the server's own function

    .venv/bin/python bench/media.py            # about 30 s
    .venv/bin/python bench/media.py --quick    # a few seconds
    .venv/bin/python bench/media.py --s3       # blobs in SeaweedFS's S3 instead of a directory
Figures and machine: docs/media.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from PIL import Image  # noqa: E402

from _procs import FAST_ENV, ServerProcess, free_port, hubbub_argv, pin_self  # noqa: E402
from hubbub.services.media_probe import ImageLimits, process_image  # noqa: E402

MiB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def photo(width: int, height: int, exif: bool, seed: int) -> bytes:
    """A photo-like JPEG (smooth gradients plus noise), optionally with a phone's EXIF."""
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40 + seed % 7)
    image = Image.merge("RGB", (gradient, noise, gradient.rotate(90, expand=False)))
    out = io.BytesIO()
    params: dict[str, Any] = {"quality": 88}
    if exif:
        tags = Image.Exif()
        tags[0x0112] = 6
        tags[0x010F] = "BenchPhone"
        gps = tags.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
        params["exif"] = tags
    image.save(out, "JPEG", **params)
    return out.getvalue()


async def run(args: argparse.Namespace, base: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(
            f"{base}/api/v1/auth/register", json={"username": "bench", "password": "bench-password-1"}
        ) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        payload = os.urandom(args.size * MiB)
        files = [i.to_bytes(8, "big") + payload[8:] for i in range(args.files)]  # distinct: no dedup shortcut
        sem = asyncio.Semaphore(args.concurrency)

        async def put(data: bytes, kind: str = "file") -> dict[str, Any]:
            async with (
                sem,
                http.post(f"{base}/api/v1/uploads", params={"kind": kind}, data=data, headers=headers) as r,
            ):
                body = await r.json()
                assert r.status == 201, body
                return dict(body)

        async def get(upload_id: str) -> int:
            n = 0
            async with sem, http.get(f"{base}/api/v1/uploads/{upload_id}", headers=headers) as r:
                assert r.status == 200
                async for chunk in r.content.iter_chunked(256 * 1024):
                    n += len(chunk)
            return n

        log(f"upload: {args.files} x {args.size} MiB, {args.concurrency} at a time")
        start = time.perf_counter()
        uploads = await asyncio.gather(*(put(f) for f in files))
        elapsed = time.perf_counter() - start
        total = args.files * args.size * MiB
        results["upload_MBps"] = round(total / elapsed / 1e6, 1)
        log(f"download: the same, {args.concurrency} at a time")
        start = time.perf_counter()
        got = sum(await asyncio.gather(*(get(u["upload"]) for u in uploads)))
        elapsed = time.perf_counter() - start
        assert got == total
        results["download_MBps"] = round(total / elapsed / 1e6, 1)

        for label, exif in (("phone", True), ("scan", False)):
            images = [photo(4000, 3000, exif, i) for i in range(args.images)]
            sizes = [len(i) for i in images]
            log(
                f"images ({label}): {args.images} x 4000x3000 JPEG, ~{statistics.mean(sizes) / MiB:.1f} MiB each"
            )
            per_image = []
            for data in images:
                t0 = time.perf_counter()
                up = await put(data, "image")
                per_image.append(time.perf_counter() - t0)
                assert up["thumb"]["width"] <= 256 and up["thumb"]["height"] <= 256
            tmp = Path(tempfile.mkdtemp(prefix="hubbub-bench-img-"))
            local = []
            try:
                for i, data in enumerate(images):
                    src = tmp / f"{i}.jpg"
                    src.write_bytes(data)
                    t0 = time.perf_counter()
                    process_image(src, tmp / f"{i}.clean", ImageLimits(50_000_000, 64.0, 256))
                    local.append(time.perf_counter() - t0)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            results[f"image_{label}_http_ms"] = round(statistics.median(per_image) * 1000, 1)
            results[f"image_{label}_process_ms"] = round(statistics.median(local) * 1000, 1)
            results[f"image_{label}_MiB"] = round(statistics.mean(sizes) / MiB, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="MiB per file")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="4 files of 8 MiB, 2 images")
    parser.add_argument("--s3", action="store_true", help="store blobs in a throwaway SeaweedFS")
    args = parser.parse_args()
    if args.quick:
        args.files, args.size, args.images = 4, 8, 2
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="hubbub-bench-media-"))
    env = dict(FAST_ENV, HUBBUB_UPLOAD_QUOTA_BYTES=str(1 << 40))
    seaweed = None
    if args.s3:
        from tests import s3server

        seaweed = s3server.SeaweedServer().start()
        time.sleep(2)  # the filer behind the S3 port settles
        env.update(
            HUBBUB_S3_ENDPOINT=seaweed.endpoint,
            HUBBUB_S3_BUCKET="bench",
            HUBBUB_S3_ACCESS_KEY=s3server.ACCESS_KEY,
            HUBBUB_S3_SECRET_KEY=s3server.SECRET_KEY,
        )
    server = ServerProcess("hubbub", hubbub_argv(port, data_dir), port, 0, data_dir / "server.log", env)
    try:
        server.wait_ready()
        pin_self(1)
        results = asyncio.run(run(args, f"http://127.0.0.1:{port}"))
    finally:
        server.stop()
        if seaweed is not None:
            seaweed.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    results["backend"] = "s3 (SeaweedFS, same machine)" if args.s3 else "local directory"
    results["params"] = {k: getattr(args, k) for k in ("files", "size", "concurrency", "images")}
    results["machine"] = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
