"""The worker process keeps the memory its jobs free for the next job (classifier_worker.allocator):
measured as page faults per photo in fresh processes, each decoding and normalising the gallery
on a thread of its own, as a worker's consumer thread does."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")

# Runs in a fresh process: optionally load the pool's models as the worker does (load_models,
# which sets the allocator up), then decode + normalise every gallery photo twice on a thread
# and print the minor page faults per photo of the second round.
PROBE = """
import json, resource, sys, threading
from pathlib import Path
from classifier_common.catalog import get_spec
from classifier_common.config import Settings
from classifier_worker.preprocess import Normalizer, decode
from classifier_worker.worker import load_models

if sys.argv[1] == "worker":
    load_models(Settings())
spec = get_spec("efficientnet_lite0")
normalize = Normalizer(spec)
photos = [p.read_bytes() for p in sorted(Path(sys.argv[2]).iterdir()) if p.suffix.lower() in (".jpeg", ".jpg", ".png")]
out = {}

def run():
    for data in photos:
        normalize([decode(data, spec)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for data in photos:
        normalize([decode(data, spec)])
    out["faults_per_photo"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(photos)

thread = threading.Thread(target=run)
thread.start()
thread.join()
print(json.dumps(out))
"""


def _faults_per_photo(mode: str, seeded: tuple[Path, Path], **env: str) -> float:
    models_dir, gallery_dir = seeded
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    environment |= {
        "CLASSIFIER_MODELS_DIR": str(models_dir),
        "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
        "CLASSIFIER_POOLS": "",
        "CLASSIFIER_MODELS": "efficientnet_lite0",
        "CLASSIFIER_RUNTIME": "torch",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(gallery_dir)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return float(json.loads(done.stdout.splitlines()[-1])["faults_per_photo"])


def test_a_worker_process_reuses_the_memory_its_jobs_free(seeded: tuple[Path, Path]) -> None:
    # Without the worker's setup each photo's buffers come from the kernel afresh (hundreds of
    # page faults a photo); after load_models the freed ones are reused.
    assert _faults_per_photo("plain", seeded) > 100
    assert _faults_per_photo("worker", seeded) < 10


def test_glibcs_own_malloc_settings_win(seeded: tuple[Path, Path]) -> None:
    # A user who tunes malloc through glibc's variables keeps exactly what they set: here the
    # trim threshold at 0, so freed memory goes back at once and the page faults return.
    assert _faults_per_photo("worker", seeded, MALLOC_TRIM_THRESHOLD_="0") > 100
    assert _faults_per_photo("worker", seeded, GLIBC_TUNABLES="glibc.malloc.trim_threshold=0") > 100
