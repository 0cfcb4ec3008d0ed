"""A small client of Prometheus' HTTP query API, and the queries the experiments sample.

The backlog is read with exactly the query prometheus-adapter runs for the worker HPA
(:mod:`experiments.adapter_query`), so the emulated autoscaler sees what the real one would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from experiments import adapter_query

# Deliveries that reached a final state (as the classifier:jobs_finished recording rule counts
# them, minus skips: a skipped redelivery is not a job finishing).
COMPLETED_OUTCOMES = "succeeded|failed"


class PromQLError(RuntimeError):
    """Prometheus refused or failed the query (parse error, bad range...)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusClient:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def query(self, expr: str, *, at: float | None = None) -> list[Sample]:
        """Instant query (at ``at``, a Unix time, or now). A scalar result is one unlabelled sample."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        response = self._http.get("/api/v1/query", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType', response.status_code)}: {body.get('error', response.text)}")
        data = body["data"]
        if data["resultType"] == "vector":
            return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        raise PromQLError(f"unexpected result type {data['resultType']!r} for {expr!r}")

    def value(self, expr: str) -> float | None:
        """The sum of the result's samples, None when the result is empty (no series)."""
        samples = [s.value for s in self.query(expr) if not math.isnan(s.value)]
        return sum(samples) if samples else None

    def close(self) -> None:
        self._http.close()


def backlog_query(queue: str, namespace: str | None = None) -> str:
    """The adapter's classifier_queue_backlog query for an HPA selecting ``queue``."""
    rule = adapter_query.external_rule(adapter_query.BACKLOG_METRIC)
    return adapter_query.render_metrics_query(rule, {"queue": queue}, namespace=namespace)


def completed_rate_query(window: str = "10s", namespace: str | None = None, models: Sequence[str] | None = None) -> str:
    """Jobs finishing per second; ``models``: only those models' (a pool's throughput: the pool
    serves them and nobody else does)."""
    matchers = f'outcome=~"{COMPLETED_OUTCOMES}"'
    if models:
        matchers += ',model=~"' + "|".join(re.escape(m) for m in models) + '"'
    if namespace is not None:
        matchers += f',namespace="{namespace}"'
    return f"sum(rate(classifier_jobs_processed_total{{{matchers}}}[{window}]))"
