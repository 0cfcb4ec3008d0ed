"""Running one of the project's ``python -m`` tools as a user would, from the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_module(repo: Path, module: str, *args: str, timeout: float = 240) -> str:
    """``python -m module args...`` in ``repo``; asserts it exits 0 and returns its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=repo, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout
