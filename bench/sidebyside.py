"""Two or more versions of the services' code, each as its own system stack, all up at once and
loaded in turn: the way to tell whether a change moves the system's CPU per job on a machine
whose speed drifts by more than the change from one minute to the next.

    git worktree add /tmp/before HEAD~1
    python -m bench.sidebyside before=/tmp/before after=.
    python -m bench.sidebyside before=/tmp/before after=. --slices 8 --duration 8 --uploads-only

Each NAME=PATH is a checkout of this repository: its stack runs the services' code of PATH
(through ``PYTHONPATH``), everything else from this checkout (the harness, the interpreters, the
models and photos). The stacks share the local RabbitMQ, as the benchmark's rows do. Each round
loads every stack for one slice at 16 clients, in an order that turns around from one round to
the next, so that a machine speeding up or slowing down meets every version alike. A slice is
the benchmark's own: clients that upload a photo and wait for the job (row 3-sat), or with
``--uploads-only`` clients that only upload, with no workers (row gw-upload). Each slice prints its
images/s and each process's CPU ms per job; the summary gives each version's medians and, for
each version after the first, its per-round difference from the first: a change is real when
those differences keep one sign, not when two medians differ.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.images import load_gallery
from bench.report import outside_workers_ms
from bench.scenarios import Row, run_load, system_job, upload_only_job

MODEL = "efficientnet_lite0"
# Where a checkout keeps each package the services import, relative to its root.
SOURCE_ROOTS = ("libs/common/src", "services/gateway/src", "services/results/src", "services/classifier-worker/src")
CLIENTS = 16
WARMUP_S = 2.0


@dataclass
class Version:
    name: str
    root: Path
    slices: list[dict[str, float]] = field(default_factory=list)  # one per round


def python_path(root: Path) -> str:
    """The ``PYTHONPATH`` that makes a stack run the services' code of the checkout at ``root``."""
    missing = [part for part in SOURCE_ROOTS if not (root / part).is_dir()]
    if missing:
        raise SystemExit(f"{root} is not a checkout of this repository: no {', '.join(missing)}")
    return ":".join(str(root / part) for part in SOURCE_ROOTS)


def version(arg: str) -> Version:
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {arg!r}")
    return Version(name, Path(path).resolve())


def order(versions: list[Version], round_index: int) -> list[Version]:
    """The versions in the order of one round: as given, then turned around, and so on."""
    return versions if round_index % 2 == 0 else versions[::-1]


def figures(row: Row) -> dict[str, float]:
    """One slice's images/s and CPU ms per job: outside the workers (as the floor target counts
    it), then each process's, under the first word of its name."""
    return {
        "images/s": row.images_per_s or 0.0,
        "outside the workers": outside_workers_ms(row) or 0.0,
        **{p["name"].split()[0]: p["cpu_ms_per_image"] for p in row.processes},
    }


def slice_line(name: str, round_index: int, row: Row, measured: dict[str, float]) -> str:
    parts = " ".join(
        f"{key} {ms:.2f}" for key, ms in measured.items() if key not in ("images/s", "outside the workers")
    )
    return (
        f"{name:<12} round {round_index + 1}: {measured['images/s']:7.1f} images/s, p50 {row.p50_ms or 0:6.1f} ms; "
        f"CPU ms per job: outside the workers {measured['outside the workers']:.2f} | {parts}"
    )


def summary(versions: list[Version]) -> list[str]:
    """Each version's medians, then each later version's per-round differences from the first."""
    lines = []
    for v in versions:
        keys = [key for key in v.slices[0] if key != "images/s"]
        medians = ", ".join(f"{key} {statistics.median(s[key] for s in v.slices):.2f}" for key in keys)
        images = statistics.median(s["images/s"] for s in v.slices)
        lines.append(f"{v.name}: median of {len(v.slices)} slices: {images:.1f} images/s; CPU ms per job: {medians}")
    first = versions[0]
    for v in versions[1:]:
        for key in ("gateway", "outside the workers"):
            diffs = [mine[key] - theirs[key] for mine, theirs in zip(v.slices, first.slices, strict=True)]
            shown = ", ".join(f"{d:+.2f}" for d in diffs)
            middle = statistics.median(diffs)
            lines.append(f"{v.name} - {first.name}, {key} CPU ms per job by round: {shown} (median {middle:+.2f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sidebyside", description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="+", type=version, metavar="NAME=PATH")
    parser.add_argument("--slices", type=int, default=6, help="rounds: slices per version")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per slice")
    parser.add_argument("--uploads-only", action="store_true", help="clients only upload; no workers")
    servers.add_system_arguments(parser)
    args = parser.parse_args(argv)
    versions: list[Version] = args.versions
    if len(versions) < 2 or len({v.name for v in versions}) != len(versions):
        parser.error("give two or more versions, each with a name of its own")
    paths = {v.name: python_path(v.root) for v in versions}
    python, env = servers.system_settings(args, MODEL)
    images = load_gallery(args.gallery_dir, None)
    workers = 0 if args.uploads_only else args.workers
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as up:
        stacks = {
            v.name: up.enter_context(
                servers.system(
                    Path(tmp) / v.name, workers=workers, env={**env, "PYTHONPATH": paths[v.name]}, worker_python=python
                )
            )
            for v in versions
        }
        for round_index in range(args.slices):
            for v in order(versions, round_index):
                stack = stacks[v.name]
                gateway = f"http://127.0.0.1:{stack.gateway_port}"
                tag = f"sidebyside-{uuid.uuid4().hex}".encode()
                if args.uploads_only:
                    job = upload_only_job(gateway, MODEL, images, tag)
                else:
                    results = f"http://127.0.0.1:{stack.results_port}"
                    job = system_job(gateway, results, MODEL, images, tag, cached=False)
                row = run_load(
                    Row(v.name, v.name), job, servers.stack_pids(stack),
                    clients=CLIENTS, warmup_s=WARMUP_S, duration_s=args.duration,
                )  # fmt: skip
                if row.errors:
                    print(f"{v.name}: {row.errors} errors in the slice: {row.note}", file=sys.stderr)
                measured = figures(row)
                print(slice_line(v.name, round_index, row, measured), flush=True)
                v.slices.append(measured)
    print("\n".join(summary(versions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
