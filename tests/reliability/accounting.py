"""Counting what happens to submissions while something breaks.

A :class:`Submitter` drives ``POST /v1/jobs`` from background threads. Every submission carries
its own ``Idempotency-Key`` (also sent as ``X-Request-ID``); a try that gets no answer at all
(connection refused or reset, timeout) is retried with the same key, as a client should, and
the first answer is final. :func:`settle` then waits for the accepted jobs to finish and counts:

- accepted: answered 202;           refused: answered 429 or 503 (deliberate back-pressure);
- completed: accepted and succeeded;  failed: accepted and failed;
- duplicated: jobs whose outcome a worker wrote more than once ("job succeeded" logged twice);
- lost: accepted and never finished;  unanswered: no answer after every retry;
- unexpected: any other answer (a 5xx other than 503, or a 4xx to a valid request);
- refused_existing: refused submissions that nevertheless left a job in the store;
- orphans: jobs in the store that no 202 announced.

Each :class:`Tally` prints one summary line; the conftest repeats them all at the end of the run.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import Stack

MODEL = "efficientnet_lite0"  # the cheapest real model: faults and load need volume, not accuracy
REFUSALS = frozenset({429, 503})
FINISHED = ("succeeded", "failed", "canceled")
# Every tally printed during the run, repeated in the terminal summary (conftest.py).
FIGURES: list[str] = []


def report(line: str) -> None:
    print(line, flush=True)
    FIGURES.append(line)


@dataclass
class Submission:
    key: str  # the Idempotency-Key and X-Request-ID of every try
    status: int | None = None  # the answer; None: never answered
    job_id: str | None = None
    tries: int = 0
    latency_s: float | None = None  # of the answered try
    answered_at: float | None = None  # time.monotonic() of the answer
    body: str = ""  # of a refusal or an unexpected answer
    retry_after: str | None = None  # the Retry-After header of the answer


def gallery_body(images: list[str], model: str = MODEL) -> Callable[[int], dict[str, Any]]:
    return lambda i: {"model": model, "image": images[i % len(images)]}


def mixed_body(images: list[str], gallery_dir: Path, model: str = MODEL) -> Callable[[int], dict[str, Any]]:
    """Every other submission a gallery name, the others the same photos uploaded (multipart),
    so that both kinds of message are in the queue when a fault lands."""
    uploads = {name: (gallery_dir / name).read_bytes() for name in images}

    def body(i: int) -> dict[str, Any]:
        name = images[i % len(images)]
        if i % 2 == 0:
            return {"model": model, "image": name}
        return {"model": model, "file": (f"upload-{name}", uploads[name], "image/jpeg")}

    return body


class Submitter:
    """``clients`` threads submitting until :meth:`stop`, or until ``limit`` submissions in all."""

    def __init__(
        self,
        base_url: str,
        body_for: Callable[[int], dict[str, Any]],
        *,
        clients: int = 2,
        pause_s: float = 0.05,
        limit: int | None = None,
        max_tries: int = 100,
        retry_pause_s: float = 0.2,
        timeout_s: float = 30.0,
        headers: dict[str, str] | None = None,
    ):
        self.base_url = base_url
        self.body_for = body_for
        self.pause_s = pause_s
        self.limit = limit
        self.max_tries = max_tries
        self.retry_pause_s = retry_pause_s
        self.timeout_s = timeout_s
        self.headers = headers or {}
        self.submissions: list[Submission] = []
        self._lock = threading.Lock()
        self._count = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def start(self) -> Submitter:
        for thread in self._threads:
            thread.start()
        return self

    def _next_index(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or (self.limit is not None and self._count >= self.limit):
                return None
            self._count += 1
            return self._count - 1

    def _client(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while (index := self._next_index()) is not None:
                self._submit_one(client, index)
                if self.pause_s:
                    self._stop.wait(self.pause_s)

    def _submit_one(self, client: httpx.Client, index: int) -> Submission:
        submission = Submission(key=uuid.uuid4().hex)
        body = self.body_for(index)
        # A submission once begun is finished even after stop(): a retry in flight must get its
        # answer, or it would be counted as unanswered for no reason.
        while submission.tries < self.max_tries:
            submission.tries += 1
            started = time.perf_counter()
            headers = {"Idempotency-Key": submission.key, "X-Request-ID": submission.key, **self.headers}
            try:
                if "file" in body:  # an upload: multipart, the other fields as form fields
                    fields = {k: v for k, v in body.items() if k != "file"}
                    response = client.post("/v1/jobs", files={"file": body["file"]}, data=fields, headers=headers)
                else:
                    response = client.post("/v1/jobs", json=body, headers=headers)
            except httpx.TransportError:
                time.sleep(self.retry_pause_s)
                continue
            submission.latency_s = time.perf_counter() - started
            submission.answered_at = time.monotonic()
            submission.status = response.status_code
            submission.retry_after = response.headers.get("retry-after")
            if response.status_code == 202:
                submission.job_id = response.json()["id"]
            else:
                submission.body = response.text[:300]
            break
        with self._lock:
            self.submissions.append(submission)
        return submission

    def burst(self, n: int) -> None:
        """``n`` submissions at once from the calling thread (counted with the others): a backlog
        that keeps every worker busy for a while."""
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            for _ in range(n):
                with self._lock:
                    self._count += 1
                    index = self._count - 1
                self._submit_one(client, index)

    def count(self, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.submissions if status is None or s.status == status)

    def join(self, timeout: float) -> list[Submission]:
        """Wait for ``limit`` submissions to be made (without stopping early)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "submitters still running"
        return list(self.submissions)

    def stop(self, timeout: float = 60.0) -> list[Submission]:
        self._stop.set()
        return self.join(timeout)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)


def read_json_lines(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every JSON log record in these files; a line cut short by a SIGKILL is skipped."""
    records = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    return records


def _store_rows(db_path: Path) -> dict[str, tuple[str, str | None, int]]:
    """{job id: (status, idempotency_key, attempts)} read straight from the SQLite file."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        return {
            row[0]: (row[1], row[2], row[3])
            for row in db.execute("SELECT id, status, idempotency_key, attempts FROM jobs")
        }


@dataclass
class Tally:
    fault: str
    accepted: int
    refused: int
    completed: int
    failed: int
    duplicated: int
    lost: int
    unanswered: int
    refused_existing: int
    orphans: int
    unexpected: list[tuple[int | None, str]] = field(default_factory=list)
    redelivered: int = 0  # accepted jobs that needed more than one attempt
    extra: str = ""

    def line(self) -> str:
        return (
            f"RELIABILITY {self.fault}: accepted={self.accepted} refused={self.refused} "
            f"completed={self.completed} duplicated={self.duplicated} lost={self.lost} "
            f"(failed={self.failed} unanswered={self.unanswered} unexpected={len(self.unexpected)} "
            f"refused_existing={self.refused_existing} orphans={self.orphans} redelivered={self.redelivered})"
            + (f" {self.extra}" if self.extra else "")
        )

    def assert_nothing_lost_or_duplicated(self) -> None:
        assert self.unexpected == [], self.unexpected[:5]
        assert self.lost == 0 and self.duplicated == 0 and self.failed == 0, self.line()
        assert self.unanswered == 0, self.line()
        assert self.refused_existing == 0, self.line()
        assert self.orphans == 0, self.line()
        assert self.completed == self.accepted, self.line()


def settle(
    fault: str,
    submissions: list[Submission],
    *,
    db_path: Path,
    worker_logs: Callable[[], list[Path]],
    results_url: str | None = None,
    timeout: float = 90.0,
) -> Tally:
    """Wait (up to ``timeout``) for every accepted job to finish, then count. ``results_url``:
    also read each accepted job through the results service and check it says the same."""
    accepted = {s.job_id for s in submissions if s.status == 202}
    assert None not in accepted
    refused_keys = {s.key for s in submissions if s.status in REFUSALS}
    deadline = time.monotonic() + timeout
    while True:
        rows = _store_rows(db_path)
        unfinished = [j for j in accepted if j not in rows or rows[j][0] not in FINISHED]
        if not unfinished or time.monotonic() > deadline:
            break
        time.sleep(0.25)

    if results_url is not None:
        with httpx.Client(base_url=results_url, timeout=10) as client:
            for job_id in accepted:
                response = client.get(f"/v1/jobs/{job_id}")
                stored = rows.get(job_id)
                assert response.status_code == (200 if stored else 404), response.text
                if stored:
                    assert response.json()["status"] == stored[0], (job_id, response.text)

    written = collections.Counter(
        r.get("job_id") for r in read_json_lines(worker_logs()) if r.get("msg") == "job succeeded"
    )
    keys_in_store = {row[1] for row in rows.values()}
    tally = Tally(
        fault=fault,
        accepted=len(accepted),
        refused=sum(1 for s in submissions if s.status in REFUSALS),
        completed=sum(1 for j in accepted if rows.get(j, ("",))[0] == "succeeded"),
        failed=sum(1 for j in accepted if rows.get(j, ("",))[0] == "failed"),
        duplicated=sum(1 for j in accepted if written[j] > 1),
        lost=len(unfinished),
        unanswered=sum(1 for s in submissions if s.status is None),
        refused_existing=len(refused_keys & keys_in_store),
        orphans=len(set(rows) - accepted),
        unexpected=[(s.status, s.body) for s in submissions if s.status not in REFUSALS | {202, None}],
        redelivered=sum(1 for j in accepted if rows.get(j, ("", None, 0))[2] > 1),
    )
    report(tally.line())
    return tally


def settle_stack(fault: str, stack: Stack, submissions: list[Submission], timeout: float = 90.0) -> Tally:
    """:func:`settle` for a stack started by tests/utils/stack.py: its SQLite file, its workers'
    logs, its results service."""
    return settle(
        fault,
        submissions,
        db_path=stack.state_dir / "jobs.db",
        worker_logs=lambda: sorted(stack.state_dir.glob("worker-*.log")),
        results_url=f"http://127.0.0.1:{stack.results_port}",
        timeout=timeout,
    )


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}
