"""Each process's command line: ``--help`` says how it is configured and starts nothing; any other
argument is refused, instead of a server starting on its default port as if it had been obeyed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from classifier_common.command import parse_command_line
from devstack.paths import REPO

MODULES = {
    "classifier_standalone": "8000",
    "classifier_gateway": "8000",
    "classifier_results": "8001",
    "classifier_worker": "9100",
}


def test_no_argument_returns() -> None:
    parse_command_line("python -m x", "X.", 8000, [])


def test_help_names_the_settings_and_the_default_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_command_line("python -m x", "X alone.", 8001, ["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "X alone." in out and "CLASSIFIER_PORT" in out and "(default 8001)" in out
    assert "docs/configuration.md" in out


def test_an_argument_it_does_not_take_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_command_line("python -m x", "X.", 8000, ["--port", "9000"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --port 9000" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("module", "port"), MODULES.items())
def test_each_process_answers_help_without_starting(module: str, port: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert f"python -m {module}" in run.stdout and f"(default {port})" in run.stdout
    assert "Uvicorn running" not in run.stderr and not run.stderr
