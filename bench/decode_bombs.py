"""Decompression bombs: the gateway's and the worker's peak memory for the worst small files we
can craft, each declaring an image just under the pixel limit (or over it, refused from its
header).

    python -m bench.decode_bombs          # every input, 1 and 16 at once: bench/results/decode_bombs.*
    python -m bench.decode_bombs --smoke  # two inputs, 1 and 4 at once, nothing written

Gateway: a real gateway process (``python -m classifier_gateway`` on the local RabbitMQ, a queue
of its own, SQLite in a temporary directory), a fresh one for each input and concurrency, gets
the input as N uploads at once; its peak RSS is VmHWM from /proc afterwards. The run fails if a
peak passes the gateway pod's memory limit (helm/classifier/values.yaml).

Worker: a fresh process running the worker's decode (``classifier_worker.preprocess.decode``
with EfficientNet-Lite0's sizes) on N threads at once; its peak RSS is ru_maxrss. A worker
decodes one image at a time per consumer thread, so 1 is what a worker meets; 16 is shown to
compare with the gateway.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import httpx
import yaml
from PIL import Image

from classifier_common.images import CHECK_DECODE_MAX_PIXELS, MAX_PIXELS
from devstack.isolated import isolated_stack
from devstack.paths import REPO
from devstack.ports import free_port
from devstack.stack import Stack

RESULTS = REPO / "bench" / "results"
MODEL = "efficientnet_lite0"
SIDE = int(MAX_PIXELS**0.5) - 24  # 6300: the largest square under the limit
SMALL_SIDE = int(CHECK_DECODE_MAX_PIXELS**0.5)  # the largest the gateway still decodes to check


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_png(
    width: int, height: int, color_type: int, bit_depth: int, extra_chunks: bytes = b"", rows: int = 0
) -> bytes:
    """A PNG of zeros, compressed by hand (Pillow's encoder takes seconds at this size); with
    ``rows``, only that many rows of data (a header declaring more than it holds)."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    row = b"\0" * (1 + width * channels * bit_depth // 8)
    pixels = zlib.compressobj(9)
    idat = b"".join(pixels.compress(row) for _ in range(rows or height)) + pixels.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra_chunks + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _ztxt_chunks(count: int) -> bytes:
    """Compressed text chunks of 1 MiB each once inflated (Pillow's per-chunk maximum)."""
    text = zlib.compress(b"a" * (1024 * 1024 - 1), 9)
    data = b"bomb\0\0" + text
    return b"".join(
        struct.pack(">I", len(data)) + b"zTXt" + data + struct.pack(">I", zlib.crc32(b"zTXt" + data))
        for _ in range(count)
    )


def _bmp(width: int, height: int, bpp: int, compression: int, pixels: bytes) -> bytes:
    palette = b"\0" * 1024 if bpp == 8 else b""
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, compression, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


@cache
def bombs() -> dict[str, bytes]:
    """name -> bytes: small files that decode to hundreds of MB (or would, were they decoded)."""
    blank_rgba = Image.new("RGBA", (SIDE, SIDE))
    return {
        "webp-lossless-rgba": _save(blank_rgba, "WEBP", lossless=True),
        "webp-lossless-at-check-limit": _save(Image.new("RGBA", (SMALL_SIDE, SMALL_SIDE)), "WEBP", lossless=True),
        "png-rgba": zero_png(SIDE, SIDE, 6, 8),
        "png-16bit-grey": zero_png(SIDE, SIDE, 0, 16),
        "png-ztxt-64MiB": zero_png(64, 64, 2, 8, _ztxt_chunks(64)),
        "png-over-limit": zero_png(65_535, 65_535, 2, 8, rows=1),  # refused from its header
        "gif": _save(Image.new("P", (SIDE, SIDE)), "GIF"),
        "tiff-deflate-rgba": _save(blank_rgba, "TIFF", compression="tiff_adobe_deflate"),
        "bmp-rle8": _bmp(SIDE, SIDE, 8, 1, b"\0\0" * SIDE + b"\0\1"),
        "bmp-32bit-truncated": _bmp(SIDE, SIDE, 32, 0, b"\0" * (4 * 1024 * 1024)),
        # As large as an upload may be (CLASSIFIER_MAX_UPLOAD_BYTES, 10 MiB): the upload's own copies.
        "bmp-32bit-upload-limit": _bmp(SIDE, SIDE, 32, 0, b"\0" * (10 * 1024 * 1024 - 1024)),
        "jpeg-progressive": _save(Image.new("RGB", (SIDE, SIDE)), "JPEG", progressive=True, quality=10),
        "jpeg-baseline": _save(Image.new("RGB", (SIDE, SIDE)), "JPEG", quality=10),
    }


def gateway_limit_mib() -> float:
    values = yaml.safe_load((REPO / "helm" / "classifier" / "values.yaml").read_text())
    limit = str(values["gateway"]["resources"]["limits"]["memory"])
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if limit.endswith(suffix):
            return float(limit[: -len(suffix)]) * factor
    return float(limit) / 2**20


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def gateway_peak(stack: Stack, data: bytes, concurrency: int) -> dict[str, object]:
    """Start a fresh gateway, send ``data`` as ``concurrency`` uploads at once; its peak RSS."""
    stack.start_service("gateway")
    try:
        stack.wait_ready(timeout=60, names=["gateway"])
        pid = stack.procs["gateway"].pid
        idle = _vm_hwm_mib(pid)
        url = f"http://127.0.0.1:{stack.gateway_port}/v1/jobs"

        def upload(_: int) -> int:
            with httpx.Client(timeout=120) as client:
                files = {"file": ("bomb", data, "application/octet-stream")}
                return client.post(url, files=files, data={"model": MODEL}).status_code

        with ThreadPoolExecutor(concurrency) as pool:
            statuses = sorted(set(pool.map(upload, range(concurrency))))
        return {"idle_mib": round(idle, 1), "peak_mib": round(_vm_hwm_mib(pid), 1), "statuses": statuses}
    finally:
        stack.kill("gateway")


_WORKER_DECODE = """
import resource, sys
from concurrent.futures import ThreadPoolExecutor
from classifier_common.catalog import get_spec
from classifier_common.errors import ImageRejected
from classifier_worker.preprocess import decode
data, n = sys.stdin.buffer.read(), int(sys.argv[1])
spec = get_spec("efficientnet_lite0")
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def one(_):
    try:
        decode(data, spec)
        return "decoded"
    except ImageRejected:
        return "invalid_image"
with ThreadPoolExecutor(n) as pool:
    outcomes = sorted(set(pool.map(one, range(n))))
print(idle, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, ",".join(outcomes))
"""


def worker_peak(data: bytes, concurrency: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _WORKER_DECODE, str(concurrency)],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=600,
        check=True,
    )
    idle, peak, outcomes = out.stdout.decode().split()
    return {"idle_mib": round(float(idle), 1), "peak_mib": round(float(peak), 1), "outcomes": outcomes.split(",")}


def _machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} cores"


def run(names: list[str], concurrencies: list[int], port: int = 0) -> dict[str, object]:
    inputs = bombs()
    limit = gateway_limit_mib()
    rows = []
    with tempfile.TemporaryDirectory(prefix="decode-bombs-") as tmp:
        stack = isolated_stack(
            Path(tmp),
            workers=0,
            nginx=False,
            CLASSIFIER_MODELS_DIR=str(REPO / "data" / "models"),
            CLASSIFIER_GALLERY_DIR=str(REPO / "data" / "gallery"),
            CLASSIFIER_QUEUE_MAX_LENGTH="100000",
            CLASSIFIER_RESULT_CACHE="false",
        )
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        stack.gateway_port = port or free_port()
        try:
            for name in names:
                for n in concurrencies:
                    gateway = gateway_peak(stack, inputs[name], n)
                    worker = worker_peak(inputs[name], n)
                    rows.append(
                        {
                            "input": name,
                            "bytes": len(inputs[name]),
                            "concurrency": n,
                            "gateway": gateway,
                            "worker": worker,
                        }
                    )
                    print(
                        f"{name:30} {len(inputs[name]):>9,} B  x{n:<3} gateway {gateway['peak_mib']:7.1f} MiB "
                        f"{gateway['statuses']}  worker {worker['peak_mib']:7.1f} MiB {worker['outcomes']}",
                        flush=True,
                    )
        finally:
            stack.down()
            stack.delete_queues()
    worst = max(row["gateway"]["peak_mib"] for row in rows)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "machine": _machine(),
        "command": "python -m bench.decode_bombs",
        "gateway_limit_mib": limit,
        "gateway_worst_peak_mib": worst,
        "rows": rows,
    }


def markdown(result: dict[str, object]) -> str:
    lines = [
        f"Decompression bombs, {result['date']}, {result['machine']}: `{result['command']}`.",
        f"Gateway pod limit {result['gateway_limit_mib']:.0f} MiB; "
        f"worst gateway peak {result['gateway_worst_peak_mib']:.0f} MiB.",
        "",
        "| input | bytes | at once | gateway peak MiB (idle) | answers | worker peak MiB (idle) | decode |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for row in result["rows"]:  # type: ignore[attr-defined]
        g, w = row["gateway"], row["worker"]
        answers, outcomes = ", ".join(map(str, g["statuses"])), ", ".join(w["outcomes"])
        lines.append(
            f"| {row['input']} | {row['bytes']:,} | {row['concurrency']} | {g['peak_mib']:.0f} ({g['idle_mib']:.0f}) "
            f"| {answers} | {w['peak_mib']:.0f} ({w['idle_mib']:.0f}) | {outcomes} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="two inputs, 1 and 4 at once; writes nothing")
    parser.add_argument("--port", type=int, default=0, help="the gateway's port (default: a free one)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.smoke:
        result = run(["webp-lossless-rgba", "png-rgba"], [1, 4], args.port)
    else:
        result = run(list(bombs()), [1, 16], args.port)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "decode_bombs.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "decode_bombs.md").write_text(markdown(result))
    print(markdown(result))
    print(f"{time.monotonic() - started:.0f} s")
    if result["gateway_worst_peak_mib"] > result["gateway_limit_mib"]:
        print("a gateway peak passed the pod's memory limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
