"""In-process measurements of the performance levers (docs/performance.md says which were kept).

    python -m bench.levers [--threads 2] [--rounds 5]     # writes bench/results/levers.{json,md}

Each lever compares variants on the same images in interleaved rounds (A B A B ...), so a burst
of other work on a shared machine hits every variant alike; the median round is reported.
Variants that change the pixels also report gallery top-1 accuracy (the e2e test needs >= 37/41).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from bench.images import load_gallery
from bench.procstats import machine_busy_seconds
from classifier_common.catalog import ModelSpec, get_spec
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import Normalizer, decode
from devstack.paths import REPO


def interleaved(variants: dict[str, Callable[[], int]], rounds: int) -> dict[str, dict]:
    """Median milliseconds per item of each variant; each call returns how many items it did."""
    per_item: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm-up
    busy0, cpu0 = machine_busy_seconds(), time.process_time()
    for _ in range(rounds):
        for name, fn in variants.items():
            started = time.perf_counter()
            items = fn()
            per_item[name].append((time.perf_counter() - started) / items * 1000)
    foreign = max(0.0, machine_busy_seconds() - busy0 - (time.process_time() - cpu0))
    return {
        name: {"ms": statistics.median(v), "min_ms": min(v), "rounds": len(v), "foreign_cpu_s": foreign}
        for name, v in per_item.items()
    }


def _decode_variant(data: bytes, spec: ModelSpec, *, draft: bool, box: bool) -> Image.Image:
    """preprocess.decode() with its two levers switchable: JPEG draft, resizing only the crop box."""
    img = Image.open(io.BytesIO(data))
    if draft:
        img.draft("RGB", (spec.resize_size, spec.resize_size))
    img = ImageOps.exif_transpose(img).convert("RGB")
    width, height = img.size
    if box:
        side = min(width, height) * spec.input_size / spec.resize_size
        left, top = (width - side) / 2, (height - side) / 2
        return img.resize((spec.input_size, spec.input_size), Image.BILINEAR, box=(left, top, left + side, top + side))
    scale = spec.resize_size / min(width, height)
    size = (max(spec.resize_size, round(width * scale)), max(spec.resize_size, round(height * scale)))
    img = img.resize(size, Image.BILINEAR)
    left, top = (size[0] - spec.input_size) // 2, (size[1] - spec.input_size) // 2
    return img.crop((left, top, left + spec.input_size, top + spec.input_size))


def _decode_torchvision(data: bytes, spec: ModelSpec) -> torch.Tensor:
    """torchvision.io.decode_jpeg + antialiased bilinear resize + crop, straight to a uint8 CHW tensor."""
    import torchvision.io
    import torchvision.transforms.v2.functional as F

    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    img = torchvision.io.decode_jpeg(raw, mode=torchvision.io.ImageReadMode.RGB)
    img = F.resize(img, [spec.resize_size], antialias=True)
    return F.center_crop(img, [spec.input_size])


def _big_photo(data: bytes) -> bytes:
    """A 12-megapixel JPEG like a phone's, made from a gallery photo (upscaled, quality 90)."""
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def _batch(model: LoadedModel, images: list[Image.Image]) -> torch.Tensor:
    """The worker's batch (numpy, NHWC-strided) as the tensor its torch runtime makes of it."""
    return torch.from_numpy(model.normalize(images))


def _top1(model: LoadedModel, batches: list[torch.Tensor], labels: list[int]) -> int:
    with torch.inference_mode():
        return sum(int(model.module(b).argmax(1)[0]) == label for b, label in zip(batches, labels, strict=True))


def lever_draft(model: LoadedModel, datas: list[bytes], rounds: int) -> dict:
    spec = model.spec
    big = [_big_photo(d) for d in datas[:3]]
    gallery = interleaved(
        {
            "draft (kept)": lambda: [decode(d, spec) for d in datas] and len(datas),
            "full decode": lambda: [_decode_variant(d, spec, draft=False, box=True) for d in datas] and len(datas),
        },
        rounds,
    )
    phone = interleaved(
        {
            "draft (kept)": lambda: [decode(d, spec) for d in big] and len(big),
            "full decode": lambda: [_decode_variant(d, spec, draft=False, box=True) for d in big] and len(big),
        },
        max(2, rounds // 2),
    )
    return {"gallery photos (~500x375)": gallery, "12 MP photos (4000x3000)": phone}


def lever_resize(model: LoadedModel, datas: list[bytes], labels: list[int], rounds: int) -> dict:
    spec = model.spec

    def whole(d: bytes) -> Image.Image:
        return _decode_variant(d, spec, draft=True, box=False)

    variants = {
        "resize whole image, then crop (before)": whole,
        "resize only the crop box (kept)": lambda d: decode(d, spec),
    }
    out = interleaved(
        {name: (lambda fn=fn: [fn(d) for d in datas] and len(datas)) for name, fn in variants.items()}, rounds
    )
    for name, fn in variants.items():
        out[name]["top1"] = _top1(model, [_batch(model, [fn(d)]) for d in datas], labels)
    return out


def lever_decoder(model: LoadedModel, datas: list[bytes], labels: list[int], rounds: int) -> dict:
    spec = model.spec
    norm = model.normalize
    mean, inv_std = torch.from_numpy(norm.mean), torch.from_numpy(norm.inv_std)

    def pil() -> int:
        for d in datas:
            norm([decode(d, spec)])
        return len(datas)

    def tv() -> int:
        for d in datas:
            (_decode_torchvision(d, spec).unsqueeze(0).float() - mean) * inv_std
        return len(datas)

    timing = interleaved({"PIL + draft (kept)": pil, "torchvision.io.decode_jpeg": tv}, rounds)
    pil_batches = [_batch(model, [decode(d, spec)]) for d in datas]
    tv_batches = [(_decode_torchvision(d, spec).unsqueeze(0).float() - mean) * inv_std for d in datas]
    timing["PIL + draft (kept)"]["top1"] = _top1(model, pil_batches, labels)
    timing["torchvision.io.decode_jpeg"]["top1"] = _top1(model, tv_batches, labels)
    return timing


def lever_normalize(model: LoadedModel, datas: list[bytes], rounds: int) -> dict:
    spec = model.spec
    images = [decode(d, spec) for d in datas]
    current = Normalizer(spec)
    mean, inv_std = torch.from_numpy(current.mean), torch.from_numpy(current.inv_std)

    def numpy_stack() -> int:
        for img in images:
            current([img])
        return len(images)

    def frombuffer_inplace() -> int:
        for img in images:
            t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            t.view(1, spec.input_size, spec.input_size, 3).permute(0, 3, 1, 2).float().sub_(mean).mul_(inv_std)
        return len(images)

    def contiguous() -> int:
        for img in images:
            np.ascontiguousarray(current([img]))
        return len(images)

    def temporaries() -> int:
        for img in images:
            batch = np.stack([np.asarray(img, dtype=np.uint8)]).transpose(0, 3, 1, 2).astype(np.float32)
            (batch - current.mean) * current.inv_std
        return len(images)

    return interleaved(
        {
            "numpy stack -> transpose -> float32, in-place sub/mul (current)": numpy_stack,
            "the same with a temporary batch per operation (before)": temporaries,
            "frombuffer, in-place sub/mul": frombuffer_inplace,
            "current + .contiguous() (NCHW copy)": contiguous,
        },
        rounds,
    )


def lever_upright(model: LoadedModel, datas: list[bytes], rounds: int) -> dict:
    """preprocess.decode() against the same with ``exif_transpose`` returning a copy of a photo that
    is already upright (Pillow's default), as it did before."""
    spec = model.spec

    def with_copy(data: bytes) -> Image.Image:
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", (spec.resize_size, spec.resize_size))
        img = ImageOps.exif_transpose(img)  # a copy when nothing is to be turned
        img = img if img.mode == "RGB" else img.convert("RGB")
        side = min(img.size) * spec.input_size / spec.resize_size
        left, top = (img.width - side) / 2, (img.height - side) / 2
        return img.resize((spec.input_size,) * 2, Image.BILINEAR, box=(left, top, left + side, top + side))

    def run(fn: Callable[[bytes, ModelSpec], Image.Image]) -> Callable[[], int]:
        return lambda: len([fn(d, spec) for d in datas])

    return interleaved(
        {"upright in place (current)": run(decode), "a copy of every photo (before)": run(lambda d, _: with_copy(d))},
        rounds,
    )


def lever_jpeg_end(datas: list[bytes], rounds: int) -> dict:
    """The gateway's cut-off check of a JPEG upload: the end marker looked for from the end of the
    file (current) against a search forward from the first start-of-scan (before)."""
    from classifier_common.images import _jpeg_has_end

    jpegs = [d for d in datas if d[:2] == b"\xff\xd8"]
    scans = [d.find(b"\xff\xda") for d in jpegs]

    def forward() -> int:
        return len([d.find(b"\xff\xd9", at + 2) != -1 for d, at in zip(jpegs, scans, strict=True)])

    def from_the_end() -> int:
        return len([_jpeg_has_end(d) for d in jpegs])

    return interleaved({"from the end (current)": from_the_end, "forward (before)": forward}, rounds)


def lever_forward(model: LoadedModel, datas: list[bytes], rounds: int) -> dict:
    """inference_mode vs no_grad vs plain; input layouts; channels_last; TorchScript (freeze)."""
    spec = model.spec
    batches = [_batch(model, [decode(d, spec)]) for d in datas]  # NHWC-strided (permuted) views
    contiguous = [b.contiguous() for b in batches]
    module = model.module

    def run(mod: torch.nn.Module, inputs: list[torch.Tensor], ctx: Callable) -> Callable[[], int]:  # type: ignore[type-arg]
        def fn() -> int:
            with ctx():
                for b in inputs:
                    mod(b)
            return len(inputs)

        return fn

    variants = {
        "inference_mode, input as built (kept)": run(module, batches, torch.inference_mode),
        "no_grad": run(module, batches, torch.no_grad),
        "autograd on (no context)": run(module, batches, torch.enable_grad),
        "inference_mode, contiguous NCHW input": run(module, contiguous, torch.inference_mode),
    }
    import copy

    cl_module = copy.deepcopy(module).to(memory_format=torch.channels_last)
    cl_inputs = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    variants["channels_last model + input"] = run(cl_module, cl_inputs, torch.inference_mode)
    started = time.perf_counter()
    with torch.inference_mode():
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(copy.deepcopy(module), batches[0])))
    trace_s = time.perf_counter() - started
    variants["TorchScript trace + freeze + optimize_for_inference"] = run(traced, batches, torch.inference_mode)
    out = interleaved(variants, rounds)
    out["TorchScript trace + freeze + optimize_for_inference"]["prepare_s"] = trace_s
    return out


def lever_threads(model: LoadedModel, datas: list[bytes], rounds: int) -> dict:
    spec = model.spec
    batches = [_batch(model, [decode(d, spec)]) for d in datas]
    before = torch.get_num_threads()

    def with_threads(threads: int) -> Callable[[], int]:
        def fn() -> int:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                for b in batches:
                    model.module(b)
            return len(batches)

        return fn

    out = interleaved({"1 thread": with_threads(1), "2 threads": with_threads(2)}, rounds)
    torch.set_num_threads(before)
    return out


def lever_batch(model: LoadedModel, datas: list[bytes], rounds: int) -> dict:
    spec = model.spec
    images = [decode(d, spec) for d in datas]
    variants = {}
    for size in (1, 2, 4, 8, 16, 32):
        chunks = [images[i : i + size] for i in range(0, len(images), size)]
        full = [c for c in chunks if len(c) == size] or [images[:size]]
        tensors = [_batch(model, c) for c in full]

        def fn(tensors: list[torch.Tensor] = tensors) -> int:
            with torch.inference_mode():
                for t in tensors:
                    model.module(t)
            return sum(t.shape[0] for t in tensors)

        variants[f"batch {size}"] = fn
    return interleaved(variants, rounds)


def lever_long_poll(waiters: int, seconds: float) -> dict:
    """``waiters`` long-polls on one SQLite store while jobs finish at random moments: the delay
    from a job's finish to its answer, and the CPU the waiting costs, for the per-request 50 ms
    re-read the results service had and the shared JobWaiter it has now."""
    import asyncio
    import random
    import tempfile

    from fastapi.concurrency import run_in_threadpool

    from classifier_common.domain import Job, JobResult, JobStatus, Prediction, new_job_id, utcnow
    from classifier_common.store.sqlite import SqliteJobStore
    from classifier_common.waiter import JobWaiter

    result = JobResult(predictions=[Prediction(label="x", class_index=0, score=1.0)], model_version="1")

    async def per_request(store: SqliteJobStore, job_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        job = await run_in_threadpool(store.get, job_id)
        while not job.status.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            job = await run_in_threadpool(store.get, job_id)

    async def shared(store: SqliteJobStore, waiter: JobWaiter, job_id: str, timeout: float) -> None:
        job = await run_in_threadpool(store.get, job_id)
        if not job.status.finished:
            await waiter.wait(job_id, timeout)
            await run_in_threadpool(store.get, job_id)

    async def run(kind: str, store: SqliteJobStore) -> dict:
        waiter = JobWaiter(store)
        delays: list[float] = []
        finished_at: dict[str, float] = {}
        stop = time.monotonic() + seconds

        async def client() -> None:
            while time.monotonic() < stop:
                job = store.create(
                    Job(id=new_job_id(), status=JobStatus.queued, model="m", image="i", source="upload",
                        image_sha256="0" * 64, created_at=utcnow())
                )  # fmt: skip
                # The "worker": finishes the job 20-400 ms later, from another thread.
                delay = random.uniform(0.02, 0.4)

                def finish(job_id: str = job.id, delay: float = delay) -> None:
                    time.sleep(delay)
                    finished_at[job_id] = time.monotonic()
                    store.finish(job_id, result, utcnow())

                finishing = asyncio.get_running_loop().run_in_executor(None, finish)
                if kind == "per-request":
                    await per_request(store, job.id, 30)
                else:
                    await shared(store, waiter, job.id, 30)
                delays.append(time.monotonic() - finished_at[job.id])
                await finishing

        cpu0 = time.process_time()
        await asyncio.gather(*(client() for _ in range(waiters)))
        cpu = time.process_time() - cpu0
        return {
            "ms": statistics.median(delays) * 1000,
            "min_ms": min(delays) * 1000,
            "p95_ms": sorted(delays)[int(len(delays) * 0.95)] * 1000,
            "cpu_ms_per_job": cpu / len(delays) * 1000,
            "jobs": len(delays),
            "rounds": 1,
        }

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteJobStore(Path(tmp) / "jobs.db")
        for kind in ("per-request", "shared"):
            name = "per-request re-read every 50 ms (before)" if kind == "per-request" else "shared JobWaiter (kept)"
            out[name] = asyncio.run(run(kind, store))
        store.close()
    return out


def lever_json(rounds: int) -> dict:
    """Rendering a finished job's JSON body: the standard library (FastAPI's JSONResponse) vs orjson."""
    from starlette.responses import JSONResponse

    from classifier_common.domain import Job, JobResult, JobStatus, Prediction, job_view, utcnow

    job = Job(
        id="0" * 32, status=JobStatus.succeeded, model="efficientnet_lite0", image="x.jpeg", source="upload",
        image_sha256="0" * 64, created_at=utcnow(), started_at=utcnow(), finished_at=utcnow(), attempts=1,
        result=JobResult(
            predictions=[Prediction(label=f"label {i}", class_index=i, score=0.1) for i in range(5)],
            model_version="1-abc", inference_ms=20.0,
        ),
    )  # fmt: skip
    n = 2000
    variants = {
        "job_view + JSONResponse (json, current)": lambda: [JSONResponse(job_view(job)) for _ in range(n)] and n,
    }
    try:
        import orjson

        variants["job_view + orjson.dumps"] = lambda: [orjson.dumps(job_view(job)) for _ in range(n)] and n
    except ImportError:
        pass
    variants["job_view alone (pydantic model_dump)"] = lambda: [job_view(job) for _ in range(n)] and n
    return interleaved(variants, rounds)


def markdown(meta: dict, levers: dict[str, dict]) -> str:
    lines = [f"Levers, in-process, median of {meta['rounds']} interleaved rounds; {meta['machine']}.", ""]
    for lever, groups in levers.items():
        lines += [f"### {lever}", "", "| variant | ms per item | min | top-1 | other |", "|---|---:|---:|---:|---|"]
        flat = groups if all("ms" in v for v in groups.values()) else None
        items = [("", flat)] if flat else [(group + ": ", variants) for group, variants in groups.items()]
        for prefix, variants in items:
            for name, v in variants.items():
                other = f"prepare {v['prepare_s']:.1f} s" if "prepare_s" in v else ""
                if "cpu_ms_per_job" in v:
                    other = f"p95 {v['p95_ms']:.1f} ms, CPU {v['cpu_ms_per_job']:.2f} ms per job, {v['jobs']} jobs"
                top1 = f"{v['top1']}/{meta['images']}" if "top1" in v else ""
                lines.append(f"| {prefix}{name} | {v['ms']:.3f} | {v['min_ms']:.3f} | {top1} | {other} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--gallery-dir", type=Path, default=REPO / "data" / "gallery")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--only", action="append")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = LoadedModel.load(get_spec("efficientnet_lite0"), args.models_dir)
    gallery = load_gallery(args.gallery_dir)
    with (REPO / "gallery" / "labels.csv").open() as fh:
        truth = {row["file"]: int(row["class_index"]) for row in csv.DictReader(fh)}
    datas = [d for _, d in gallery]
    labels = [truth[name] for name, _ in gallery]
    runs: dict[str, Callable[[], dict]] = {
        "JPEG draft decoding": lambda: lever_draft(model, datas, args.rounds),
        "decoder": lambda: lever_decoder(model, datas, labels, args.rounds),
        "resize": lambda: lever_resize(model, datas, labels, args.rounds),
        "tensor conversion": lambda: lever_normalize(model, datas, args.rounds),
        "upright photos": lambda: lever_upright(model, datas, args.rounds),
        "JPEG end marker": lambda: lever_jpeg_end(datas, args.rounds),
        "forward pass": lambda: lever_forward(model, datas, args.rounds),
        "torch threads": lambda: lever_threads(model, datas, args.rounds),
        "batch size (per image)": lambda: lever_batch(model, datas, args.rounds),
        "JSON response body": lambda: lever_json(args.rounds),
        "long-poll, 16 waiting requests (ms from finish to answer)": lambda: lever_long_poll(16, 10),
        "long-poll, 1 waiting request (ms from finish to answer)": lambda: lever_long_poll(1, 10),
    }
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    meta = {"rounds": args.rounds, "threads": args.threads, "images": len(datas), "torch": torch.__version__,
            "machine": f"{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = "levers" if not args.only else "levers-" + "-".join(o.split()[0].lower() for o in args.only)
    levers = {}
    for lever, fn in runs.items():
        if args.only and not any(o.lower() in lever.lower() for o in args.only):
            continue
        levers[lever] = fn()
        print(lever, json.dumps(levers[lever]), flush=True)
        # Written after each lever: a late failure keeps the earlier numbers.
        (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "levers": levers}, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(markdown(meta, levers))
    print(markdown(meta, levers))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
