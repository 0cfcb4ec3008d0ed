"""The code's layout stays as docs/development.md describes it: no module named after a standard
library one, one free_port and one repository-root constant (devstack), one Job factory for the
tests (tests/utils/jobs.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.paths import REPO

# Where the tools and the tests live: code that runs from a checkout.
TOOLS = ("bench/", "experiments/", "scripts/", "devstack/", "tests/")


def _tracked_python() -> list[str]:
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def _lines(paths: list[str], pattern: re.Pattern[str]) -> list[str]:
    return [
        f"{path}:{n}: {line.strip()}"
        for path in paths
        for n, line in enumerate((REPO / path).read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_no_module_is_named_after_a_standard_library_module() -> None:
    stdlib = set(sys.stdlib_module_names)
    found = [
        path
        for path in _tracked_python()
        if Path(path).stem in stdlib or any(part in stdlib for part in Path(path).parts[:-1])
    ]
    assert not found, f"named like a standard library module: {found}"


def test_one_free_port() -> None:
    defined = [line.split(":", 1)[0] for line in _lines(_tracked_python(), re.compile(r"^\s*def free_port\("))]
    assert defined == ["devstack/ports.py"], f"free_port is devstack.ports.free_port alone: {defined}"


# The checkout's root found from a file's own path ("parents[2]", "parent.parent", "dirname(...)/..").
REPO_ROOT = re.compile(
    r"Path\(__file__\)\S*(\.parents\[\d\]|\.parent\.parent)|os\.path\.dirname\(os\.path\.dirname\(__file__"
)


@pytest.mark.parametrize(
    ("line", "finds_the_root"),
    [
        ("REPO = Path(__file__).resolve().parents[2]", True),
        ("ROOT = Path(__file__).resolve().parent.parent", True),
        ("HERE = Path(__file__).resolve().parent", False),
        ("from devstack.paths import REPO", False),
    ],
)
def test_repo_root_pattern(line: str, finds_the_root: bool) -> None:
    assert bool(REPO_ROOT.search(line)) is finds_the_root


def test_one_repository_root_constant() -> None:
    tools = [path for path in _tracked_python() if path.startswith(TOOLS) and path != "tests/test_layout.py"]
    found = [line for line in _lines(tools, REPO_ROOT) if not line.startswith("devstack/paths.py:")]
    assert not found, "the checkout's root is devstack.paths.REPO:\n" + "\n".join(found)


def test_tests_build_jobs_with_the_one_factory() -> None:
    tests = [path for path in _tracked_python() if path.startswith("tests/") and path != "tests/utils/jobs.py"]
    found = _lines(tests, re.compile(r"(?<![\w.])Job\((?!\))"))
    assert not found, "tests build a Job with tests.utils.jobs.queued_job:\n" + "\n".join(found)


def test_the_rabbitmq_topology_is_declared_in_one_module() -> None:
    """Queues, exchanges and bindings are declared by broker/rabbitmq/topology.py alone (a
    passive declare, which only reads a queue's counts, is not a declaration)."""
    ours = [path for path in _tracked_python() if path.startswith(("libs/", "services/"))]
    declares = re.compile(r"\.(queue_declare|exchange_declare|queue_bind|exchange_bind)\((?!.*passive=True)")
    found = [line for line in _lines(ours, declares) if "/broker/rabbitmq/topology.py:" not in line]
    assert not found, "declared outside topology.py:\n" + "\n".join(found)
