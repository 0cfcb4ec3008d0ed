"""Which python runs the benchmark's torch processes: torch's CPU build (.tools/bench-cpu, as the
worker images ship it) when installed, else the harness's own, said in the report's header."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import report, servers
from bench.__main__ import parse_args
from devstack.isolated import isolated_stack
from devstack.stack import Stack


def test_the_cpu_venv_is_the_default_when_installed(tmp_path: Path) -> None:
    python = tmp_path / "bench-cpu" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    assert servers.default_torch_python(python) == (str(python), "")


def test_without_the_cpu_venv_the_harness_python_is_used_and_said(tmp_path: Path) -> None:
    python, note = servers.default_torch_python(tmp_path / "bench-cpu" / "bin" / "python")
    assert python == sys.executable
    assert "is missing (make bench-tools)" in note


def test_an_explicit_torch_python_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse_args(["--smoke", "--torch-python", "/opt/other/bin/python"])
    assert (args.torch_python, args.torch_python_note) == ("/opt/other/bin/python", "")
    monkeypatch.chdir(tmp_path)  # a relative path is taken from where the harness was started
    assert parse_args(["--torch-python", "venv/bin/python"]).torch_python == str(tmp_path / "venv/bin/python")


def test_torch_build_asks_that_python() -> None:
    torch = pytest.importorskip("torch")
    info = servers.torch_build(sys.executable)
    assert info["torch"] == torch.__version__
    assert info["torch_build"] == (f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU")


def test_workers_start_on_the_stacks_worker_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: dict[str, list[str]] = {}
    monkeypatch.setattr(Stack, "_spawn", lambda self, name, args, *_: spawned.__setitem__(name, args))
    stack = isolated_stack(tmp_path, workers=1, nginx=False, worker_python="/cpu/bin/python")
    stack.start_worker(0)
    stack.start_service("gateway")
    assert spawned["worker-0"] == ["/cpu/bin/python", "-m", "classifier_worker"]
    assert spawned["gateway"][0] == sys.executable  # no torch in the gateway
    assert Stack().worker_python == sys.executable


def test_the_header_names_the_torch_the_torch_processes_ran() -> None:
    meta = {
        "cpu_model": "cpu",
        "cores": 2,
        "memory_gib": 1.0,
        "python": "3.11.7",
        "torch": "2.14.1+cu130",
        "torch_build": "CUDA 13.0",
        "torch_python": ".venv/bin/python",
        "torch_python_note": ".tools/bench-cpu is missing (make bench-tools)",
        "model": "m",
        "torch_threads": 1,
        "workers": 2,
        "images": 3,
        "duration_s": 1.0,
        "warmup_s": 0.3,
        "loadavg_before": "0 0 0",
        "when": "now",
        "commit": "abc",
    }
    header = report.markdown(meta, [], []).splitlines()[0]
    assert "torch 2.14.1+cu130 (CUDA 13.0 build, .venv/bin/python) [.tools/bench-cpu is missing" in header
