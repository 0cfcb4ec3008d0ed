"""Decompression bombs against the real gateway process: small files of every accepted format,
each declaring an image just under the pixel limit (40 Mpx: hundreds of MB once decoded), sent
16 at once. The gateway checks them with bounded memory (header checks; a decode only for
small images, two at a time), stays under its pod's memory limit, and every job it accepts ends
in an outcome at the worker. The full figures are ``python -m bench.decode_bombs``."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.decode_bombs import bombs, gateway_limit_mib
from devstack.stack import Stack
from tests.utils.api import assert_error_shape, wait_for_job

MODEL = "efficientnet_lite0"


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_bombs_sent_16_at_once_stay_under_the_gateways_memory_limit(shared_stack: Stack) -> None:
    inputs = bombs()
    sent = list(itertools.islice(itertools.cycle(sorted(inputs)), 16))
    base = f"http://127.0.0.1:{shared_stack.gateway_port}"

    def upload(name: str) -> httpx.Response:
        with httpx.Client(base_url=base, timeout=120) as client:
            return client.post("/v1/jobs", files={"file": (name, inputs[name])}, data={"model": MODEL})

    with ThreadPoolExecutor(len(sent)) as pool:
        answers = dict(zip(sent, pool.map(upload, sent), strict=True))

    assert _peak_rss_mib(shared_stack.procs["gateway"].pid) < gateway_limit_mib()
    assert_error_shape(answers["png-over-limit"], 422, "invalid_image")
    results_url = f"http://127.0.0.1:{shared_stack.results_port}"
    with httpx.Client(base_url=results_url, timeout=30) as results:
        for name, answer in answers.items():
            if name == "png-over-limit":
                continue
            if answer.status_code == 422:  # its text chunks over the bound, or decoded (small) and damaged
                assert_error_shape(answer, 422, "invalid_image")
                continue
            assert answer.status_code == 202, (name, answer.text)
            job = wait_for_job(results, answer.headers["location"], timeout=120)
            # A blank image is classified; a damaged one fails alone.
            assert job["status"] == "succeeded" or job["error"]["code"] == "invalid_image", (name, job)
