"""A scale-down never kills a worker mid-job, with the chart's own numbers.

The worker runs as a real process with CLASSIFIER_SHUTDOWN_GRACE_S as the chart renders it and
the synthetic model taking SERVICE_S per job, so SIGTERM surely lands while a job runs. What a
pod deletion does to it: preStop (a sleep, if the chart renders one), then SIGTERM, then SIGKILL
once the rendered terminationGracePeriodSeconds have passed since the pod was told to stop. The
worker must stop consuming, finish the jobs it holds (the one running and the ones prefetched,
CLASSIFIER_PREFETCH), ack them and exit 0 well before that; jobs still in the queue are left to the next worker."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier_common.catalog import SYNTHETIC_MODEL
from devstack.stack import Stack
from tests.k8s.chart import one, render
from tests.utils.stack import running_stack, submit_gallery_jobs

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SERVICE_S = 3


@pytest.fixture(scope="module")
def chart_timing() -> tuple[float, float, float]:
    """(preStop sleep or 0, CLASSIFIER_SHUTDOWN_GRACE_S, terminationGracePeriodSeconds) as rendered."""
    objects = render()
    pod = one(objects, "Deployment", "classifier-worker-default")["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0].get("lifecycle", {}).get("preStop")
    sleep_s = (
        float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", pre_stop["exec"]["command"][-1]).group(1)) if pre_stop else 0.0
    )
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    grace_s = float(env["CLASSIFIER_SHUTDOWN_GRACE_S"])
    return sleep_s, grace_s, float(pod["terminationGracePeriodSeconds"])


@pytest.fixture
def stack(tmp_path: Path, seeded: tuple[Path, Path], chart_timing: tuple[float, float, float]) -> Iterator[Stack]:
    with running_stack(
        tmp_path,
        seeded,
        workers=1,
        CLASSIFIER_MODELS=SYNTHETIC_MODEL,
        CLASSIFIER_SYNTHETIC_SERVICE_MS=str(SERVICE_S * 1000),
        CLASSIFIER_SHUTDOWN_GRACE_S=str(chart_timing[1]),
        CLASSIFIER_PREFETCH="2",
        CLASSIFIER_RESULT_CACHE="false",
    ) as stack:
        yield stack


def test_sigterm_mid_job_finishes_it_within_the_rendered_grace_period(
    stack: Stack, chart_timing: tuple[float, float, float]
) -> None:
    pre_stop_s, _, termination_grace_s = chart_timing
    ids, results = submit_gallery_jobs(stack, SYNTHETIC_MODEL, 3)
    deadline = time.monotonic() + 30
    while results.get(f"/v1/jobs/{ids[0]}").json()["status"] != "running":
        assert time.monotonic() < deadline, "the first job never started"
        time.sleep(0.05)

    # The pod is deleted: preStop (its sleep is the kubelet's business; counted below), SIGTERM.
    stopped_at = time.monotonic()
    exit_code = stack.kill("worker-0", signal.SIGTERM)
    drain_s = time.monotonic() - stopped_at
    assert exit_code == 0
    assert pre_stop_s + drain_s < termination_grace_s
    first = results.get(f"/v1/jobs/{ids[0]}").json()
    assert first["status"] == "succeeded", first  # finished, not killed
    assert first["attempts"] == 1

    # Whatever the stopped worker did not hold stayed queued; the next worker finishes it.
    stack.start_worker(1)
    stack.wait_ready(names=["worker-1"])
    for job_id in ids[1:]:
        job = results.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        assert job["status"] == "succeeded", job
