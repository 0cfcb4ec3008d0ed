"""The benchmark's input: the gallery photos, made byte-unique per submission.

A result-cache hit is not inference throughput, so every job of the load scenarios sends bytes
no earlier job sent. Rather than re-encode (client CPU, and a different picture), a JPEG comment
segment carrying the submission number is inserted right after the start-of-image marker:
decoders skip it, so every job decodes to exactly the gallery photo, but its sha256 is new.
"""

from __future__ import annotations

import struct
from pathlib import Path

from classifier_common.images import GALLERY_SUFFIXES

SOI = b"\xff\xd8"
COM = b"\xff\xfe"


def load_gallery(directory: Path, limit: int | None = None) -> list[tuple[str, bytes]]:
    """(file name, bytes) of the gallery's photos in name order; the first ``limit`` of them."""
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in GALLERY_SUFFIXES and p.is_file())
    if not paths:
        raise SystemExit(f"no gallery images in {directory}: run `make setup`")
    return [(p.name, p.read_bytes()) for p in paths[:limit]]


def unique_jpeg(data: bytes, n: int, tag: bytes = b"") -> bytes:
    """The same JPEG with a comment segment ``bench <tag> <n>``: a new sha256, the same pixels."""
    if not data.startswith(SOI):
        raise ValueError("not a JPEG")
    text = b"bench " + tag + b" " + str(n).encode()
    return SOI + COM + struct.pack(">H", len(text) + 2) + text + data[2:]
