"""A server told to stop (SIGTERM, as Kubernetes stops a pod) first answers every request that waits
for a job — a submit-and-wait, a long-poll — with the job as it stands, instead of holding the
shutdown for up to 30 s and then cutting them off when the grace period for requests in flight
ends. The one-process server, whose one pool can never start (its second model has no weights),
so every job stays queued."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx

from classifier_common.catalog import get_spec
from tests.utils.server import embedded_server

GOLDFINCH = "n01531178_goldfinch.JPEG"
JOB = {"model": "efficientnet_lite0", "image": GOLDFINCH}
GRACE_S = 10  # the server's grace period for requests in flight (classifier_common.server.run)


def test_requests_waiting_for_a_job_are_answered_when_the_server_stops(
    tmp_path: Path, seeded: tuple[Path, Path]
) -> None:
    models_dir, gallery_dir = seeded
    only_lite0 = tmp_path / "models"
    only_lite0.mkdir()
    weights = get_spec("efficientnet_lite0").weights_file
    shutil.copy(models_dir / weights, only_lite0 / weights)
    answers: dict[str, httpx.Response | Exception] = {}

    def call(name: str, method: str, url: str, **kwargs: object) -> None:
        try:
            answers[name] = httpx.request(method, url, timeout=60, **kwargs)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the test reports it
            answers[name] = exc

    with embedded_server(
        tmp_path,
        only_lite0,
        gallery_dir,
        wait_for="/healthz",
        CLASSIFIER_POOLS="stalled=efficientnet_lite0,efficientnet_lite1",
    ) as server:
        queued = httpx.post(f"{server.url}/v1/jobs", json=JOB, timeout=10)
        assert queued.status_code == 202, queued.text
        threads = [
            threading.Thread(
                target=call,
                args=("submit", "POST", f"{server.url}/v1/jobs"),
                kwargs={"params": {"wait": 30}, "json": JOB},
            ),
            threading.Thread(
                target=call,
                args=("long-poll", "GET", f"{server.url}{queued.headers['location']}"),
                kwargs={"params": {"wait": 30}},
            ),
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)  # both are waiting now
        assert not answers, answers
        stopping = time.monotonic()
    # Leaving the block sent SIGTERM and waited for the process to exit.
    for thread in threads:
        thread.join(30)
    answered_after = time.monotonic() - stopping
    submit, long_poll = answers["submit"], answers["long-poll"]
    assert isinstance(submit, httpx.Response), f"the waiting submission was cut off: {submit!r}"
    assert submit.status_code == 202 and submit.json()["status"] == "queued", submit.text
    assert isinstance(long_poll, httpx.Response), f"the waiting long-poll was cut off: {long_poll!r}"
    assert long_poll.status_code == 200 and long_poll.json()["status"] == "queued", long_poll.text
    assert answered_after < GRACE_S, f"answered {answered_after:.1f} s after SIGTERM: held until the grace period"
