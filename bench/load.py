"""A closed-loop load generator: N clients, each sending its next request as soon as the last
one is answered (so the concurrency is exactly N), for a warm-up and then a measured window.

Clients are threads with one keep-alive ``http.client`` connection per server: the lightest
Python client there is, because on a 2-core machine the load generator competes with the system
under test for the same CPUs (its CPU time is reported as the ``client`` process).
"""

from __future__ import annotations

import http.client
import itertools
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection to one server; reconnects after an error."""

    def __init__(self, base_url: str, timeout: float = 60.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=body, headers=headers or {})
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return response.status, response, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def multipart(fields: dict[str, str], file_field: str, file_name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file_name}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def json_body(response_data: bytes) -> dict:
    return json.loads(response_data)


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    total_completed: int = 0  # warm-up and window: what the processes' CPU time was spent on

    @property
    def completed(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        return self.completed / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_s, q)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0..100; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, round(q * 10) - 1))]


# One job of a client: it gets its own state (connections) and a global sequence number, and
# returns normally when the job succeeded; any exception counts as an error.
Job = Callable[[dict, int], None]


def closed_loop(job: Job, clients: int, warmup_s: float, duration_s: float, max_errors: int = 50) -> LoadResult:
    """Run ``clients`` closed-loop clients; measure the jobs that finish inside the window
    [start + warmup_s, start + warmup_s + duration_s] (throughput = those / duration_s)."""
    counter = itertools.count()
    lock = threading.Lock()
    result = LoadResult(clients=clients, duration_s=duration_s)
    start = time.perf_counter()
    window_start, window_end = start + warmup_s, start + warmup_s + duration_s
    stop = threading.Event()

    def client() -> None:
        state: dict = {}
        try:
            while not stop.is_set():
                n = next(counter)
                began = time.perf_counter()
                if began >= window_end:
                    return
                try:
                    job(state, n)
                except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                    with lock:
                        result.errors += 1
                        result.first_error = result.first_error or repr(exc)[:300]
                        if result.errors >= max_errors:
                            stop.set()
                    continue
                ended = time.perf_counter()
                with lock:
                    result.total_completed += 1
                if window_start <= ended <= window_end:
                    with lock:
                        result.latencies_s.append(ended - began)
        finally:
            for value in state.values():
                if isinstance(value, Connection):
                    value.close()

    threads = [threading.Thread(target=client, name=f"client-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=warmup_s + duration_s + 120)
    if result.errors >= max_errors:
        raise HttpError(f"{result.errors} errors, first: {result.first_error}")
    return result
