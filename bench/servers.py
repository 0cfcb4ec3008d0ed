"""Starting and stopping what the load scenarios talk to: the system (devstack/stack.py, isolated
on the shared RabbitMQ with its own queue and SQLite file), the naive app, BentoML and FastAPI +
Celery; and which python runs the processes that import torch."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procstats import SHARED, find_pid
from devstack.isolated import isolated_stack
from devstack.paths import REPO
from devstack.ports import free_port
from devstack.stack import Stack, http_status

BENTOML_VENV = REPO / ".tools" / "bentoml"
# torch's CPU build, as the worker images ship it (bench/install-cpu-torch.sh, make bench-tools).
CPU_TORCH_PYTHON = REPO / ".tools" / "bench-cpu" / "bin" / "python"


def default_torch_python(cpu_python: Path = CPU_TORCH_PYTHON) -> tuple[str, str]:
    """(python, note) for the processes that import torch: the CPU-torch venv's python when it is
    installed, else this interpreter's (the project's .venv) with a note saying so. Not resolved:
    a venv's bin/python is a symlink to the base interpreter, which would leave the venv."""
    if cpu_python.is_file() and os.access(cpu_python, os.X_OK):
        return str(cpu_python), ""
    shown = cpu_python.parent.parent.relative_to(REPO) if cpu_python.is_relative_to(REPO) else cpu_python
    harness = shown_path(sys.executable)
    return (
        sys.executable,
        f"{shown} is missing (make bench-tools): the torch processes ran on {harness} (the harness's python)",
    )


def shown_path(path: str) -> str:
    """``path`` relative to the repository when it is inside it."""
    absolute = Path(path).absolute()
    return str(absolute.relative_to(REPO)) if absolute.is_relative_to(REPO) else str(absolute)


def torch_build(python: str) -> dict[str, str]:
    """The torch that ``python`` imports: {"torch": "2.13.0+cpu", "torch_build": "CPU"} (or "CUDA 13.0")."""
    code = "import torch; print(torch.__version__, torch.version.cuda or '')"
    try:
        out = subprocess.run([python, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise SystemExit(f"cannot run {python}: {exc}") from exc
    if out.returncode != 0:
        raise SystemExit(f"{python} cannot import torch:\n{out.stderr[-2000:]}")
    version, _, cuda = out.stdout.strip().partition(" ")
    return {"torch": version, "torch_build": f"CUDA {cuda}" if cuda else "CPU"}


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s; see {log}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left of it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def system(state_dir: Path, *, workers: int, env: dict[str, str], worker_python: str) -> Iterator[Stack]:
    """gateway + results + N workers as processes, no nginx (clients talk to the gateway and the
    results service directly, as the naive app's clients talk to it directly). The workers run on
    ``worker_python``; the gateway and results service (no torch) on this interpreter."""
    stack = isolated_stack(
        state_dir,
        workers=workers,
        nginx=False,
        worker_python=worker_python,
        CLASSIFIER_HEARTBEAT_S="5",  # the default; isolated_stack's 1 s is for tests
        CLASSIFIER_QUEUE_MAX_LENGTH="1000000",
        **env,
    )
    try:
        stack.up(timeout=180)
        yield stack
    finally:
        stack.down()
        try:
            stack.delete_queues()
        except Exception as exc:  # noqa: BLE001 - the broker went away; the run's own error matters more
            print(f"could not delete the benchmark's queues: {exc!r}", file=sys.stderr)


def add_system_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a tool that runs the system on its own (bench.breakdown, bench.threads)."""
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per worker")
    parser.add_argument("--torch-python", default=None, help="the workers' python (default: as python -m bench)")
    parser.add_argument("--set", action="append", default=[], metavar="CLASSIFIER_X=V", help="system setting")
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--gallery-dir", type=Path, default=REPO / "data" / "gallery")


def system_settings(args: argparse.Namespace, model: str) -> tuple[str, dict[str, str]]:
    """(the workers' python, the system's settings) from those options: ``model`` alone, on the
    runtime the product picks by default (``auto``) unless ``--set`` says otherwise. Prints a note
    when the workers run on the harness's python."""
    python, note = (args.torch_python, "") if args.torch_python else default_torch_python()
    if note:
        print(f"note: {note}")
    return python, {
        "CLASSIFIER_MODELS_DIR": str(args.models_dir),
        "CLASSIFIER_GALLERY_DIR": str(args.gallery_dir),
        "CLASSIFIER_MODELS": model,
        "CLASSIFIER_TORCH_THREADS": str(args.threads),
        "CLASSIFIER_RUNTIME": "auto",  # the product's default (test stacks use torch)
        **dict(item.split("=", 1) for item in args.set),
    }


def stack_pids(stack: Stack) -> dict[str, int]:
    """The stack's processes by name, and the shared RabbitMQ's (its CPU is the system's too)."""
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    rabbit = rabbitmq_pid()
    if rabbit:
        pids[f"rabbitmq{SHARED}"] = rabbit
    return pids


@contextmanager
def process(args: list[str], *, ready_path: str, port: int, env: dict[str, str], log: Path) -> Iterator[int]:
    """A server process on ``port``, ready when GET ``ready_path`` answers 200; yields its pid."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}{ready_path}", proc, 180, log)
        yield proc.pid
    finally:
        stop(proc)


def naive_app(python: str, port: int, threads: int, models_dir: Path, log: Path, code: str):  # noqa: ANN201
    """The naive app (bench/naive_app.py); ``code`` is "tutorial" (row 4) or "worker" (row 4w)."""
    return process(
        [
            python,
            "-m",
            "bench.naive_app",
            "--code",
            code,
            "--port",
            str(port),
            "--threads",
            str(threads),
            "--models-dir",
            str(models_dir),
        ],
        ready_path="/healthz",
        port=port,
        env={},
        log=log,
    )


def rabbitmq_pid() -> int | None:
    """The local RabbitMQ node (shared with everything else on the machine)."""
    return find_pid("beam.smp", "rabbit")


def redis_pid() -> int | None:
    """The local Redis server (shared too)."""
    return find_pid("redis-server")


def bentoml_version() -> str:
    found = sorted(BENTOML_VENV.glob("lib/python*/site-packages/bentoml-*.dist-info"))
    return found[0].name.removesuffix(".dist-info").split("-")[1] if found else "?"


def bentoml_available(torch: str) -> str | None:
    """None when the BentoML virtualenv is there and borrows torch ``torch`` (the version the other
    torch processes run), else why not."""
    if not (BENTOML_VENV / "bin" / "bentoml").exists():
        return f"BentoML is not installed in {BENTOML_VENV.relative_to(REPO)} (make bench-tools)"
    try:
        theirs = torch_build(str(BENTOML_VENV / "bin" / "python"))["torch"]
    except SystemExit as exc:
        return f"BentoML's venv cannot import torch (make bench-tools): {str(exc)[-200:]}"
    if theirs != torch:
        return f"BentoML's venv imports torch {theirs}, not {torch} (make bench-tools)"
    return None


def bentoml_app(port: int, workers: int, threads: int, models_dir: Path, log: Path):  # noqa: ANN201
    return process(
        [
            str(BENTOML_VENV / "bin" / "bentoml"),
            "serve",
            "bench.bento_service:Classifier",
            "--port",
            str(port),
            "--arg",
            f"workers={workers}",
            "--arg",
            f"threads={threads}",
        ],  # fmt: skip
        ready_path="/readyz",
        port=port,
        env={
            "BENTOML_DO_NOT_TRACK": "True",
            "CLASSIFIER_MODELS_DIR": str(models_dir),
            "CLASSIFIER_LOG_LEVEL": "WARNING",
        },
        log=log,
    )


CELERY_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
CELERY_BACKEND = "redis://127.0.0.1:6379/0"


def redis_missing(host: str = "127.0.0.1", port: int = 6379) -> str | None:
    """Why row (7) cannot run (no Redis answering at host:port), or None."""
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return None
    except OSError as exc:
        return f"no Redis at {host}:{port} ({exc})"
    return f"no Redis at {host}:{port}"


@contextmanager
def celery_app(
    torch_python: str,
    port: int,
    workers: int,
    threads: int,
    env: dict[str, str],
    log: Path,
    queue: str | None = None,
) -> Iterator[dict[str, int]]:
    """Row (7): bench/celery_app.py's Celery worker (prefork, ``workers`` children, on
    ``torch_python``) and its FastAPI front (this python, no torch) on a queue of their own on the
    shared RabbitMQ, removed afterwards. Yields {name: pid} once a first job went through."""
    queue = queue or f"bench.celery.{uuid.uuid4().hex[:8]}"
    env = {
        **env,
        "BENCH_CELERY_QUEUE": queue,
        "BENCH_CELERY_BROKER": CELERY_BROKER,
        "BENCH_CELERY_BACKEND": CELERY_BACKEND,
        "CLASSIFIER_TORCH_THREADS": str(threads),
        "CLASSIFIER_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [
                torch_python,
                "-m",
                "celery",
                "-A",
                "bench.celery_app",
                "worker",
                "--concurrency",
                str(workers),
                "--loglevel",
                "WARNING",
                # No broadcast queues or events on the shared broker; they cost nothing per job.
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],  # fmt: skip
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        with process(
            [sys.executable, "-m", "bench.celery_app", "--port", str(port)],
            ready_path="/healthz",
            port=port,
            env=env,
            log=log,
        ) as front:
            yield {"fastapi front": front, "celery worker": worker.pid}
    finally:
        stop(worker)
        try:
            _delete_celery_queue(queue)
        except Exception as exc:  # noqa: BLE001 - the broker went away; the run's own error matters more
            print(f"could not delete the benchmark's Celery queue {queue}: {exc!r}", file=sys.stderr)


def _delete_celery_queue(queue: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(CELERY_BROKER.rstrip("/") + "/%2F"))
    try:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
    finally:
        connection.close()


__all__ = [
    "celery_app",
    "redis_missing",
    "redis_pid",
    "free_port",
    "system",
    "naive_app",
    "bentoml_app",
    "bentoml_available",
    "bentoml_version",
    "rabbitmq_pid",
    "default_torch_python",
    "shown_path",
    "torch_build",
]
