"""The gateway's check of an uploaded file (classifier_common.images.inspect), on the real gallery
photos and on damaged copies of them; and the gallery's listing, which leaves out the files that
fail that check."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from classifier_common.errors import ImageRejected, NotAnImage, UnknownImage
from classifier_common.images import Gallery, inspect
from devstack.paths import REPO
from tests.utils.corrupt_images import bad_strip_offset_images, undecodable_gallery_files, unlisted_gallery_files

GALLERY = REPO / "gallery"
PHOTOS = sorted(p for p in GALLERY.iterdir() if p.suffix == ".JPEG")
GOLDFINCH = GALLERY / "n01531178_goldfinch.JPEG"


def _encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def test_every_gallery_photo_passes() -> None:
    assert len(PHOTOS) == 41
    for path in PHOTOS:
        with Image.open(path) as img:
            assert inspect(path.read_bytes()) == ("JPEG", img.width, img.height), path.name


@pytest.mark.parametrize("keep", [0.05, 0.25, 0.5, 0.75, 0.95, 0.999])
def test_a_cut_off_jpeg_is_rejected(keep: float) -> None:
    data = GOLDFINCH.read_bytes()
    with pytest.raises(ImageRejected, match="truncated"):
        inspect(data[: int(len(data) * keep)])


def test_a_jpeg_cut_inside_its_headers_is_rejected() -> None:
    data = GOLDFINCH.read_bytes()
    with pytest.raises(ImageRejected):
        inspect(data[: data.find(b"\xff\xda") + 1])


def test_a_jpeg_cut_before_its_last_byte_is_rejected() -> None:
    data = GOLDFINCH.read_bytes()
    assert data.endswith(b"\xff\xd9")
    with pytest.raises(ImageRejected, match="truncated"):
        inspect(data[:-1])


def test_bytes_after_the_end_marker_are_accepted() -> None:
    """Some cameras and editors append data after the image; decoders ignore it."""
    data = GOLDFINCH.read_bytes() + b"\x00trailer written by a phone\x00" * 10
    assert inspect(data)[0] == "JPEG"


def test_an_end_marker_inside_a_header_segment_does_not_hide_a_cut() -> None:
    """An EXIF thumbnail is a whole JPEG inside an APP1 segment, end marker included: the check
    steps over header segments, so a cut main image is still caught."""
    data = GOLDFINCH.read_bytes()
    thumbnail = _encode(Image.new("RGB", (16, 16), (200, 30, 30)), "JPEG")
    payload = b"Exif\x00\x00" + thumbnail
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    with_thumbnail = data[:2] + app1 + data[2:]
    assert inspect(with_thumbnail)[0] == "JPEG"
    with pytest.raises(ImageRejected, match="truncated"):
        inspect(with_thumbnail[: len(with_thumbnail) // 2])


def test_progressive_jpeg_whole_and_cut() -> None:
    with Image.open(GOLDFINCH) as img:
        data = _encode(img, "JPEG", progressive=True, quality=90)
    assert inspect(data)[0] == "JPEG"
    for keep in (0.3, 0.6, 0.9):
        with pytest.raises(ImageRejected):
            inspect(data[: int(len(data) * keep)])


def test_png_whole_and_cut() -> None:
    with Image.open(GOLDFINCH) as img:
        size, data = img.size, _encode(img, "PNG")
    assert inspect(data) == ("PNG", *size)
    with pytest.raises(ImageRejected):
        inspect(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"\xff\xd8\xff"])
def test_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        inspect(data)


@pytest.mark.parametrize("name", sorted(bad_strip_offset_images()))
def test_whatever_the_decoder_raises_is_a_rejection(name: str) -> None:
    """Pillow seeks to a TIFF's strip offsets as stored: stored as a fraction or a float, its
    decode raises TypeError, which must be this upload's 422, not the request's 500."""
    with pytest.raises(ImageRejected, match="TypeError"):
        inspect(bad_strip_offset_images()[name])


def test_too_many_pixels_is_rejected() -> None:
    data = _encode(Image.new("RGB", (300, 200)), "JPEG")
    with pytest.raises(ImageRejected, match="pixels"):
        inspect(data, max_pixels=300 * 200 - 1)


_CHECK_ON_16_THREADS = """
import io, sys
from concurrent.futures import ThreadPoolExecutor
from PIL import Image
from classifier_common.images import CHECK_DECODE_MAX_PIXELS, inspect

side = int(CHECK_DECODE_MAX_PIXELS**0.5)
out = io.BytesIO()
Image.new("RGBA", (side, side)).save(out, "WEBP", lossless=True)
data = out.getvalue()

def rss_mib():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

before = rss_mib()
with ThreadPoolExecutor(16) as pool:
    assert set(pool.map(lambda _: inspect(data)[0], range(64))) == {"WEBP"}
    print(rss_mib() - before)
"""


def test_memory_of_checks_on_many_threads_is_given_back() -> None:
    """Checks decoded (small images, two at a time) on a thread pool's many threads: what each
    decode used is returned, not kept by each thread's allocator arena (16 threads had kept
    +570 MiB of 4 Mpx WebPs)."""
    out = subprocess.run([sys.executable, "-c", _CHECK_ON_16_THREADS], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 100, f"{float(out.stdout):.0f} MiB kept after the checks"


def _gallery_with(directory: Path, files: dict[str, bytes]) -> list[str]:
    """Two real photos and ``files`` in ``directory``; returns the photos' names."""
    directory.mkdir()
    photos = [GOLDFINCH.name, PHOTOS[0].name]
    for name in photos:
        shutil.copy(GALLERY / name, directory / name)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return sorted(photos)


def _left_out_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "classifier_common.images" and r.levelno == logging.WARNING
    ]


def test_a_bad_gallery_file_is_left_out_and_warned_about_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever Pillow raises on a file (ValueError, DecompressionBombError; or nothing until
    the file is checked), the listing holds the good photos and names each bad file once."""
    bad = unlisted_gallery_files()
    photos = _gallery_with(tmp_path / "gallery", bad)
    caplog.set_level(logging.WARNING, "classifier_common.images")
    gallery = Gallery(tmp_path / "gallery")
    assert [info.name for info in gallery.list()] == photos
    assert gallery.info(GOLDFINCH.name).format == "JPEG"
    assert gallery.read(GOLDFINCH.name) == GOLDFINCH.read_bytes()
    for name in bad:
        with pytest.raises(UnknownImage):
            gallery.info(name)
    warnings = _left_out_warnings(caplog)
    assert len(warnings) == len(bad), warnings
    for name in bad:
        (warning,) = [w for w in warnings if w.startswith(f"gallery file {name} left out: ")]
        assert len(warning) > len(f"gallery file {name} left out: "), warning  # and why
    assert any("Truncated IHDR chunk" in w for w in warnings) and any("too many pixels" in w for w in warnings)
    # Another listing of the same folder in this process (the worker makes more than one) warns no more.
    assert [info.name for info in Gallery(tmp_path / "gallery").list()] == photos
    assert len(_left_out_warnings(caplog)) == len(bad)


def test_the_gallery_lists_what_passes_the_upload_check(tmp_path: Path) -> None:
    """Damage found only by decoding is the worker's to find, as for an upload."""
    photos = _gallery_with(tmp_path / "gallery", undecodable_gallery_files())
    listed = [info.name for info in Gallery(tmp_path / "gallery").list()]
    assert listed == sorted([*photos, *undecodable_gallery_files()])


def _age(directory: Path, seconds_ago: int) -> None:
    """Set the directory's mtime in the past: a change the listing may trust as final."""
    when = time.time() - seconds_ago
    os.utime(directory, (when, when))


def test_the_gallery_follows_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "gallery"
    directory.mkdir()
    shutil.copy(GOLDFINCH, directory / GOLDFINCH.name)
    _age(directory, 100)
    gallery = Gallery(directory)
    scans = []
    scan = gallery._scan
    monkeypatch.setattr(gallery, "_scan", lambda: scans.append(1) or scan())
    assert [info.name for info in gallery.list()] == [GOLDFINCH.name]
    for _ in range(5):  # nothing changed: one stat a look, no scan
        gallery.list()
        gallery.sha256(GOLDFINCH.name)
    assert len(scans) == 1

    # Added: listed at the next look, and classifiable by name.
    other = PHOTOS[0]
    shutil.copy(other, directory / "added.JPEG")
    _age(directory, 90)
    assert [info.name for info in gallery.list()] == ["added.JPEG", GOLDFINCH.name]
    assert gallery.sha256("added.JPEG") == hashlib.sha256(other.read_bytes()).hexdigest()

    # Replaced by a rename over it: the new bytes' digest, not the remembered one.
    (directory / "incoming.tmp").write_bytes(GOLDFINCH.read_bytes())
    os.replace(directory / "incoming.tmp", directory / "added.JPEG")
    _age(directory, 80)
    assert gallery.sha256("added.JPEG") == hashlib.sha256(GOLDFINCH.read_bytes()).hexdigest()

    # Removed: no longer there to submit.
    (directory / GOLDFINCH.name).unlink()
    _age(directory, 70)
    with pytest.raises(UnknownImage):
        gallery.info(GOLDFINCH.name)
    assert [info.name for info in gallery.list()] == ["added.JPEG"]
    assert len(scans) == 4


def test_a_gallery_changed_within_a_clock_tick_of_its_listing_is_listed_again(tmp_path: Path) -> None:
    """A file system that keeps mtimes to the second would not move the directory's mtime for a
    second change within that second: a listing that recent is made again at the next look."""
    directory = tmp_path / "gallery"
    directory.mkdir()
    shutil.copy(GOLDFINCH, directory / GOLDFINCH.name)
    stamp = time.time() - 0.5
    os.utime(directory, (stamp, stamp))
    gallery = Gallery(directory)
    assert [info.name for info in gallery.list()] == [GOLDFINCH.name]
    shutil.copy(PHOTOS[0], directory / "added.JPEG")
    os.utime(directory, (stamp, stamp))  # the same tick: the mtime did not move
    assert [info.name for info in gallery.list()] == ["added.JPEG", GOLDFINCH.name]
