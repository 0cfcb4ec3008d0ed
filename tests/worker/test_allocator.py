"""The worker process keeps the memory its jobs free for the next job (classifier_worker.allocator):
page faults per photo in fresh processes that load the model as a worker does and then decode
and normalise the gallery on a thread of their own, as a worker's consumer thread does
(bench.allocator's measurement, without the forward pass)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from bench.allocator import measure

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")


def _faults_per_photo(mode: str, seeded: tuple[Path, Path], **env: str) -> float:
    models_dir, gallery_dir = seeded
    env = {"CLASSIFIER_RUNTIME": "torch", **env}
    return measure(mode, models_dir=models_dir, gallery_dir=gallery_dir, forward=False, env=env)["faults"]


def test_a_worker_process_reuses_the_memory_its_jobs_free(seeded: tuple[Path, Path]) -> None:
    # With glibc's own thresholds each photo's buffers come from the kernel afresh (hundreds of
    # page faults a photo); in a worker process the freed ones are reused.
    assert _faults_per_photo("default", seeded) > 100
    assert _faults_per_photo("worker", seeded) < 10


def test_glibcs_own_malloc_settings_win(seeded: tuple[Path, Path]) -> None:
    # A user who tunes malloc through glibc's variables keeps exactly what they set: here the
    # trim threshold at 0, so freed memory goes back at once and the page faults return.
    assert _faults_per_photo("worker", seeded, MALLOC_TRIM_THRESHOLD_="0") > 100
    assert _faults_per_photo("worker", seeded, GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") > 100
