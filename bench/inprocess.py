"""Scenarios (1), (2), (6) and (6q): one process, one loop, batch 1, the worker's own code.

    python -m bench.inprocess forward preprocess onnxruntime onnxruntime-int8 --threads 2 ...
        forward:          (1) the model's forward pass only (fp32 torch, as loaded and rewritten)
        preprocess:       (2) bytes -> decode -> tensor -> forward -> top-5 (the runtime auto picks)
        onnxruntime:      (6) the forward pass only, in ONNX Runtime on the model's verified export
        onnxruntime-int8: (6q) the same on the export's verified int8 model

A process of its own (started by bench.__main__, as many side by side as the system has worker
processes, so both use the machine alike), so its CPU time and peak RSS are its own; it prints
one JSON object on stdout: {scenario: measurements}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from bench.images import load_gallery
from bench.load import percentile
from bench.procstats import machine_busy_seconds, memory_mb
from classifier_common.catalog import get_spec
from classifier_worker import allocator
from classifier_worker.export import default_cache_dir, ensure_export
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode
from classifier_worker.quantize import ensure_int8
from classifier_worker.runtimes import ONNX_RUNTIMES, ONNXRUNTIME_INT8, OnnxRuntime
from classifier_worker.selection import select_runtime


def run(
    scenario: str, model: LoadedModel, datas: list[bytes], warmup_s: float, duration_s: float, models_dir: Path
) -> dict:
    spec = model.spec
    if scenario == "forward":
        # The tensors the worker would build, made before the clock starts: only the forward pass
        # (inference_mode, as the worker runs it) is timed.
        batches = [torch.from_numpy(model.normalize([decode(d, spec)])) for d in datas]

        def one(i: int) -> None:
            with torch.inference_mode():
                model.module(batches[i % len(batches)])

    elif scenario in ONNX_RUNTIMES:
        batches = [model.normalize([decode(d, spec)]) for d in datas]
        path = ensure_export(model.module, spec, model.version, models_dir, default_cache_dir())
        if scenario == ONNXRUNTIME_INT8:
            path = ensure_int8(path, spec, model.version, models_dir, default_cache_dir(), batches)
        runtime = OnnxRuntime(path, torch.get_num_threads(), scenario)

        def one(i: int) -> None:
            runtime(batches[i % len(batches)])

    elif scenario == "preprocess":

        def one(i: int) -> None:
            model.predict([decode(datas[i % len(datas)], spec)])

    else:
        raise SystemExit(f"unknown scenario {scenario!r}")

    latencies: list[float] = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < warmup_s:
        one(i)
        i += 1
    busy0, cpu0, t0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < duration_s:
        began = time.perf_counter()
        one(i)
        latencies.append(time.perf_counter() - began)
        i += 1
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    busy = machine_busy_seconds() - busy0
    rss, peak = memory_mb(os.getpid())
    return {
        "latencies_ms": [round(v * 1000, 3) for v in latencies],
        "busy_s": busy,
        "completed": len(latencies),
        "duration_s": elapsed,
        "images_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "cpu_s": cpu,
        "foreign_cpu_s": max(0.0, busy - cpu),  # other tenants of the machine meanwhile
        "rss_mb": rss,
        "peak_rss_mb": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenarios", nargs="+", choices=["forward", "preprocess", *ONNX_RUNTIMES])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--gallery-dir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--runtime", default="auto", help="CLASSIFIER_RUNTIME of (2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    allocator.keep_freed_memory()  # as a worker process does (load_models)
    model = LoadedModel.load(get_spec(args.model), args.models_dir)
    if "preprocess" in args.scenarios:  # as the worker would run it
        select_runtime(
            model,
            args.runtime,
            models_dir=args.models_dir,
            gallery_dir=args.gallery_dir,
            cache_dir=default_cache_dir(),
            threads=args.threads,
        )
    datas = [data for _, data in load_gallery(args.gallery_dir, args.images)]
    out = {
        scenario: run(scenario, model, datas, args.warmup, args.duration, args.models_dir)
        for scenario in args.scenarios
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
