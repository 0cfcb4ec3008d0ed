"""A real Prometheus (Debian's `prometheus` binary) scraping a local stack, for the experiments
and the live monitoring tests.

Its configuration is monitoring/prometheus/local.yml with the addresses filled in: the gateway
and results ports of the stack at hand, the workers from a file_sd targets file (rewritten as
workers come and go), RabbitMQ's per-queue endpoint (optionally only one vhost), the rule file
loaded, and a shorter scrape and evaluation interval. The scrape jobs, their paths and params
stay those of local.yml, so what runs here is what the documentation tells users to run.
"""

from __future__ import annotations

import copy
import logging
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from devstack.paths import REPO

logger = logging.getLogger(__name__)

LOCAL_CONFIG = REPO / "monitoring" / "prometheus" / "local.yml"
RULES = REPO / "monitoring" / "prometheus" / "alerts.yaml"
JOBS = ("classifier-gateway", "classifier-results", "classifier-worker", "rabbitmq")


@dataclass(frozen=True)
class ScrapeTargets:
    gateway: str  # host:port
    results: str
    workers_file: Path  # file_sd JSON (experiments.targets)
    rabbitmq: str = "127.0.0.1:15692"
    vhost: str | None = None  # scrape only this vhost's queues (rabbitmq_prometheus `vhost` param)


def derive_config(targets: ScrapeTargets, *, interval_s: float = 1.0, template: Path = LOCAL_CONFIG) -> dict[str, Any]:
    """local.yml with ``targets`` in place of its default addresses."""
    config = copy.deepcopy(yaml.safe_load(template.read_text()))
    interval = _duration(interval_s)
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": interval,
        "scrape_timeout": _duration(interval_s * 0.9),
        "evaluation_interval": interval,
    }
    config["rule_files"] = [str(RULES)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    missing = [name for name in JOBS if name not in jobs]
    if missing:
        raise ValueError(f"{template}: scrape job(s) {missing} not found")
    jobs["classifier-gateway"]["static_configs"] = [{"targets": [targets.gateway]}]
    jobs["classifier-results"]["static_configs"] = [{"targets": [targets.results]}]
    jobs["classifier-worker"]["file_sd_configs"] = [
        {"files": [str(targets.workers_file)], "refresh_interval": interval}
    ]
    rabbitmq = jobs["rabbitmq"]
    rabbitmq["static_configs"] = [{"targets": [targets.rabbitmq]}]
    if targets.vhost is not None:
        rabbitmq["params"] = {**rabbitmq.get("params", {}), "vhost": [targets.vhost]}
    return config


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).is_file():
        raise RuntimeError("prometheus not found: install Debian's `prometheus` package (make setup does)")
    return found


class LocalPrometheus:
    """One Prometheus server process with its own storage directory; a context manager."""

    def __init__(self, config: dict[str, Any], work_dir: Path, port: int) -> None:
        self.config = config
        self.work_dir = work_dir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> LocalPrometheus:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.work_dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        log = (self.work_dir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.process.returncode}; see {self.work_dir}/prometheus.log"
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"prometheus not ready after {timeout_s} s")
            time.sleep(0.2)
        logger.info("prometheus ready at %s", self.url)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
