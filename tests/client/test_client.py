"""classifier_client.Client against the real one-process system: what each call returns, the
long-poll wait, cancel, typed errors carrying the API's error body, retries after Retry-After,
and submit_many streaming results as jobs finish."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from classifier_client import (
    BadRequest,
    Client,
    Conflict,
    InvalidInput,
    NotFound,
    Retry,
    TooManyRequests,
    Unreachable,
    WaitTimeout,
)
from devstack.ports import free_port
from tests.client.conftest import STALLED_RETRY_AFTER_S
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"
TENCH = "n01440764_tench.JPEG"
NO_RETRY = Retry(attempts=0)


def _job_gets(server: Server) -> float:
    """GET /v1/jobs/{id} requests the server has answered (its own metric)."""
    lines = httpx.get(f"{server.url}/metrics").text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("classifier_http_requests_total{")
        and 'route="/v1/jobs/{job_id}"' in line
        and 'method="GET"' in line
    )


def test_models_and_images_are_the_apis_lists(server: Server) -> None:
    with Client(server.url) as client:
        assert client.models() == httpx.get(f"{server.url}/v1/models").json()
        images = client.images()
    assert images == httpx.get(f"{server.url}/v1/images").json()
    assert GOLDFINCH in {image["name"] for image in images}


def test_submit_then_wait_gives_the_finished_job(server: Server) -> None:
    with Client(server.url) as client:
        job = client.submit("efficientnet_lite0", image=GOLDFINCH)
        assert job["status"] == "queued" and job["status_url"] == f"/v1/jobs/{job['id']}"
        done = client.wait(job["id"], timeout=60)
        assert done["status"] == "succeeded"
        assert done["result"] is not None and done["result"]["predictions"][0]["label"] == "goldfinch"
        assert client.get(job) == done  # by id, status URL or job alike
        assert client.get(f"{server.url}{job['status_url']}") == done


def test_submit_a_file_as_path_bytes_or_file_object(server: Server, seeded: tuple[Path, Path]) -> None:
    path = seeded[1] / ORANGE
    with Client(server.url) as client, path.open("rb") as handle:
        jobs = [
            client.submit(file=path),
            client.submit(file=path.read_bytes(), filename="orange.jpg"),
            client.submit(file=handle),
        ]
        done = [client.wait(job, timeout=60) for job in jobs]
    assert [job["image"] for job in done] == [ORANGE, "orange.jpg", ORANGE]
    assert all(job["source"] == "upload" and job["status"] == "succeeded" for job in done)
    assert all(job["result"]["predictions"][0]["label"] == "orange" for job in done)  # type: ignore[index]


def test_submit_takes_exactly_one_source(server: Server) -> None:
    with Client(server.url) as client, pytest.raises(TypeError, match="one of image= .* or file="):
        client.submit(image=GOLDFINCH, file=b"...")


def test_an_idempotency_key_makes_one_job(server: Server) -> None:
    with Client(server.url) as client:
        first = client.submit(image=TENCH, idempotency_key="client-test-tench")
        again = client.submit(image=TENCH, idempotency_key="client-test-tench")
    assert again["id"] == first["id"]


def test_errors_are_typed_and_carry_the_api_error_body(server: Server) -> None:
    with Client(server.url, retry=NO_RETRY) as client:
        with pytest.raises(InvalidInput) as refused:
            client.submit("no_such_model", image=GOLDFINCH)
        with pytest.raises(NotFound) as missing:
            client.get("0123456789abcdef0123456789abcdef")
    error = refused.value
    assert isinstance(error, BadRequest) and error.status == 422 and error.code == "unknown_model"
    assert error.body is not None and error.body["error"]["code"] == "unknown_model"
    assert "no_such_model" in error.message and error.request_id
    assert missing.value.status == 404 and missing.value.body["error"]["code"] == "not_found"  # type: ignore[index]


def test_an_unreachable_server_is_its_own_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with Client(dead, retry=Retry(attempts=2, backoff_s=0.1)) as client:
        started = time.monotonic()
        with pytest.raises(Unreachable, match=f"cannot reach {dead}"):
            client.models()
    assert time.monotonic() - started >= 0.3  # two retries, 0.1 then 0.2 s apart


def test_wait_long_polls_and_times_out_with_the_last_state(stalled: Server) -> None:
    with Client(stalled.url) as client:
        job = client.submit(image=GOLDFINCH)
        before = _job_gets(stalled)
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as timed_out:
            client.wait(job, timeout=2)
        elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 10
    assert timed_out.value.job["id"] == job["id"] and timed_out.value.job["status"] == "queued"
    assert _job_gets(stalled) - before == 1  # one held request, not a polling loop


def test_cancel_a_queued_job(stalled: Server) -> None:
    with Client(stalled.url) as client:
        job = client.submit(image=ORANGE)
        assert client.cancel(job["id"])["status"] == "canceled"
        assert client.wait(job, timeout=5)["status"] == "canceled"
        assert client.cancel(job)["status"] == "canceled"  # again: the same answer


def test_cancel_a_finished_job_is_a_conflict(server: Server) -> None:
    with Client(server.url) as client:
        done = client.wait(client.submit(image=ORANGE), timeout=60)
        with pytest.raises(Conflict) as conflict:
            client.cancel(done)
    assert conflict.value.status == 409 and conflict.value.details == {"status": "succeeded"}


def test_submit_many_streams_each_job_as_it_finishes(server: Server) -> None:
    images = [GOLDFINCH, ORANGE, TENCH, "no_such_image.jpg"]
    with Client(server.url) as client:
        outcomes = {outcome.item: outcome for outcome in client.submit_many(images=images, concurrency=3, timeout=60)}
    assert set(outcomes) == set(images)
    refused = outcomes.pop("no_such_image.jpg")
    assert refused.job is None and isinstance(refused.error, BadRequest) and refused.error.code == "unknown_image"
    for name, outcome in outcomes.items():
        assert outcome.error is None and outcome.job is not None, outcome
        assert outcome.job["status"] == "succeeded" and outcome.job["image"] == name


def test_submit_with_wait_gives_the_finished_job_in_one_request(server: Server, seeded: tuple[Path, Path]) -> None:
    gets = _job_gets(server)
    with Client(server.url) as client:
        job = client.submit(image=GOLDFINCH, wait=30)
        upload = client.submit(file=seeded[1] / ORANGE, wait=30)
    assert job["status"] == "succeeded" and job["result"]["predictions"][0]["label"] == "goldfinch"  # type: ignore[index]
    assert upload["status"] == "succeeded" and upload["result"]["predictions"][0]["label"] == "orange"  # type: ignore[index]
    assert _job_gets(server) == gets  # no GET: the submission's answer had the result


def test_submit_many_needs_no_get_when_jobs_finish_within_the_submissions_wait(server: Server) -> None:
    gets = _job_gets(server)
    with Client(server.url) as client:
        outcomes = list(client.submit_many(images=[GOLDFINCH, ORANGE, TENCH], concurrency=3, timeout=60))
    assert sorted(o.job["image"] for o in outcomes if o.job and o.job["status"] == "succeeded") == sorted(
        [GOLDFINCH, ORANGE, TENCH]
    )
    assert _job_gets(server) == gets


def test_submit_with_wait_answers_a_queued_job_when_the_wait_runs_out(stalled: Server) -> None:
    with Client(stalled.url) as client:
        started = time.monotonic()
        job = client.submit(image=ORANGE, wait=0.5)
        assert time.monotonic() - started >= 0.5 and job["status"] == "queued"
        # submit_many's timeout bounds the submission's wait and the long-poll after it together.
        started = time.monotonic()
        [outcome] = client.submit_many(images=[ORANGE], timeout=1.0)
        took = time.monotonic() - started
        assert isinstance(outcome.error, WaitTimeout) and outcome.job is not None, outcome
        assert 1.0 <= took < 3.0, took
        for queued in (job, outcome.job):
            client.cancel(queued)  # the stalled queue is short


# Last in the file: it fills the stalled server's queue for good.
def test_a_full_queue_is_retried_after_its_retry_after(stalled: Server) -> None:
    with Client(stalled.url, retry=NO_RETRY) as client, pytest.raises(TooManyRequests) as full:
        for _ in range(20):
            client.submit(image=GOLDFINCH)
    assert full.value.retry_after == STALLED_RETRY_AFTER_S and full.value.code == "queue_full"

    with Client(stalled.url, retry=Retry(attempts=2)) as client:
        started = time.monotonic()
        with pytest.raises(TooManyRequests):
            client.submit(image=GOLDFINCH)
    # Two retries, each after the server's Retry-After (the default backoff would be 0.5 + 1 s).
    assert time.monotonic() - started >= 2 * STALLED_RETRY_AFTER_S


def test_a_retry_after_beyond_the_limit_is_not_waited_for(stalled: Server) -> None:
    with Client(stalled.url, retry=Retry(attempts=3, max_delay_s=0.5)) as client:
        started = time.monotonic()
        with pytest.raises(TooManyRequests):
            client.submit(image=GOLDFINCH)
    assert time.monotonic() - started < STALLED_RETRY_AFTER_S
