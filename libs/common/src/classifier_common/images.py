"""Images: the gallery on disk and the checks an uploaded file must pass before it is queued."""

from __future__ import annotations

import ctypes
import hashlib
import io
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from classifier_common.errors import ImageRejected, NotAnImage, UnknownImage

log = logging.getLogger(__name__)

# Formats a worker can decode and the gateway accepts.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"})
# Their media types, as a browser or a client names a chosen file (published in /v1/info).
ACCEPTED_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"})
GALLERY_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".webp", ".gif", ".bmp"})
# Decompression-bomb limit: more pixels than this is refused (Pillow's own default is 89.5 M).
MAX_PIXELS = 40_000_000
# Decoding an upload to check it costs up to ~15 bytes a pixel (a lossless WebP: libwebp's buffer,
# then Pillow's copy), ~600 MB at MAX_PIXELS, from a file of 1.5 KB. So the gateway decodes only
# images up to CHECK_DECODE_MAX_PIXELS, DECODE_SLOTS at a time (bench/decode_bombs.py);
# a larger one passes on its header checks, and damage in its data fails its job at the worker
# (invalid_image), as damage inside a JPEG's data always has. The worker decodes DECODE_SLOTS
# at a time too.
CHECK_DECODE_MAX_PIXELS = 4_000_000
# A gallery listing made within this long of its directory's last change is made again at the next
# look: file systems keep mtimes to a tick (a second on some), and a change in the same tick would
# not move it.
MTIME_TRUSTED_AFTER_NS = 2_000_000_000
DECODE_SLOTS = 2
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
# A PNG's compressed text chunks are inflated when it is opened, up to 64 MiB by Pillow's default
# from a few KB of chunks; real metadata (XMP, captions) is far smaller.
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 1024 * 1024


def _return_image_memory_to_the_system() -> None:
    """glibc serves an allocation under its mmap threshold from the calling thread's arena, which
    keeps what is freed; and each large free raises that threshold (up to 32 MiB), so Pillow's
    16 MiB image blocks end up in arenas. Decodes spread over a thread pool then leave every
    thread's arena holding an image's worth: 16 threads checking 4 Mpx WebPs two at a time
    kept +570 MiB. A fixed threshold keeps image memory in mmap, returned when freed."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to change
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1024 * 1024)


_return_image_memory_to_the_system()


@dataclass(frozen=True)
class ImageInfo:
    name: str
    bytes: int
    width: int
    height: int
    format: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _jpeg_has_end(data: bytes) -> bool:
    """Whether a JPEG's compressed data runs to its end-of-image marker (FF D9), i.e. the file was
    not cut off. The header segments are stepped over by their lengths (an EXIF thumbnail inside
    one has end markers of its own), up to the first start-of-scan (FF DA); after it, a 0xFF byte
    in the compressed data is always followed by 00 or a restart marker, so FF D9 is the end.

    This replaces decoding the file at the gateway: the decode cost 1.2 ms per upload, a third
    of the gateway's CPU per job (docs/performance.md). Damage inside the compressed data is not
    seen here; the worker's decode finds it and the job fails with ``invalid_image``."""
    at = 2  # after SOI (FF D8), which Pillow has already checked
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0xDA:
            # From the end: the marker is (nearly) the file's last two bytes, so this looks at a
            # few bytes where a forward search would read the whole compressed data.
            return data.rfind(b"\xff\xd9", at + 2) != -1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return False


def inspect(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[str, int, int]:
    """Check that ``data`` is a whole image we can classify; return (format, width, height).
    Memory is bounded whatever the bytes declare: the size comes from the header, a JPEG is
    checked for its end marker and a PNG chunk by chunk (CRCs through IEND), neither decoded;
    other formats are decoded only when small (CHECK_DECODE_MAX_PIXELS), a few at a time.

    Raises NotAnImage (415) when the bytes are no image format we know, ImageRejected (422)
    when they are one but cannot be used (truncated, too many pixels, or anything else the
    decoder meets: Pillow's plugins raise TypeError, struct.error, IndexError... on malformed
    tags, e.g. a TIFF whose strip offsets are stored as fractions). Nothing else escapes, so one
    bad upload never fails a request, or a batch, as a whole.
    """
    if not data:
        raise NotAnImage("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or "unknown"
                width, height = img.size
                if fmt not in ACCEPTED_FORMATS:
                    raise NotAnImage(f"{fmt} images are not accepted", {"accepted": sorted(ACCEPTED_FORMATS)})
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"image is {width}x{height}, more than {max_pixels} pixels",
                        {"max_pixels": max_pixels},
                    )
                if fmt == "JPEG":
                    # Reading the headers has checked them; a cut-off file lacks its end marker.
                    if not _jpeg_has_end(data):
                        raise ImageRejected("the image could not be decoded: the JPEG data is truncated")
                elif fmt == "PNG":
                    img.verify()  # reads each chunk and checks its CRC; a cut-off file lacks IEND
                elif width * height <= CHECK_DECODE_MAX_PIXELS:
                    # The decoders' checks catch truncated or corrupt data.
                    with _decode_slots:
                        img.load()
    except (NotAnImage, ImageRejected):
        raise
    except UnidentifiedImageError:
        raise NotAnImage(
            "the file is not an image in a format we know", {"accepted": sorted(ACCEPTED_FORMATS)}
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image has too many pixels: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"the image could not be decoded: {exc}") from None
    except Exception as exc:  # whatever else the decoder met in these bytes is this image's fault
        raise ImageRejected(f"the image could not be decoded: {type(exc).__name__}: {exc}") from None
    return fmt, width, height


class Gallery:
    """The pre-seeded images. A name is only ever looked up in the directory listing, so no
    name a client sends can reach a file outside the gallery.

    The listing holds the files that pass the check an upload passes (:func:`inspect`). Any other
    file is left out and logged once, as a warning naming it and why: one bad file never fails
    the listing or another photo, whatever Pillow raises on it. As for an upload, damage inside a
    photo's compressed data is found only when a worker decodes it.

    The listing follows the directory: a photo added, removed or renamed (or replaced by a rename
    over it, as ``cp`` to a temporary name and ``mv`` do) is seen at the next look, which costs one
    ``stat`` of the directory while nothing changed. A file rewritten in place keeps its old entry
    and digest until the directory next changes."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._index: dict[str, ImageInfo] | None = None
        self._digests: dict[str, str] = {}
        self._scanning = threading.Lock()
        self._scanned: int | None = None  # the directory's mtime (ns) the listing was made from

    def _scan(self) -> dict[str, ImageInfo]:
        index: dict[str, ImageInfo] = {}
        if not self.directory.is_dir():
            return index
        for path in sorted(self.directory.iterdir()):
            if path.suffix.lower() not in GALLERY_SUFFIXES or not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
                fmt, width, height = inspect(data)
            except (NotAnImage, ImageRejected) as exc:
                _left_out(path, exc.message)
                continue
            except OSError as exc:
                _left_out(path, f"{type(exc).__name__}: {exc}")
                continue
            index[path.name] = ImageInfo(path.name, len(data), width, height, fmt)
        return index

    def _listing(self) -> dict[str, ImageInfo]:
        with self._scanning:  # concurrent requests scan (and warn) once
            mtime = self._mtime()
            if self._index is None or mtime is None or mtime != self._scanned:
                self._index = self._scan()
                self._digests = {}
                # A change within the same tick of the clock as this scan would leave the mtime
                # as it is: trust a listing only once its mtime is older than that.
                recent = mtime is not None and time.time_ns() - mtime < MTIME_TRUSTED_AFTER_NS
                self._scanned = None if recent else mtime
            return self._index

    def _mtime(self) -> int | None:
        """The directory's mtime in ns; None when it cannot be read (look again every time)."""
        try:
            return self.directory.stat().st_mtime_ns
        except OSError:
            return None

    def list(self) -> list[ImageInfo]:
        return list(self._listing().values())

    def info(self, name: str) -> ImageInfo:
        try:
            return self._listing()[name]
        except KeyError:
            raise UnknownImage(f"no gallery image named {name!r}", {"see": "/v1/images"}) from None

    def path(self, name: str) -> Path:
        return self.directory / self.info(name).name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def sha256(self, name: str) -> str:
        """The image's digest (the result-cache key), computed once per name and listing."""
        path = self.path(name)  # looks at the directory: a new listing starts with no digests
        digests = self._digests
        digest = digests.get(name)
        if digest is None:
            digest = digests[name] = sha256(path.read_bytes())
        return digest


# (file, why) pairs already logged: a process scans its gallery with more than one Gallery (the
# worker's runtime check, its jobs), and each bad file is worth one warning.
_warned: set[tuple[Path, str]] = set()
_warned_lock = threading.Lock()


def _left_out(path: Path, why: str) -> None:
    with _warned_lock:
        if (path, why) in _warned:
            return
        _warned.add((path, why))
    log.warning("gallery file %s left out: %s", path.name, why, extra={"file": str(path)})
