"""Random ids (job ids, request ids, batch ids) without a system call each.

``uuid.uuid4()`` reads its 16 bytes with ``os.urandom``, a ``getrandom()`` call during which
CPython lets go of the GIL. On the gateway's event loop that handed the GIL to whichever thread
was waiting for it, and the loop then waited to get it back, twice per submission (its request
id and its job id): py-spy found the event loop in ``uuid4`` in about a tenth of its samples at
16 clients (docs/performance.md). Here the bytes still come from ``os.urandom``, so the ids are
as unguessable as before, but 4 KiB at a time: one call in 256 ids reaches the kernel. A forked
child drops what its parent had read, so two processes never hand out the same ids.
"""

from __future__ import annotations

import os
import threading
import uuid

_ID_BYTES = 16
_READ_BYTES = 256 * _ID_BYTES

_lock = threading.Lock()
_buffer = b""
_taken = 0


def _forget() -> None:
    global _buffer, _taken
    _buffer, _taken = b"", 0


os.register_at_fork(after_in_child=_forget)


def uuid4_hex() -> str:
    """A random (version 4) UUID as 32 lowercase hex characters, as ``uuid.uuid4().hex``."""
    global _buffer, _taken
    with _lock:
        if _taken + _ID_BYTES > len(_buffer):
            _buffer, _taken = os.urandom(_READ_BYTES), 0
        chunk = _buffer[_taken : _taken + _ID_BYTES]
        _taken += _ID_BYTES
    return uuid.UUID(bytes=chunk, version=4).hex
