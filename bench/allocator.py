"""What the worker's malloc setting (classifier_worker.allocator) saves per job.

    python -m bench.allocator [--rounds 5] [--passes 4]    # writes bench/results/allocator.{json,md}

Each round starts two fresh processes one after the other, ``default`` (glibc's own thresholds)
and ``worker`` (as a worker process sets them), alternating, so a burst of other work hits both
alike. Each loads efficientnet_lite0 as a worker does (``load_models``, ``CLASSIFIER_RUNTIME``
auto unless set) and then, on a thread of its own as a consumer thread, runs every gallery photo
through decode, normalisation and the forward pass ``passes`` times after one warm-up pass. It
reports, per photo, the thread's CPU ms and the process's kernel ms and minor page faults; the
median round of each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.images import load_gallery
from classifier_worker.cpu import cpu_model
from devstack.paths import REPO

MODES = ("default", "worker")
MODEL = "efficientnet_lite0"


def child(mode: str, gallery_dir: Path, passes: int, forward: bool) -> dict[str, float]:
    """In a fresh process: load the model as a worker does (with the worker's malloc setting or
    without it), then classify the gallery on a thread; per photo: CPU ms, kernel ms, faults."""
    from classifier_common.config import Settings
    from classifier_worker import allocator
    from classifier_worker.preprocess import decode
    from classifier_worker.worker import load_models

    if mode == "default":
        allocator.keep_freed_memory = lambda: False  # glibc's own thresholds
    model = load_models(Settings())[MODEL]
    photos = [data for _, data in load_gallery(gallery_dir)]

    def one(data: bytes) -> None:
        image = decode(data, model.spec)
        if forward:
            model.predict([image])
        else:
            model.normalize([image])

    out: dict[str, float] = {}

    def run() -> None:
        for data in photos:
            one(data)
        usage, cpu = resource.getrusage(resource.RUSAGE_SELF), time.thread_time()
        for _ in range(passes):
            for data in photos:
                one(data)
        after, n = resource.getrusage(resource.RUSAGE_SELF), passes * len(photos)
        out["cpu_ms"] = (time.thread_time() - cpu) / n * 1000
        out["kernel_ms"] = (after.ru_stime - usage.ru_stime) / n * 1000
        out["faults"] = (after.ru_minflt - usage.ru_minflt) / n

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out


def measure(
    mode: str,
    *,
    models_dir: Path,
    gallery_dir: Path,
    passes: int = 1,
    forward: bool = True,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """:func:`child` in a fresh process, with only the settings this module gives it (no MALLOC_*
    or GLIBC_TUNABLES from here) plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    environment |= {
        "CLASSIFIER_MODELS_DIR": str(models_dir),
        "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
        "CLASSIFIER_POOLS": "",
        "CLASSIFIER_MODELS": MODEL,
        "CLASSIFIER_TORCH_THREADS": environment.get("CLASSIFIER_TORCH_THREADS", "1"),
        **(env or {}),
    }
    args = ["--child", mode, "--gallery-dir", str(gallery_dir), "--passes", str(passes)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.allocator", *args, *([] if forward else ["--no-forward"])],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.allocator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--gallery-dir", type=Path, default=REPO / "data" / "gallery")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--no-forward", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.gallery_dir, args.passes, not args.no_forward)))
        return 0
    rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for n in range(args.rounds):
        for mode in MODES:
            rounds[mode].append(
                measure(mode, models_dir=args.models_dir, gallery_dir=args.gallery_dir, passes=args.passes)
            )
        print(f"round {n + 1}: " + ", ".join(f"{m} {rounds[m][-1]['cpu_ms']:.2f} ms" for m in MODES), flush=True)
    medians = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in rounds.items()}
    lines = [
        f"{cpu_model()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"python -m bench.allocator --rounds {args.rounds} --passes {args.passes}",
        "",
        "| malloc | CPU ms per photo | kernel ms per photo | minor page faults per photo |",
        "|---|---:|---:|---:|",
        *(f"| {m} | {v['cpu_ms']:.2f} | {v['kernel_ms']:.2f} | {v['faults']:.0f} |" for m, v in medians.items()),
    ]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "allocator.json").write_text(json.dumps({"medians": medians, "rounds": rounds}, indent=2) + "\n")
    (args.out / "allocator.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
