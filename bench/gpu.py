"""The worker on a GPU: ``python -m bench.gpu`` on a machine with an NVIDIA GPU and the CUDA build
of torch (a few minutes; no RabbitMQ needed: the system runs in its embedded mode).

Rows, each on the same gallery photos as ``make bench``:

- the forward pass alone on the GPU (runtime ``torch-cuda``) at batch 1, 8, 32 and 64 (``--batches``);
- ``make bench``'s in-process rows on this machine: (2) decode + preprocess + forward, one loop,
  on the GPU and with ``auto`` (what the CPU runs), and (6q), the int8 forward pass on the CPU;
- the system in one process (``python -m classifier_standalone``, SQLite, the in-process queue),
  its worker threads (``--worker-threads``, which decode in parallel) on the GPU, at max batch 1,
  8, 32 and 64, each with no batch wait and with one (``--waits``), under ``--clients``
  closed-loop clients submitting uploads and waiting for their results.

It prints a Markdown table with the card's name and writes ``bench/results/gpu.{json,md}``.
``--device cpu`` runs the same code on the CPU (the test suite does, briefly); nothing in CI
needs a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import servers
from bench.images import load_gallery
from bench.scenarios import Row, run_inprocess, run_load, system_job
from devstack.embedded import embedded_env
from devstack.paths import REPO
from devstack.ports import free_port

MODEL = "efficientnet_lite0"


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__} (CUDA {torch.version.cuda})"
    return f"CPU, torch {torch.__version__}"


def forward_rows(device: str, batches: list[int], models_dir: Path, gallery_dir: Path, duration_s: float) -> list[dict]:
    """The GPU runtime's forward pass alone at each batch size: images/s and ms per batch."""
    from classifier_common.catalog import get_spec
    from classifier_worker.models import LoadedModel
    from classifier_worker.preprocess import decode
    from classifier_worker.runtimes import TorchCudaRuntime

    model = LoadedModel.load(get_spec(MODEL), models_dir)
    runtime = TorchCudaRuntime(model.module, device=device)
    images = [decode(data, model.spec) for _, data in load_gallery(gallery_dir)]
    rows = []
    for batch in batches:
        arrays = model.normalize([images[i % len(images)] for i in range(batch)])
        for _ in range(3):  # warm-up: the first passes at a new shape pick kernels
            runtime(arrays)
        times = []
        started = time.perf_counter()
        while time.perf_counter() - started < duration_s:
            began = time.perf_counter()
            runtime(arrays)
            times.append(time.perf_counter() - began)
        median = statistics.median(times)
        rows.append(
            {
                "row": f"forward only, batch {batch}, {runtime.name} on {device}",
                "images_per_s": round(batch / median, 1),
                "ms_per_batch": round(median * 1000, 3),
                "passes": len(times),
            }
        )
    return rows


def inprocess_rows(runtime: str, models_dir: Path, gallery_dir: Path, duration_s: float) -> list[dict]:
    """``make bench``'s (2) on ``runtime`` and on auto, and (6q), one loop each, on this machine."""
    rows = []
    for key, scenario, chosen in (
        ("2", "preprocess", runtime),
        ("2", "preprocess", "auto"),
        ("6q", "onnxruntime-int8", "auto"),
    ):
        (row,) = run_inprocess(
            {scenario: Row(key, f"({key}) {scenario}, runtime {chosen}")},
            python=sys.executable,
            runtime=chosen,
            processes=1,
            threads=1,
            models_dir=models_dir,
            gallery_dir=gallery_dir,
            images=None,
            warmup_s=2,
            duration_s=duration_s,
        )
        rows.append(_summary(row))
    return rows


def system_rows(
    runtime: str,
    batches: list[int],
    waits_ms: list[int],
    clients: int,
    threads: int,
    models_dir: Path,
    gallery_dir: Path,
    duration_s: float,
) -> list[dict]:
    """The one-process system, its worker on ``runtime``, at each max batch and batch wait."""
    images = load_gallery(gallery_dir)
    rows = []
    for batch in batches:
        for wait in waits_ms:
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                env = embedded_env(
                    port,
                    Path(tmp),
                    models_dir,
                    gallery_dir,
                    CLASSIFIER_MODELS=MODEL,
                    CLASSIFIER_RUNTIME=runtime,
                    CLASSIFIER_MAX_BATCH=str(batch),
                    CLASSIFIER_MAX_BATCH_WAIT_MS=str(wait),
                    CLASSIFIER_PREFETCH=str(2 * batch),
                    CLASSIFIER_WORKER_THREADS=str(threads),
                    CLASSIFIER_QUEUE_MAX_LENGTH="1000000",
                )
                args = [sys.executable, "-m", "classifier_standalone"]
                log = Path(tmp) / "server.log"
                with servers.process(args, ready_path="/readyz", port=port, env=env, log=log) as pid:
                    url = f"http://127.0.0.1:{port}"
                    tag = f"gpu-{batch}-{wait}-{time.time()}".encode()
                    row = run_load(
                        Row(f"sys-b{batch}-w{wait}", f"system, max batch {batch}, batch wait {wait} ms"),
                        system_job(url, url, MODEL, images, tag, cached=False),
                        {"standalone": pid},
                        clients=clients,
                        warmup_s=3,
                        duration_s=duration_s,
                    )
            rows.append({**_summary(row), "max_batch": batch, "batch_wait_ms": wait})
    return rows


def _summary(row: Row) -> dict:
    return {
        "row": row.scenario,
        "images_per_s": round(row.images_per_s or 0.0, 1),
        "p50_ms": round(row.p50_ms or 0.0, 1),
        "p95_ms": round(row.p95_ms or 0.0, 1),
        "cpu_ms_per_image": round(row.cpu_ms_per_image or 0.0, 2),
        "errors": row.errors,
    }


def markdown(header: str, rows: list[dict]) -> str:
    columns = ["row", "images_per_s", "ms_per_batch", "p50_ms", "p95_ms", "cpu_ms_per_image"]
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    best: dict[int, dict] = {}
    for row in rows:
        batch = row.get("max_batch")
        if batch is not None and (batch not in best or row["images_per_s"] > best[batch]["images_per_s"]):
            best[batch] = row
    if best:
        lines += ["", "Best batch wait per max batch: " + "; ".join(
            f"max batch {b}: batch wait {r['batch_wait_ms']} ms ({r['images_per_s']} images/s)" for b, r in best.items()
        )]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per row")
    parser.add_argument("--clients", type=int, default=128, help="closed-loop clients of the system rows")
    parser.add_argument(
        "--worker-threads", type=int, default=4, help="the system's worker threads: they decode in parallel"
    )
    parser.add_argument("--batches", default="1,8,32,64", help="batch sizes, and the system's max batches")
    parser.add_argument("--waits", default="0,10", help="batch waits (ms) tried at each max batch")
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--gallery-dir", type=Path, default=REPO / "data" / "gallery")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here (torch.cuda.is_available() is False): run it on a GPU machine", file=sys.stderr)
        return 2
    runtime = "torch-cuda" if args.device == "cuda" else "torch"
    waits = [int(w) for w in args.waits.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    header = (
        f"Device: {device_name(args.device)}; {os.cpu_count()} CPU cores; {MODEL}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `python -m bench.gpu --device {args.device}`"
    )
    rows = forward_rows(args.device, batches, args.models_dir, args.gallery_dir, args.duration)
    rows += inprocess_rows(runtime, args.models_dir, args.gallery_dir, args.duration)
    rows += system_rows(
        runtime, batches, waits, args.clients, args.worker_threads, args.models_dir, args.gallery_dir, args.duration
    )
    text = markdown(header, rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.md").write_text(text)
    (args.out / "gpu.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
