"""One process per data directory. The in-process queue spools accepted jobs to files that only
its own process consumes: a second process over the same directory would accept jobs that wait
there until the first one restarts. The lock is an advisory ``flock`` on a file in the spool
directory; the kernel releases it when the process ends, however it ends."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "lock"


class DataDirInUse(Exception):
    pass


def lock_data_dir(directory: Path) -> IO[str]:
    """Take ``directory``'s lock for the life of this process (keep the returned file open), or
    raise :class:`DataDirInUse` naming the process that holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = (directory / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirInUse(
            f"{directory} is in use by another classifier process (pid {holder}): stop it first, or give "
            "this one its own data (CLASSIFIER_SPOOL_DIR and CLASSIFIER_STORE_URL)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
