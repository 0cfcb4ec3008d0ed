"""The least CPU per job that any system of this design spends outside its workers, on this machine,
and so the highest (3) saturated / (2) ratio it could reach here.

    python -m bench.floor                 # 12 s of HTTP load, 1000 messages
    python -m bench.floor --duration 3 --messages 100
    python -m bench.floor --rate 120      # every part driven at 120 jobs/s, as a system at that rate

At saturation every process shares the same cores, so the system does at most
``2000 / (w + outside)`` images/s against (2)'s ``2000 / w``, where ``w`` is (2)'s CPU per image
and ``outside`` is the CPU per job of everything that is not a forward pass. This measures the
parts of ``outside`` that the design cannot do without, each doing nothing more than it must:

    http server    a FastAPI app (uvicorn, httptools, uvloop, as the services run) that parses the
                   multipart upload and answers with a result, as the gateway answers a
                   submit-and-wait (POST /v1/jobs?wait=N): no store, no broker
    http client    the benchmark's own client (bench.load) making that request
    broker         one confirmed persistent publish of the upload to the quorum queue, one
                   delivery and its ack, by the system's own publisher and consumer (this process)
    rabbitmq       RabbitMQ's CPU for that publish, delivery and ack
    store          the job's SQLite writes and read: create, start, finish, one get

It prints each part, their sum and the ratio ceiling ``w / (w + sum)``, with ``w`` taken from
bench/results/latest.json (or ``--w``). The real system spends more than this (logging, metrics,
the finished-job notice, checks); the ceiling is an upper bound.

By default each part runs as fast as it can (saturated). With ``--rate R`` each is driven at R jobs
a second, the rate a system at saturation reaches with its workers taking most of the cores
(``make bench`` passes its row 3-sat's): a part that handles one job per wake-up instead of many
costs more per job (the same server answering 120 uploads a second spends about twice the CPU per
upload that it spends answering 2,600; docs/performance.md, *The floor*), and no system of this
design at that rate can spend less.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from devstack.paths import REPO
from devstack.ports import free_port

app = FastAPI()


@app.post("/v1/jobs")
async def submit(request: Request) -> JSONResponse:
    form = await request.form()
    data = await form["file"].read()  # type: ignore[union-attr]
    job_id = uuid.uuid4().hex
    return JSONResponse(
        {"id": job_id, "status": "succeeded", "bytes": len(data), "result": {"predictions": [{"label": "x"}]}},
        headers={"Location": f"/v1/jobs/{job_id}"},
    )


class Pacer:
    """Spaces one caller's jobs ``1 / rate`` seconds apart, the first after ``offset_s``; a caller
    that falls behind goes on at once, without catching up in a burst. No rate: no wait."""

    def __init__(self, rate: float | None, offset_s: float = 0.0):
        self.period = 1.0 / rate if rate else 0.0
        self.next = time.perf_counter() + offset_s

    def wait(self) -> None:
        if not self.period:
            return
        now = time.perf_counter()
        if self.next > now:
            time.sleep(self.next - now)
            now = self.next
        self.next = now + self.period


def http_parts(duration_s: float, clients: int, gallery_dir: Path, rate: float | None = None) -> tuple[float, float]:
    """(server, client) CPU ms per job: a POST upload answered with its result, at ``clients``
    closed-loop clients, together at most ``rate`` requests a second (None: as fast as they can)."""
    from bench import servers
    from bench.images import load_gallery
    from bench.load import Connection
    from bench.scenarios import Row, run_load, upload_body

    images = load_gallery(gallery_dir, None)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--port", str(port), "--log-level", "warning"]
        with servers.process(
            args + ["--no-access-log"], ready_path="/docs", port=port, env={}, log=Path(tmp) / "log"
        ) as pid:
            url = f"http://127.0.0.1:{port}"

            def job(state: dict, n: int) -> None:
                connection = state.setdefault("c", Connection(url))
                pacer = state.get("pacer")
                if pacer is None:  # each client at its share of the rate, their first requests spread over a period
                    pacer = state["pacer"] = Pacer(rate and rate / clients, n % clients / rate if rate else 0.0)
                pacer.wait()
                body, content_type = upload_body("m", images, n, b"floor")
                status, _, _ = connection.request("POST", "/v1/jobs", body, {"Content-Type": content_type})
                if status != 200:
                    raise RuntimeError(f"POST answered {status}")

            row = run_load(
                Row("floor", "bare FastAPI"), job, {"server": pid}, clients=clients, warmup_s=2.0, duration_s=duration_s
            )
    cpu = {process["name"]: process["cpu_ms_per_image"] for process in row.processes}
    return cpu["server"], cpu["client"]


def broker_parts(messages: int, size: int, rate: float | None = None) -> tuple[float, float]:
    """(this process, RabbitMQ) CPU ms per message: confirmed publish, delivery, ack; at most
    ``rate`` publishes a second (None: each as soon as the last is confirmed)."""
    from bench import servers
    from bench.procstats import cpu_seconds
    from classifier_common.broker.rabbitmq import RabbitConsumer, RabbitPublisher
    from classifier_common.config import Settings
    from devstack.stack import DEFAULT_BROKER, delete_job_queues

    queue = f"classifier.floor.{uuid.uuid4().hex[:8]}"
    settings = Settings(broker_url=os.environ.get("CLASSIFIER_BROKER_URL", DEFAULT_BROKER), queue_name=queue)
    publisher, consumer = RabbitPublisher(settings), RabbitConsumer(settings)
    rabbit = servers.rabbitmq_pid()
    body = os.urandom(size)
    try:
        consumer.start()
        publisher.publish(body, message_id="warm-up")
        done = threading.Event()

        def consume() -> None:
            for _ in range(messages + 1):
                delivery = consumer.get(timeout=30)
                if delivery is None:
                    raise RuntimeError("a message did not arrive")
                delivery.ack()
            done.set()

        thread = threading.Thread(target=consume, daemon=True)
        ours0, theirs0 = time.process_time(), cpu_seconds(rabbit) if rabbit else 0.0
        thread.start()
        pacer = Pacer(rate)
        for n in range(messages):
            pacer.wait()
            publisher.publish(body, message_id=str(n))
        if not done.wait(60):
            raise RuntimeError("the consumer did not get every message")
        ours, theirs = time.process_time() - ours0, (cpu_seconds(rabbit) - theirs0) if rabbit else float("nan")
    finally:
        consumer.close()
        publisher.close()
        delete_job_queues(settings.broker_url, queue)
    return ours / messages * 1000, theirs / messages * 1000


def store_part(jobs: int, rate: float | None = None) -> float:
    """CPU ms per job of the store calls a job needs: create, start, finish, one get; at most
    ``rate`` jobs a second (None: back to back)."""
    from classifier_common.domain import Job, JobResult, JobStatus, Prediction, new_job_id, utcnow
    from classifier_common.store.sqlite import SqliteJobStore

    result = JobResult(
        predictions=[Prediction(label="x", class_index=0, score=1.0)], model_version="v", inference_ms=1.0
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteJobStore(Path(tmp) / "jobs.db")
        started = time.process_time()
        pacer = Pacer(rate)
        for _ in range(jobs):
            pacer.wait()
            job = Job(
                id=new_job_id(), status=JobStatus.queued, model="m", image="i", source="upload",
                image_sha256="ab" * 32, created_at=utcnow(),
            )  # fmt: skip
            store.create(job)
            store.start(job.id, utcnow())
            store.finish(job.id, result, utcnow())
            store.get(job.id)
        cpu = time.process_time() - started
        store.close()
    return cpu / jobs * 1000


def measure(
    *, duration_s: float, clients: int, messages: int, size: int, gallery_dir: Path, rate: float | None = None
) -> dict[str, float]:
    """Each part's CPU ms per job, in the order the module's docstring lists them; each part
    driven at ``rate`` jobs a second (None: saturated)."""
    server, client = http_parts(duration_s, clients, gallery_dir, rate)
    ours, rabbit = broker_parts(messages, size, rate)
    store = store_part(messages, rate)
    return {"http server": server, "http client": client, "broker clients": ours, "rabbitmq": rabbit, "store": store}


def _latest_w() -> float | None:
    try:
        rows = json.loads((REPO / "bench" / "results" / "latest.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return None
    return next((row["cpu_ms_per_image"] for row in rows if row["key"] == "2"), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of HTTP load")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=108_000, help="upload size (the gallery's mean)")
    parser.add_argument("--gallery-dir", type=Path, default=REPO / "data" / "gallery")
    parser.add_argument("--w", type=float, default=None, help="(2)'s CPU ms per image (default: latest.json)")
    parser.add_argument(
        "--rate", type=float, default=None, help="jobs/s each part is driven at (default: as fast as it can)"
    )
    args = parser.parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be above 0")
    parts = measure(
        duration_s=args.duration,
        clients=args.clients,
        messages=args.messages,
        size=args.bytes,
        gallery_dir=args.gallery_dir,
        rate=args.rate,
    )
    print("each part " + (f"driven at {args.rate:g} jobs/s" if args.rate else "saturated"))
    for name, ms in parts.items():
        print(f"{name:<16}{ms:7.2f} ms CPU per job")
    outside = sum(parts.values())
    print(f"{'outside workers':<16}{outside:7.2f} ms CPU per job, at the least")
    w = args.w if args.w is not None else _latest_w()
    if w:
        print(f"(2) w = {w:.2f} ms per image: (3)/(2) can reach at most {w / (w + outside):.2f} here")
    print(f"make bench's target: the system's CPU per job outside its workers <= {1.5 * outside:.2f} ms (1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
