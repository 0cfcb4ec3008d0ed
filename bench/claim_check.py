"""Where the claim check pays: an upload carried inside the queue message against the same upload
stored once in the job store with a reference in the message, for upload sizes 16 KiB .. 10 MiB.

    python -m bench.claim_check          # every size: bench/results/claim_check.{json,md}
    python -m bench.claim_check --smoke  # two sizes, a few messages each, nothing written

Both paths run the product's own parts: the RabbitMQ publisher (publisher confirms) and consumer
on a quorum queue with the product's topology, on a RabbitMQ node of the benchmark's own (the
shared broker's memory is never read or filled), and the SQLite job store in a temporary
directory (synchronous=NORMAL, WAL: what `make run` and a one-host stack use).

Per size and path, one message in flight at a time, the two paths' messages alternating:
- submit ms: what the gateway spends before its 202 (store the upload, then publish and await the
  broker's confirm; inline: publish only), median;
- total ms: submit, then until a consumer holds the bytes (message delivered and decoded, upload
  read back from the store), median;
- broker bytes per message: the node's memory (erlang:memory(total)) with K messages of that size
  queued, less its memory with none, divided by K. A quorum queue holds a message's body in
  memory while it is in the write-ahead log (RabbitMQ's default 512 MiB here; the chart's
  ``rabbitmq.walMaxSizeBytes`` is 64 MiB), then only on disk: this is what a recent message costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classifier_common.broker import Consumer, Publisher, connect_consumer, connect_publisher
from classifier_common.config import Settings
from classifier_common.domain import Job, JobStatus, new_job_id, utcnow
from classifier_common.messages import JobMessage, decode
from classifier_common.store import JobStore, open_store
from devstack.paths import REPO
from devstack.rabbitmq_node import rabbit_node

RESULTS = REPO / "bench" / "results"
KIB = 1024
SIZES = [16 * KIB, 64 * KIB, 256 * KIB, 1024 * KIB, 4096 * KIB, 10240 * KIB]
SMOKE_SIZES = [16 * KIB, 1024 * KIB]
QUEUE = "bench.claim-check.jobs"
# Messages per reading: enough for a median, at most this many bytes at once in the broker.
LATENCY_BYTES = 96 * 1024 * KIB
MEMORY_BYTES = 64 * 1024 * KIB  # well within the write-ahead log


def _job() -> Job:
    return Job(
        id=new_job_id(),
        status=JobStatus.queued,
        model="efficientnet_lite0",
        image="upload.bin",
        source="upload",
        image_sha256="0" * 64,
        created_at=utcnow(),
    )


def _send(store: JobStore, publisher: Publisher, payload: bytes, stored: bool) -> Job:
    job = store.create(_job())
    if stored:
        store.put_upload(job.id, payload)
        body = JobMessage.for_job(job, upload_ref=job.id).encode()
    else:
        body = JobMessage.for_job(job, payload).encode()
    publisher.publish(body, message_id=job.id)
    return job


def _receive(store: JobStore, consumer: Consumer) -> bytes:
    delivery = consumer.get(timeout=30)
    assert delivery is not None, "no message within 30 s"
    message = decode(delivery.body)
    data = message.upload_bytes() if message.upload_ref is None else store.get_upload(message.upload_ref)
    assert data is not None
    delivery.ack()
    return data


def latency(store: JobStore, publisher: Publisher, consumer: Consumer, payload: bytes, n: int):
    """Median (submit ms, total ms) of each path. The two paths alternate, message by message, so
    that both meet the same load from whatever else the machine runs."""
    submit: dict[bool, list[float]] = {False: [], True: []}
    total: dict[bool, list[float]] = {False: [], True: []}
    for i in range(2 * n):
        stored = bool(i % 2)
        started = time.perf_counter()
        _send(store, publisher, payload, stored)
        sent = time.perf_counter()
        assert len(_receive(store, consumer)) == len(payload)
        done = time.perf_counter()
        submit[stored].append((sent - started) * 1000)
        total[stored].append((done - started) * 1000)
    return {stored: (statistics.median(submit[stored]), statistics.median(total[stored])) for stored in (False, True)}


def _node_memory(node) -> int:
    return int(node.ctl("eval", "erlang:garbage_collect(), erlang:memory(total).").strip())


def broker_bytes(node, store: JobStore, publisher: Publisher, consumer: Consumer, payload: bytes, stored: bool, k: int):
    time.sleep(1)
    before = _node_memory(node)
    for _ in range(k):
        _send(store, publisher, payload, stored)
    time.sleep(1)
    after = _node_memory(node)
    consumer.start()
    for _ in range(k):
        _receive(store, consumer)
    return (after - before) / k


def _machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def run(sizes: list[int], smoke: bool) -> dict[str, object]:
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-claim-") as tmp,
        rabbit_node(Path(tmp) / "rabbit") as node,
    ):
        settings = Settings(
            broker_url=node.url,
            queue_name=QUEUE,
            store_url=f"sqlite:///{tmp}/jobs.db",
            queue_max_length=10_000,
            prefetch=1,
        )
        store = open_store(settings.store_url)
        publisher = connect_publisher(settings)
        for size in sizes:
            payload = os.urandom(size)
            n = 3 if smoke else max(10, min(100, LATENCY_BYTES // size))
            k = 2 if smoke else max(4, min(1000, MEMORY_BYTES // size))
            consumer = connect_consumer(settings)
            consumer.start()
            latency(store, publisher, consumer, payload, 1)  # warm: connections, pages
            medians = latency(store, publisher, consumer, payload, n)
            consumer.close()
            for stored in (False, True):
                consumer = connect_consumer(settings)  # not started: the K messages stay queued
                per_message = broker_bytes(node, store, publisher, consumer, payload, stored, k)
                consumer.close()
                submit_ms, total_ms = medians[stored]
                row = {
                    "bytes": size,
                    "path": "stored" if stored else "inline",
                    "submit_ms": round(submit_ms, 2),
                    "total_ms": round(total_ms, 2),
                    "broker_bytes_per_message": round(per_message),
                    "messages": n,
                    "queued_for_memory": k,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        publisher.close()
        store.close()
    return {
        "date": dt.date.today().isoformat(),
        "command": "python -m bench.claim_check" + (" --smoke" if smoke else ""),
        "machine": _machine(),
        "store": "SQLite (synchronous=NORMAL, WAL)",
        "broker": "RabbitMQ quorum queue, publisher confirms, own node",
        "rows": rows,
    }


def markdown(result: dict[str, object]) -> str:
    machine = result["machine"]
    assert isinstance(machine, dict)
    lines = [
        f"Claim check, {result['date']}, {machine['cpu']}, {machine['cores']} cores: `{result['command']}`.",
        f"Store: {result['store']}; broker: {result['broker']}. Medians, one message in flight, the paths alternating.",
        "",
        "| upload | path | submit ms | total ms | broker KiB per message |",
        "|---:|---|---:|---:|---:|",
    ]
    rows = result["rows"]
    assert isinstance(rows, list)
    for row in rows:
        lines.append(
            f"| {row['bytes'] // KIB:,} KiB | {row['path']} | {row['submit_ms']:.2f} | {row['total_ms']:.2f} "
            f"| {row['broker_bytes_per_message'] / KIB:,.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="two sizes, a few messages, nothing written")
    args = parser.parse_args()
    result = run(SMOKE_SIZES if args.smoke else SIZES, args.smoke)
    text = markdown(result)
    print(text)
    if not args.smoke:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "claim_check.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "claim_check.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
