"""Both services' OpenAPI, fuzzed with schemathesis against the running processes (gateway and
results of the shared stack, each serving its own schema): no 5xx, and every response conforms
to the schema (status code, content type, headers, body).

The schemathesis CLI runs all its phases (examples, coverage, fuzzing, stateful) with every check
but one: positive_data_acceptance expects every schema-valid request to succeed, but a
schema-valid model or gallery name that does not exist is rightly a 422 (unknown_model,
unknown_image), and a well-formed job id that does not exist a 404. The seed is fixed so that CI
is repeatable; on a failure the output has the curl command that reproduces it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.reliability.accounting import report

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

EXAMPLES = 40  # per operation and phase: both services in well under 60 s
SEED = "20261122"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _fuzz(service: str, schema_url: str, base_url: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        schema_url,
        "--url",
        base_url,
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = run.stdout + run.stderr
    generated = re.search(r"(\d+) generated", output)
    report(f"FUZZ {service}: {generated.group(1) if generated else '?'} test cases, exit {run.returncode}")
    assert run.returncode == 0, output[-6000:]


def test_gateway_openapi(shared_stack: Stack, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{shared_stack.gateway_port}"
    _fuzz("gateway", f"{base}/openapi.json", base, tmp_path)


def test_results_openapi(shared_stack: Stack, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{shared_stack.results_port}"
    _fuzz("results", f"{base}/results/openapi.json", base, tmp_path)
