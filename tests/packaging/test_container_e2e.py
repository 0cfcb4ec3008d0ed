"""The checks `make container-e2e` (scripts/container_e2e.py) applies to what the containers
did: they must fail on a lost or doubly written job; and the build-output parsing that decides
which earlier build stages are obsolete."""

from __future__ import annotations

import json

import pytest

from scripts.container_e2e import check_one_outcome_each, layer_id, outcomes_written


def log(*records: tuple[str, str]) -> str:
    return "\n".join(json.dumps({"msg": msg, "job_id": job}) for msg, job in records) + "\nnot json\n"


def test_layer_ids_from_podman_build_output() -> None:
    assert layer_id("--> 9aee817e4c1\n") == "9aee817e4c1"
    assert layer_id("--> Using cache " + "a" * 64 + "\n") == "a" * 64
    assert layer_id("[1/2] STEP 3/9: RUN pip install x") is None
    assert layer_id("Successfully tagged localhost/classifier-worker:0.1.0") is None


def test_outcomes_are_counted_per_job_from_the_workers_json_logs() -> None:
    logs = log(("job succeeded", "a"), ("job failed: bad image", "b"), ("job requeued: x", "a"), ("job succeeded", "a"))
    assert outcomes_written(logs) == {"a": 2, "b": 1}


def test_every_job_succeeded_once_passes() -> None:
    jobs = {"a": ("succeeded", 1), "b": ("succeeded", 2)}
    line = check_one_outcome_each(["a", "b"], jobs, log(("job succeeded", "a"), ("job succeeded", "b")), "x")
    assert "lost 0" in line and "run more than once 1" in line


@pytest.mark.parametrize(
    ("jobs", "logs"),
    [
        ({"a": ("succeeded", 1), "b": ("running", 1)}, log(("job succeeded", "a"))),  # lost
        (
            {"a": ("succeeded", 1), "b": ("succeeded", 2)},
            log(("job succeeded", "a"), ("job succeeded", "b"), ("job succeeded", "b")),
        ),
        ({"a": ("succeeded", 1), "b": ("succeeded", 1)}, log(("job succeeded", "a"))),  # never logged
    ],
)
def test_a_lost_or_doubly_written_job_fails_the_run(jobs: dict, logs: str) -> None:
    with pytest.raises(AssertionError):
        check_one_outcome_each(["a", "b"], jobs, logs, "x")
