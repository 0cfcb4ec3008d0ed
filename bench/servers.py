"""Starting and stopping what the load scenarios talk to: the system (scripts/stack.py, isolated
on the shared RabbitMQ with its own queue and SQLite file), the naive app and BentoML."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procstats import find_pid
from scripts.stack import Stack
from tests.utils.stack import delete_queues, free_port, isolated_stack

REPO = Path(__file__).resolve().parents[1]
BENTOML_VENV = REPO / ".tools" / "bentoml"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while _status(url) != 200:
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
def system(state_dir: Path, *, workers: int, env: dict[str, str]) -> Iterator[Stack]:
    """gateway + results + N workers as processes, no nginx (clients talk to the gateway and the
    results service directly, as the naive app's clients talk to it directly)."""
    stack = isolated_stack(
        state_dir,
        workers=workers,
        nginx=False,
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
            delete_queues(stack)
        except Exception as exc:  # noqa: BLE001 - the broker went away; the run's own error matters more
            print(f"could not delete the benchmark's queues: {exc!r}", file=sys.stderr)


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


def naive_app(port: int, threads: int, models_dir: Path, log: Path):  # noqa: ANN201
    return process(
        [
            sys.executable,
            "-m",
            "bench.naive_app",
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


def bentoml_version() -> str:
    found = sorted(BENTOML_VENV.glob("lib/python*/site-packages/bentoml-*.dist-info"))
    return found[0].name.removesuffix(".dist-info").split("-")[1] if found else "?"


def bentoml_available() -> str | None:
    """None when the BentoML virtualenv is there, else why not."""
    if not (BENTOML_VENV / "bin" / "bentoml").exists():
        return f"BentoML is not installed in {BENTOML_VENV.relative_to(REPO)} (make bench-tools)"
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


__all__ = ["free_port", "system", "naive_app", "bentoml_app", "bentoml_available", "bentoml_version", "rabbitmq_pid"]
