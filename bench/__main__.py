"""``python -m bench``: run the scenarios, print the table, write bench/results/latest.{json,md}.

python -m bench                      # everything (make bench)
python -m bench --smoke              # a few images for a second or two each (make bench-smoke)
python -m bench --only system --set CLASSIFIER_PREFETCH=4 --name prefetch4   # one lever

The processes that import torch (the workers, (1)/(2), the naive app) run on --torch-python: by
default .tools/bench-cpu/bin/python, torch's CPU build as the worker images ship it (make
bench-tools), else this python; the report's header says which torch they ran.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench import floor, report, servers
from bench.images import load_gallery
from bench.load import HttpError, closed_loop
from bench.procstats import SHARED
from bench.scenarios import (
    Row,
    classify_job,
    not_run,
    pooled,
    run_inprocess,
    run_load,
    submit_only_job,
    system_job,
    upload_only_job,
)
from devstack.paths import REPO
from devstack.ports import free_port

MODEL = "efficientnet_lite0"
GROUPS = ("inprocess", "system", "floor", "naive", "bentoml", "celery")
# The table's order (the interleaved pairs are measured 2-c1, 3-c1, 2, 3-sat).
ROW_ORDER = ("1", "6", "6q", "2-fp32", "2", "2-c1", "3-c1", "3-sat", "floor", "floor-rate", "3-hit", "gw-json")
ROW_ORDER += ("gw-upload", "4-c1")
ROW_ORDER += ("4-sat", "4w-c1")
ROW_ORDER += ("4w-sat", "5-c1", "5-sat", "7-c1", "7-sat")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _wait_quiet(max_wait_s: float, threshold: float = 0.7) -> None:
    """Other tenants' work skews a benchmark on a shared machine: wait (bounded) for a calm one."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline and float(_loadavg().split()[0]) > threshold:
        print(f"waiting for a quiet machine (load average {_loadavg()})", flush=True)
        time.sleep(15)


FLOOR_NAMES = {
    "floor": "floor: the least CPU per job outside the workers (python -m bench.floor)",
    "floor-rate": "floor's parts at the rate 3-sat reached (python -m bench.floor --rate R)",
}


def floor_row(args: argparse.Namespace, share: float = 1.0, rate: float | None = None) -> Row:
    """bench.floor's parts as a row: its CPU ms per job is their sum, its processes the parts.
    ``share``: the part of a whole measurement this one is (a slice of it); ``rate``: the jobs/s
    each part is driven at (row ``floor-rate``), None: saturated (row ``floor``)."""
    parts = floor.measure(
        duration_s=args.duration / 2 * share,
        clients=args.clients,
        messages=max(20, round((20 if args.smoke else 1000) * share)),
        size=108_000,
        gallery_dir=args.gallery_dir,
        rate=rate,
    )
    return _floor_of("floor", parts) if rate is None else _floor_of("floor-rate", parts, f"{rate:.1f}")


def _floor_of(key: str, parts: dict[str, float], note: str = "") -> Row:
    return Row(
        key,
        FLOOR_NAMES[key],
        cpu_ms_per_image=sum(parts.values()),
        processes=[
            {"name": name, "cpu_ms_per_image": ms, "rss_mb": None, "peak_rss_mb": None} for name, ms in parts.items()
        ],
        foreign_cpu_s=0.0,
        note=note,
    )


def pooled_floor(slices: list[Row], note: str) -> Row:
    """The floor measured in slices: each part's mean over them. A slice's note is the rate it was
    driven at, if any: the row's note lists them."""
    names = [process["name"] for process in slices[0].processes]
    parts = {
        name: sum(row.processes[i]["cpu_ms_per_image"] for row in slices) / len(slices) for i, name in enumerate(names)
    }
    rates = [row.note for row in slices if row.note]
    return _floor_of(slices[0].key, parts, note + (f"; driven at {', '.join(rates)} jobs/s" if rates else ""))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few images, seconds per scenario (CI)")
    # One single-threaded worker per core measured twice the throughput of one worker using
    # every core (docs/performance.md): the default, and the same for every scenario.
    parser.add_argument(
        "--workers", type=int, default=cores, help="worker processes of (3), BentoML's workers, (1)/(2) loops"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process, every scenario")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the saturating rows")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before measuring, per row")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per row")
    parser.add_argument("--images", type=int, default=None, help="first N gallery images (default all)")
    parser.add_argument("--only", action="append", choices=GROUPS, help="run only these groups")
    parser.add_argument("--skip-bentoml", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="CLASSIFIER_X=V", help="system setting")
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--gallery-dir", type=Path, default=REPO / "data" / "gallery")
    parser.add_argument(
        "--torch-python",
        default=None,
        metavar="PATH",
        help="python of the processes that import torch: workers, (1)/(2), naive app (default "
        f"{servers.shown_path(str(servers.CPU_TORCH_PYTHON))}, the CPU build, when installed, else this python)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--name", default="latest", help="results file name without suffix")
    parser.add_argument("--wait-quiet", type=float, default=0, help="wait up to S s for load average < 0.7")
    parser.add_argument(
        "--slices", type=int, default=4, help="(2) with 3-sat and 2-c1 with 3-c1 alternate in N slices each"
    )
    parser.add_argument("--attempts", type=int, default=3, help="measure a disturbed row up to N times")
    parser.add_argument(
        "--noise", type=float, default=0.1, help="a row is disturbed when other tenants took more than this CPU share"
    )
    args = parser.parse_args(argv)
    args.torch_python_note = ""
    if args.torch_python is None:
        args.torch_python, args.torch_python_note = servers.default_torch_python()
    args.torch_python = str(Path(args.torch_python).absolute())  # the processes start in REPO; not resolved
    if args.smoke:
        args.images = args.images or 3
        args.warmup = 0.3 if args.warmup is None else args.warmup
        args.duration = 1.5 if args.duration is None else args.duration
        args.clients = min(args.clients, 4)
        args.attempts = 1
        args.slices = 2
        args.out = args.out or REPO / "data" / "bench-smoke"
    args.warmup = 3.0 if args.warmup is None else args.warmup
    args.duration = 20.0 if args.duration is None else args.duration
    args.out = args.out or REPO / "bench" / "results"
    return args


def start_celery(
    args: argparse.Namespace,
    extra_env: dict[str, str],
    images: list,
    tag: bytes,
    log: Path,
    peers: contextlib.ExitStack,
) -> tuple[str, dict[str, int]]:
    """Row (7)'s peer, up until ``peers`` closes, every Celery child warm (each loads its model
    when it starts): its front's URL and the pids to meter, shared RabbitMQ and Redis included."""
    port = servers.free_port()
    env = {"CLASSIFIER_MODELS_DIR": str(args.models_dir), "CLASSIFIER_GALLERY_DIR": str(args.gallery_dir), **extra_env}
    pids = peers.enter_context(servers.celery_app(args.torch_python, port, args.workers, args.threads, env, log))
    for shared, pid in ((f"rabbitmq{SHARED}", servers.rabbitmq_pid()), (f"redis{SHARED}", servers.redis_pid())):
        if pid:
            pids[shared] = pid
    url = f"http://127.0.0.1:{port}"
    closed_loop(system_job(url, url, MODEL, images, tag + b"-celery-warm", cached=False), 2 * args.workers, 0, 15)
    return url, pids


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    groups = set(args.only or GROUPS)
    # With the system rows, (2) and 2-c1 are measured interleaved with 3-sat and 3-c1.
    together = {"inprocess", "system"} <= groups
    extra_env = dict(item.split("=", 1) for item in args.set)
    torch_info = servers.torch_build(args.torch_python)
    shown = f"{servers.shown_path(args.torch_python)}: torch {torch_info['torch']} ({torch_info['torch_build']} build)"
    print(f"torch processes: {shown}", flush=True)
    if args.torch_python_note:
        print(f"note: {args.torch_python_note}", flush=True)
    _wait_quiet(args.wait_quiet)
    images = load_gallery(args.gallery_dir, args.images)
    tag = uuid.uuid4().hex[:8].encode()  # byte-unique across runs too
    timing = {"warmup_s": args.warmup, "duration_s": args.duration}
    meta = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        **torch_info,  # the torch processes' torch ("torch", "torch_build"), not necessarily this process's
        "torch_python": servers.shown_path(args.torch_python),
        "torch_python_note": args.torch_python_note,
        "model": MODEL,
        "torch_threads": args.threads,
        "workers": args.workers,
        "clients": args.clients,
        "images": len(images),
        "system_settings": extra_env,
        "smoke": args.smoke,
        "loadavg_before": _loadavg(),
        "attempts": args.attempts,
        "slices": args.slices if together else None,  # None: nothing was interleaved
        # 7-sat in the same alternating slices as (2) and 3-sat (set once Celery is up)
        "celery_interleaved": False,
        # the floor in the same alternating slices as 3-sat
        "floor_interleaved": {"system", "floor"} <= groups,
        "noise": args.noise,
        **timing,
    }
    rows: list[Row] = []
    started = time.monotonic()
    capacity_s = (os.cpu_count() or 1) * args.duration  # CPU seconds the machine has per row

    def emit(row: Row) -> None:
        rows.append(row)
        shown = (
            f"not run: {row.not_run}"
            if row.not_run
            else f"{row.cpu_ms_per_image:.2f} ms CPU per job"
            if row.images_per_s is None
            else f"{row.images_per_s:.1f} images/s, p50 {row.p50_ms:.1f} ms, p95 {row.p95_ms:.1f} ms, "
            f"other tenants {100 * (row.foreign_cpu_s or 0) / capacity_s:.0f}% of the CPU"
        )
        print(f"[{time.monotonic() - started:4.0f} s] {row.key:<9} {row.scenario}: {shown}", flush=True)

    def measure(make: Callable[[bytes], Row | list[Row]]) -> None:
        """The machine is shared: a row (or rows measured together) during which other tenants
        took more than --noise of the CPU is measured again (--attempts in all); the least
        disturbed attempt is reported. A failed attempt (the shared RabbitMQ restarting, say) is
        tried again after a pause."""
        best: list[Row] | None = None
        failure = ""
        for attempt in range(1, args.attempts + 1):
            try:
                made = make(f"-{attempt}".encode())  # a new tag: retried jobs send new bytes too
            except HttpError as exc:
                failure = str(exc)[:300]
                print(f"  attempt {attempt} failed: {failure}", flush=True)
                time.sleep(10)
                continue
            made = made if isinstance(made, list) else [made]
            for row in made:
                row.note = (row.note + f" attempt {attempt}").strip()
            foreign = max(row.foreign_cpu_s or 0 for row in made)
            if best is None or foreign < max(row.foreign_cpu_s or 0 for row in best):
                best = made
            if foreign <= args.noise * capacity_s:
                break
            if attempt < args.attempts:
                keys = ", ".join(row.key for row in made)
                print(f"  {keys}: other tenants took {100 * foreign / capacity_s:.0f}% of the CPU; again")
        if best is None:
            raise HttpError(f"every attempt failed; the last: {failure}")
        for row in best:
            emit(row)

    def inprocess(
        key: str, name: str, scenario: str, processes: int, runtime: str = "auto"
    ) -> Callable[[bytes, float], Row]:
        def make(_: bytes, duration_s: float = args.duration) -> Row:
            (row,) = run_inprocess(
                {scenario: Row(key, name)},
                python=args.torch_python,
                runtime=runtime,
                processes=processes,
                threads=args.threads,
                models_dir=args.models_dir,
                gallery_dir=args.gallery_dir,
                images=args.images,
                warmup_s=args.warmup,
                duration_s=duration_s,
            )
            return row

        return make

    def interleaved(*makers: Callable[[bytes, float], Row]) -> Callable[[bytes], list[Row]]:
        """Rows whose ratio or difference is a target, measured in alternating slices (--slices
        of each, --duration in all per row) so that all see the machine alike: its speed drifts by
        10-20 % from one minute to the next here, more than some targets' margin."""

        def make(attempt: bytes) -> list[Row]:
            part = args.duration / args.slices
            slices: list[list[Row]] = [[] for _ in makers]
            for i in range(args.slices):
                for taken, maker in zip(slices, makers, strict=True):
                    taken.append(maker(attempt + f"-{i}".encode(), part))
            return [
                (pooled_floor if taken[0].key.startswith("floor") else pooled)(
                    taken,
                    f"{args.slices} slices of {part:g} s alternating with "
                    + ("row " if len(slices) == 2 else "rows ")
                    + ", ".join(other[0].key for other in slices if other is not taken),
                )
                for taken in slices
            ]

        return make

    sat = args.clients
    load = {"warmup_s": args.warmup, "duration_s": args.duration}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name, contextlib.ExitStack() as peers:
        tmp = Path(tmp_name)
        # (7) the design most Python teams build instead: FastAPI + Celery on the same RabbitMQ,
        # a Redis result backend, the worker's model code, the system's clients. Started first:
        # its saturated row alternates with the system's (3-sat), as (2) does.
        celery: tuple[str, dict[str, int]] | None = None  # the front's URL and the peer's pids
        if "celery" in groups:
            why = "smoke run" if args.smoke else servers.redis_missing()
            if why:
                for key, clients in (("7-c1", 1), ("7-sat", sat)):
                    emit(not_run(key, f"(7) FastAPI + Celery, {clients} client(s)", why))
            else:
                celery = start_celery(args, extra_env, images, tag, tmp / "celery.log", peers)
                meta["celery_interleaved"] = together

        def celery_row(key: str, clients: int) -> Callable[[bytes, float], Row]:
            assert celery is not None
            url, pids = celery
            name = f"(7) FastAPI + Celery (RabbitMQ, Redis results), {clients} client(s)"

            def make(attempt: bytes, duration_s: float = args.duration) -> Row:
                job = system_job(url, url, MODEL, images, tag + key.encode() + attempt, cached=False)
                return run_load(Row(key, name), job, pids, clients=clients, warmup_s=args.warmup, duration_s=duration_s)

            return make

        row2 = inprocess("2", "(2) decode + preprocess + forward, in-process", "preprocess", args.workers)
        # One loop alone: the best latency a single request can have (the system's 1-client row
        # is compared with it).
        row2c1 = inprocess("2-c1", "(2) decode + preprocess + forward, one loop alone", "preprocess", 1)
        if "inprocess" in groups:
            measure(inprocess("1", "(1) forward only, batch 1 (fp32 torch)", "forward", args.workers))
            # (6): ONNX Runtime's forward pass on the model's verified export, the CPU's limit here.
            measure(inprocess("6", "(6) forward only, batch 1, ONNX Runtime hot loop", "onnxruntime", args.workers))
            # (6q): the same on the export's int8 model (classifier_worker.quantize).
            name = "(6q) forward only, batch 1, ONNX Runtime int8 hot loop"
            measure(inprocess("6q", name, "onnxruntime-int8", args.workers))
            # (2f): (2) on the eager fp32 torch of CLASSIFIER_RUNTIME=torch, what (2) auto is compared with.
            name = "(2f) decode + preprocess + forward, in-process, eager fp32 torch"
            measure(inprocess("2-fp32", name, "preprocess", args.workers, runtime="torch"))
            if not together:
                measure(row2)
                measure(row2c1)

        if "system" in groups:
            _, env = servers.system_settings(args, MODEL)  # the workers' python is resolved above
            system = servers.system(tmp / "system", workers=args.workers, env=env, worker_python=args.torch_python)
            with system as stack:
                gateway = f"http://127.0.0.1:{stack.gateway_port}"
                results = f"http://127.0.0.1:{stack.results_port}"
                pids = servers.stack_pids(stack)
                for key, clients, reference in (("3-c1", 1, row2c1), ("3-sat", sat, row2)):
                    name = f"(3) system: gateway > RabbitMQ > worker > SQLite > gateway (wait), {clients} client(s)"

                    def row3(attempt: bytes, duration_s: float = args.duration, key=key, clients=clients, name=name):
                        return run_load(
                            Row(key, name),
                            system_job(gateway, results, MODEL, images, tag + key.encode() + attempt, cached=False),
                            pids,
                            clients=clients,
                            warmup_s=args.warmup,
                            duration_s=duration_s,
                        )

                    makers = [reference, row3] if together else [row3]
                    if celery is not None and key == "3-sat":
                        makers.append(celery_row("7-sat", sat))
                    if "floor" in groups and key == "3-sat":
                        # The floor in the same alternating slices as the row compared with it:
                        # saturated, and driven at the rate this row reached in the slice before.
                        reached: list[float] = []  # each slice's images/s of this row

                        def row3_noted(attempt: bytes, duration_s: float = args.duration, row3=row3, reached=reached):
                            row = row3(attempt, duration_s)
                            reached.append(row.images_per_s or 0.0)
                            return row

                        makers[makers.index(row3)] = row3_noted
                        makers.append(lambda _attempt, duration_s: floor_row(args, duration_s / args.duration))
                        makers.append(
                            lambda _attempt, duration_s, reached=reached: floor_row(
                                args, duration_s / args.duration, rate=max(1.0, reached[-1])
                            )
                        )
                    measure(interleaved(*makers) if len(makers) > 1 else row3)
                # Cache hits: the same bytes again. Prime the cache with each image once.
                first = system_job(gateway, results, MODEL, images, tag + b"-hit", cached=False)
                again = system_job(gateway, results, MODEL, images, tag + b"-hit", cached=True)
                for n in range(len(images)):
                    first({}, n)

                def hit(state: dict, n: int) -> None:
                    again(state, n % len(images))  # the bytes of a job that already ran

                hit_name = "(3) system, result-cache hit (same bytes again), 1 client"
                measure(lambda _: run_load(Row("3-hit", hit_name), hit, pids, clients=1, **load))
                # The gateway alone: stop the workers (they drain and exit), submissions pile up.
                for name in [n for n in stack.procs if n.startswith("worker-")]:
                    stack.kill(name, signal.SIGTERM)
                    pids.pop(name)
                json_name = "gateway only (workers stopped): POST gallery image by name"
                measure(
                    lambda _: run_load(
                        Row("gw-json", json_name), submit_only_job(gateway, MODEL, images), pids, clients=sat, **load
                    )
                )
                upload_name = "gateway only (workers stopped): POST upload (unique bytes)"
                measure(
                    lambda attempt: run_load(
                        Row("gw-upload", upload_name),
                        upload_only_job(gateway, MODEL, images, tag + b"-gw" + attempt),
                        pids,
                        clients=sat,
                        **load,
                    )
                )

        if "floor" in groups and "system" not in groups:
            # The least CPU per job outside the workers (python -m bench.floor); with the system
            # rows it is measured in slices alternating with (3) saturated's, above.
            measure(lambda _: floor_row(args))

        if "naive" in groups:
            # (4) as the tutorials write it; 4w the same design running the worker's own code, so
            # that 4w against (3) isolates the serving design.
            for code, prefix, title in (
                ("tutorial", "4", "(4) naive FastAPI, classify in the handler (tutorial code)"),
                ("worker", "4w", "(4w) naive FastAPI, classify in the handler, the worker's code"),
            ):
                port = free_port()
                log = tmp / f"naive-{code}.log"
                with servers.naive_app(args.torch_python, port, args.threads, args.models_dir, log, code) as pid:
                    job = classify_job(
                        f"http://127.0.0.1:{port}", "/classify", MODEL, images, tag + b"-" + code.encode()
                    )
                    for key, clients in ((f"{prefix}-c1", 1), (f"{prefix}-sat", sat)):
                        measure(
                            lambda _, key=key, name=f"{title}, {clients} client(s)", clients=clients, job=job: run_load(
                                Row(key, name), job, {"naive app": pid}, clients=clients, **load
                            )
                        )

        if "bentoml" in groups:
            why = "smoke run" if args.smoke else servers.bentoml_available(torch_info["torch"])
            why = "--skip-bentoml" if args.skip_bentoml else why
            if why:
                for key, clients in (("5-c1", 1), ("5-sat", sat)):
                    emit(not_run(key, f"(5) BentoML, {clients} client(s)", why))
            else:
                port = free_port()
                with servers.bentoml_app(port, args.workers, args.threads, args.models_dir, tmp / "bentoml.log") as pid:
                    job = classify_job(f"http://127.0.0.1:{port}", "/classify", MODEL, images, tag + b"-bento")
                    for key, clients in (("5-c1", 1), ("5-sat", sat)):
                        name = f"(5) BentoML {servers.bentoml_version()}, {clients} client(s)"
                        measure(
                            lambda _, key=key, name=name, clients=clients: run_load(
                                Row(key, name), job, {"bentoml": pid}, clients=clients, **load
                            )
                        )

        if celery is not None:
            # 7-sat alternated with 3-sat above when the system rows ran.
            measure(celery_row("7-c1", 1))
            if "system" not in groups:
                measure(celery_row("7-sat", sat))

    meta["loadavg_after"] = _loadavg()
    rows.sort(key=lambda row: ROW_ORDER.index(row.key) if row.key in ROW_ORDER else len(ROW_ORDER))
    by_key = {row.key: row for row in rows}
    checks = report.targets(by_key, models=1)  # the system rows' workers load MODEL alone
    print()
    print(report.text_table(rows, checks))
    json_path, md_path = report.write(args.out, meta, rows, checks, name=args.name)
    print(f"\nwritten: {json_path} {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
