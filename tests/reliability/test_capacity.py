"""Load the stack claims to hold behind its nginx (scripts/stack.py, docs/guarantees.md): 500
long-polls (``GET /v1/jobs/{id}?wait=30``) at once plus 300 slow clients (a request head
trickling in a line a second), with none dropped, and the jobs' accounting: 0 lost, 0
duplicated.

The jobs are queued while no worker runs, so every long-poll is held open; then a worker starts
and drains them, and each long-poll is answered when its job finishes. The CI runs a smaller
load (200 + 100); ``RELIABILITY_FULL_SIZE=1`` runs the claimed one:

    RELIABILITY_FULL_SIZE=1 .venv/bin/python -m pytest tests/reliability/test_capacity.py -s
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx

from devstack.stack import LONG_POLL_CAPACITY, NGINX_WORKER_CONNECTIONS, Stack, nginx_conf
from tests.reliability.accounting import (
    MODEL,
    Submitter,
    gallery_body,
    percentiles,
    report,
    settle_stack,
    wait_until,
)
from tests.utils.stack import running_stack

FULL_SIZE = os.environ.get("RELIABILITY_FULL_SIZE") == "1"
LONG_POLLS, SLOW_CLIENTS = (500, 300) if FULL_SIZE else (200, 100)
HOLD_S = 5.0  # every long-poll is open, every slow client trickling, before the worker starts


async def _long_poll(base_url: str, job_id: str) -> tuple[str, float | None]:
    """Poll until the job is finished: ("ok", seconds from its finished_at to the answer), or
    (why it was dropped, None). A client of its own: one pool of hundreds of connections costs
    the client more per answer than the server spends."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await _poll(client, job_id)


async def _poll(client: httpx.AsyncClient, job_id: str) -> tuple[str, float | None]:
    while True:
        try:
            response = await client.get(f"/v1/jobs/{job_id}", params={"wait": 30})
        except httpx.TransportError as exc:
            return f"{type(exc).__name__}", None
        if response.status_code != 200:
            return f"HTTP {response.status_code}", None
        job = response.json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            finished = datetime.fromisoformat(job["finished_at"]).timestamp()
            return "ok", time.time() - finished


async def _slow_client(port: int, lines: int) -> str:
    """A request head sent one line a second, then its answer read: "ok" or why it failed."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(lines):
            await asyncio.sleep(1)
            writer.write(b"X-Slow-%d: %s\r\n" % (i, b"x" * 20))
            await writer.drain()
        writer.write(b"Connection: close\r\n\r\n")
        await writer.drain()
        status = await reader.readline()
        await reader.read()
        writer.close()
        return "ok" if status.startswith(b"HTTP/1.1 200") else status.decode(errors="replace").strip()
    except OSError as exc:
        return type(exc).__name__


async def _hold_and_drain(stack: Stack, job_ids: list[str]) -> tuple[list[tuple[str, float | None]], list[str]]:
    polls = [asyncio.create_task(_long_poll(stack.base_url, job_id)) for job_id in job_ids]
    slow = [asyncio.create_task(_slow_client(stack.port, int(HOLD_S) + 10)) for _ in range(SLOW_CLIENTS)]
    await asyncio.sleep(HOLD_S)
    early = [task.result()[0] for task in polls if task.done()]
    assert early == [], f"{len(early)} long-polls ended before any worker ran: {early[:5]}"
    stack.start_worker(0)
    return await asyncio.gather(*polls), await asyncio.gather(*slow)


def test_long_polls_and_slow_clients_through_nginx(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    assert LONG_POLLS + SLOW_CLIENTS <= LONG_POLL_CAPACITY
    with running_stack(
        tmp_path, seeded, workers=0, nginx=True, CLASSIFIER_MODELS=MODEL, CLASSIFIER_TORCH_THREADS="1"
    ) as stack:
        images = sorted(p.name for p in seeded[1].iterdir() if p.suffix.lower() in {".jpeg", ".jpg"})
        submitter = Submitter(stack.base_url, gallery_body(images), clients=8, pause_s=0, limit=LONG_POLLS)
        submissions = submitter.start().join(timeout=120)
        job_ids = [s.job_id for s in submissions if s.status == 202]
        assert len(job_ids) == LONG_POLLS, {s.status for s in submissions}

        started = time.monotonic()
        polls, slow = asyncio.run(_hold_and_drain(stack, job_ids))
        drained_s = time.monotonic() - started - HOLD_S
        wait_until(lambda: stack.procs["worker-0"].poll() is None, 1, "the worker to be running")
        tally = settle_stack(f"{LONG_POLLS} long-polls + {SLOW_CLIENTS} slow clients via nginx", stack, submissions)

    dropped = [outcome for outcome, _ in polls if outcome != "ok"]
    slow_failed = [outcome for outcome in slow if outcome != "ok"]
    delays = percentiles([delay for _, delay in polls if delay is not None])
    answered, slow_answered = len(polls) - len(dropped), len(slow) - len(slow_failed)
    report(f"  long-polls: {answered} answered, {len(dropped)} dropped; slow clients: {slow_answered} answered")
    report(
        f"  long-poll answer after its job finished p50 {delays['p50']:.2f} s, p99 {delays['p99']:.2f} s; "
        f"{LONG_POLLS} jobs drained in {drained_s:.1f} s after the worker started"
    )
    assert dropped == [], dropped[:10]
    assert slow_failed == [], slow_failed[:10]
    tally.assert_nothing_lost_or_duplicated()


def test_nginx_is_sized_for_the_claimed_load(tmp_path: Path) -> None:
    """Each of nginx's workers alone holds the claimed requests (two connections each)."""
    conf = nginx_conf(state_dir=tmp_path, port=1, gateway_port=2, results_port=3)
    (connections,) = map(int, re.findall(r"worker_connections (\d+);", conf))
    (files,) = map(int, re.findall(r"worker_rlimit_nofile (\d+);", conf))
    assert connections == NGINX_WORKER_CONNECTIONS >= 2 * LONG_POLL_CAPACITY >= 2 * (500 + 300)
    assert files >= connections
    (tmp_path / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)], capture_output=True
    )
    assert checked.returncode == 0, checked.stderr.decode()
