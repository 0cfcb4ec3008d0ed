"""The store's disk filling up while clients submit: the SQLite file on a small tmpfs of its own,
filled to the last byte by another file for a while, then freed.

While it is full, a submission is refused with 503 (nothing is acknowledged that could not be
written) and the workers hold the jobs whose results they cannot write; once space is freed,
202s resume and every accepted job finishes: 0 lost, 0 duplicated. The CI fills it for 5 s;
``RELIABILITY_FULL_SIZE=1`` for 60 s:

    RELIABILITY_FULL_SIZE=1 .venv/bin/python -m pytest tests/reliability/test_disk_full.py -s

Mounting a tmpfs needs root (the CI runs as root); elsewhere the test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.accounting import MODEL, Submitter, gallery_body, report, settle, wait_until
from tests.utils.stack import running_stack

FULL_SIZE = os.environ.get("RELIABILITY_FULL_SIZE") == "1"
FULL_FOR_S = 60.0 if FULL_SIZE else 5.0


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "32m") -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1024 * 1024, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_store_disk_full_then_freed(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    with (
        small_filesystem(tmp_path / "store") as store_dir,
        running_stack(
            tmp_path / "stack",
            seeded,
            workers=2,
            CLASSIFIER_MODELS=MODEL,
            CLASSIFIER_RESULT_CACHE="false",
            CLASSIFIER_TORCH_THREADS="1",
            CLASSIFIER_STORE_URL=f"sqlite:///{store_dir}/jobs.db",
        ) as stack,
    ):
        images = sorted(p.name for p in seeded[1].iterdir() if p.suffix.lower() in {".jpeg", ".jpg"})
        load = Submitter(f"http://127.0.0.1:{stack.gateway_port}", gallery_body(images), clients=2, pause_s=0.02)
        load.start()
        wait_until(lambda: load.count(202) >= 20, 60, "submissions to flow")
        filler = fill(store_dir)
        full_at = time.monotonic()
        wait_until(lambda: load.count(503) >= 1, 30, "a submission refused while the disk is full")
        time.sleep(max(0.0, FULL_FOR_S - (time.monotonic() - full_at)))
        refused_while_full = load.count(503)
        filler.unlink()
        freed_at = time.monotonic()
        wait_until(
            lambda: any(s.status == 202 and s.answered_at > freed_at for s in load.submissions),
            60,
            "a 202 after space was freed",
        )
        first_202_after = min(s.answered_at for s in load.submissions if s.status == 202 and s.answered_at > freed_at)
        time.sleep(2)
        submissions = load.stop()
        tally = settle(
            f"store disk full for {FULL_FOR_S:.0f} s",
            submissions,
            db_path=store_dir / "jobs.db",
            worker_logs=lambda: sorted(stack.state_dir.glob("worker-*.log")),
            results_url=f"http://127.0.0.1:{stack.results_port}",
            timeout=120,
        )
        drained_after = time.monotonic() - freed_at
    report(
        f"  disk full: {refused_while_full} submissions refused 503 while full; first 202 "
        f"{first_202_after - freed_at:.2f} s after space was freed; every accepted job finished "
        f"{drained_after:.1f} s after"
    )
    assert all(s.retry_after for s in submissions if s.status == 503)
    tally.assert_nothing_lost_or_duplicated()
