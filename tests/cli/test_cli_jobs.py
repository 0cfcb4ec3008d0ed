"""`classifier list | cancel | retry` through the entry point, against the real embedded system.

A failed job to retry is one of the stalled server (whose worker never starts), failed in its
store as a worker would record it."""

from __future__ import annotations

import json
import os
import subprocess

import httpx

from classifier_common.domain import JobError, utcnow
from classifier_common.store.sqlite import SqliteJobStore
from tests.cli.conftest import CLASSIFIER
from tests.client.conftest import stalled  # noqa: F401, F811 - the fixture: a server whose jobs stay queued
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"


def _failed_job(server: Server) -> str:
    """A job of the stalled server (its worker never starts) that has failed, as a worker records
    it, written to the server's own store."""
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH})
        assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    store = SqliteJobStore(server.log_path.parent / "jobs.db")
    try:
        store.start(job_id, utcnow())
        store.fail(job_id, JobError(code="internal_error", message="out of memory"), utcnow())
    finally:
        store.close()
    return job_id


def test_retry_makes_a_linked_job_and_list_shows_both(stalled: Server) -> None:  # noqa: F811
    classifier = _runner(stalled)
    failed = _failed_job(stalled)
    result = classifier("retry", failed, "--json")
    assert result.returncode == 0, result.stderr
    retry = json.loads(result.stdout)
    assert retry["retry_of"] == failed and retry["id"] != failed

    people = classifier("retry", failed)  # a job is retried once
    assert people.returncode == 3 and "retried already" in people.stderr, people.stderr

    listed = classifier("list", "--json", "--status", "failed", "--status", "queued", "--status", "running")
    assert listed.returncode == 0, listed.stderr
    jobs = {job["id"]: job for job in json.loads(listed.stdout)}
    assert jobs[failed]["retried_by"] == retry["id"]

    table = classifier("list", "--status", "failed", "--model", "efficientnet_lite0")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith(failed))
    assert "failed" in row and f"retried by {retry['id'][:8]}" in row and "goldfinch" in row


def test_list_is_newest_first_and_limited(classifier, server: Server) -> None:
    for _ in range(3):
        assert classifier("submit", "--image", GOLDFINCH).returncode == 0
    listed = classifier("list", "--json", "--limit", "2")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert len(jobs) == 2 and jobs[0]["created_at"] >= jobs[1]["created_at"]
    everything = json.loads(classifier("list", "--json", "--limit", "1000").stdout)
    assert [job["id"] for job in everything[:2]] == [job["id"] for job in jobs]
    bad = classifier("list", "--status", "done")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_retry_and_cancel_refusals_say_why(classifier, server: Server) -> None:
    done = classifier("submit", "--image", GOLDFINCH, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["id"]
    cancel = classifier("cancel", job_id)
    assert cancel.returncode == 3 and "only a queued job can be canceled" in cancel.stderr, cancel.stderr
    retry = classifier("retry", job_id)
    assert retry.returncode == 3 and "only a failed or canceled job" in retry.stderr, retry.stderr
    unknown = classifier("cancel", "0" * 32)
    assert unknown.returncode == 3 and "no job" in unknown.stderr, unknown.stderr


def test_cancel_a_queued_job_then_retry_it(stalled: Server) -> None:  # noqa: F811
    run = _runner(stalled)

    submitted = run("submit", "--image", GOLDFINCH, "--json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    canceled = run("cancel", job_id)
    assert canceled.returncode == 0 and "canceled" in canceled.stdout, canceled.stderr
    retried = run("retry", job_id)
    assert retried.returncode == 0, retried.stderr
    assert f"job {job_id} retried as job" in retried.stderr and "queued" in retried.stdout
    new_id = retried.stderr.split("retried as job ")[1].split()[0]
    assert run("cancel", new_id).returncode == 0  # the stalled queue is short


def _runner(server: Server):  # type: ignore[no-untyped-def]
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CLASSIFIER_URL": server.url, "COLUMNS": "120"}
        return subprocess.run([str(CLASSIFIER), *args], env=env, capture_output=True, text=True, timeout=120)

    return run
