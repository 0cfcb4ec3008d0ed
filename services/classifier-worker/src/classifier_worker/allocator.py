"""The C allocator of a process that classifies: keep freed memory for the next job, and give
it back once when a large part of it is no longer needed.

Each job allocates and frees the same few buffers (the decoded photo, the resized crop, the
float batch: about 0.2 to 2 MB each). With glibc's defaults they go back to the kernel when they
are freed (a block above the mmap threshold is unmapped; freed memory above the trim threshold
at the top of a heap is released; both start low), so the next job takes the same pages again
through page faults: about 700 minor faults and 0.7 ms of kernel CPU per job, 7 % of a job's
CPU (docs/performance.md).

:func:`keep_freed_memory` raises the two thresholds once, when the process starts:

- ``M_MMAP_THRESHOLD`` 16 MiB: below this, blocks come from the heaps (and are reused); a larger
  one (a photo decoded at full size, such as a 12-megapixel PNG) is its own mapping, returned
  to the kernel as soon as it is freed;
- ``M_TRIM_THRESHOLD`` 32 MiB: a heap keeps up to this much freed memory at its top.

So a worker holds at most 32 MiB more than it uses, per heap (one per consumer thread). glibc
only; elsewhere (musl, macOS) nothing is changed. glibc's own ``MALLOC_*_`` variables or a
``glibc.malloc`` tunable in ``GLIBC_TUNABLES`` win: with one of them set, nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import platform

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 16 << 20
TRIM_THRESHOLD_BYTES = 32 << 20

GLIBC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")

_done = False


def _set_by_environment() -> str | None:
    """The variable that already tells glibc's malloc what to do, if any."""
    for name in GLIBC_VARIABLES:
        if name in os.environ:
            return name
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    return None


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once). True if they were set."""
    global _done
    if _done:
        return True
    if platform.libc_ver()[0] != "glibc":
        return False
    overridden = _set_by_environment()
    if overridden:
        log.info("malloc thresholds left as %s sets them", overridden)
        return False
    libc = _libc()
    if libc is None:
        return False
    mmap_set = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if not (mmap_set and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        log.warning("mallopt refused the malloc thresholds; freed memory goes back to the kernel")
        return False
    _done = True
    log.info(
        "malloc keeps freed memory for the next job",
        extra={"mmap_threshold_mb": MMAP_THRESHOLD_BYTES >> 20, "trim_threshold_mb": TRIM_THRESHOLD_BYTES >> 20},
    )
    return True


def return_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim), so that
    memory released by Python objects (the torch modules ONNX Runtime made needless) shows in the
    process's RSS. A no-op without glibc."""
    gc.collect()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None  # musl has none
    if trim is not None:
        trim(0)
