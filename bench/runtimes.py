"""Each runtime a worker can use (classifier_worker.runtimes), side by side on one model: ms per
image at batch 1, top-1 on the gallery and top-1 agreement with fp32 torch.

    python -m bench.runtimes [--threads 1] [--rounds 5] [--model efficientnet_lite0]

One process, the worker's own loading and preprocessing; the photos are preprocessed before the
clock starts, so only forward passes are timed. Each round runs every runtime over every gallery
photo, runtimes in turn (who goes first rotates), so that a machine whose speed drifts slows them
alike; the table gives the median of the rounds' medians and the best round's median. "eager fp32
as loaded" is the model without the rewrites of classifier_worker.optimize, for reference. Last,
the start-up check a worker with ``CLASSIFIER_RUNTIME=auto`` runs, timed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from classifier_common.catalog import get_spec
from classifier_common.images import Gallery
from classifier_worker.cpu import cpu_model, this_cpu_has_bf16
from classifier_worker.export import default_cache_dir, ensure_export
from classifier_worker.models import LoadedModel, build_module
from classifier_worker.quantize import ensure_int8
from classifier_worker.runtimes import ONNXRUNTIME_INT8, OnnxRuntime, Runtime, TorchBf16Runtime, TorchRuntime
from classifier_worker.selection import AUTO, gallery_batches, select_runtime


class _AsLoaded(TorchRuntime):
    name = "eager fp32 as loaded"


def runtimes(model: LoadedModel, models_dir: Path, threads: int, batches: list[np.ndarray]) -> list[Runtime]:
    plain = build_module(model.spec)
    plain.load_state_dict(torch.load(model.spec.weights_path(models_dir), map_location="cpu", weights_only=True))
    out: list[Runtime] = [_AsLoaded(plain.eval()), TorchRuntime(model.module)]
    if this_cpu_has_bf16():
        out.append(TorchBf16Runtime(model.module))
    path = ensure_export(model.module, model.spec, model.version, models_dir, default_cache_dir())
    out.append(OnnxRuntime(path, threads))
    int8 = ensure_int8(path, model.spec, model.version, models_dir, default_cache_dir(), batches)
    out.append(OnnxRuntime(int8, threads, ONNXRUNTIME_INT8))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models-dir", type=Path, default=Path("data/models"))
    parser.add_argument("--gallery-dir", type=Path, default=Path("data/gallery"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = LoadedModel.load(get_spec(args.model), args.models_dir)
    batches = gallery_batches(model, args.gallery_dir)
    names = [info.name for info in Gallery(args.gallery_dir).list()]  # the order of gallery_batches
    with (args.gallery_dir / "labels.csv").open() as fh:
        labels = {row["file"]: int(row["class_index"]) for row in csv.DictReader(fh)}
    truth = [labels[name] for name in names]
    candidates = runtimes(model, args.models_dir, args.threads, batches)
    round_medians: dict[str, list[float]] = {r.name: [] for r in candidates}
    top1: dict[str, list[int]] = {}
    with torch.inference_mode():
        for runtime in candidates:  # warm-up, and the predictions (the same every round)
            top1[runtime.name] = [int(runtime(batch).argmax(axis=1)[0]) for batch in batches]
        for round_ in range(args.rounds):
            shift = round_ % len(candidates)
            for runtime in candidates[shift:] + candidates[:shift]:
                times = []
                for batch in batches:
                    started = time.perf_counter()
                    runtime(batch)
                    times.append(time.perf_counter() - started)
                round_medians[runtime.name].append(statistics.median(times) * 1000)
    reference = top1["torch"]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{cpu_model()}, {os.cpu_count()} cores, {when}, torch {torch.__version__}, {args.model}")
    print(f"load average at the end: {load} (other tenants' work included)")
    print(f"batch 1, {args.threads} thread(s), {args.rounds} interleaved rounds of {len(batches)} photos")
    print("| runtime | ms per image (median of rounds) | best round | top-1 | agrees with fp32 torch |")
    print("|---|---:|---:|---:|---:|")
    for runtime in candidates:
        rounds, picks = round_medians[runtime.name], top1[runtime.name]
        correct = sum(p == t for p, t in zip(picks, truth, strict=True))
        agree = sum(p == r for p, r in zip(picks, reference, strict=True))
        print(
            f"| {runtime.name} | {statistics.median(rounds):.2f} | {min(rounds):.2f} "
            f"| {correct}/{len(truth)} | {agree}/{len(truth)} |"
        )
    # What a worker's start-up costs with auto: the check as the worker runs it (the seeded export).
    loaded = LoadedModel.load(model.spec, args.models_dir)
    selection = select_runtime(
        loaded,
        AUTO,
        models_dir=args.models_dir,
        gallery_dir=args.gallery_dir,
        cache_dir=default_cache_dir(),
        threads=args.threads,
    )
    print(f"\nstart-up check (auto): {selection.check_s:.2f} s, chose {selection.chosen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
