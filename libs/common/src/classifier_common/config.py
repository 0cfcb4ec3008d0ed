"""The one place configuration is read: environment variables prefixed ``CLASSIFIER_``.

Every service builds a :class:`Settings` at start-up; nothing else reads ``os.environ``.
List values are comma separated (``CLASSIFIER_MODELS=efficientnet_lite0,resnet18``).
Worker pools are ``pool=model,model;pool=model`` (``CLASSIFIER_POOLS``, docs/pools.md).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from classifier_common.catalog import CATALOG, SYNTHETIC_MODEL, is_synthetic

CommaList = Annotated[list[str], NoDecode]
PoolMap = Annotated[dict[str, list[str]], NoDecode]

DEFAULT_POOL = "default"
# A pool's name becomes part of Kubernetes object names and label values: a DNS label, short
# enough to leave room for the release's prefix.
_POOL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$")


def parse_pools(text: str) -> dict[str, list[str]]:
    """``lite=efficientnet_lite0,efficientnet_lite1;big=efficientnet_lite2`` as {pool: [models]}.
    Empty text: no pools given. Only the shape is checked here; :class:`Settings` checks names."""
    pools: dict[str, list[str]] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        name, sep, models = entry.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"pool entry {entry!r} is not name=model,model (pools are separated by ';')")
        if name in pools:
            raise ValueError(f"pool {name!r} is given twice")
        pools[name] = [model.strip() for model in models.split(",") if model.strip()]
    return pools


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", extra="ignore")

    # Where jobs go and where they are kept. memory:// is the embedded in-process queue.
    broker_url: str = "memory://"
    store_url: str = "sqlite:///./data/jobs.db"

    # Read-only data (PersistentVolumes on Kubernetes).
    models_dir: Path = Path("data/models")
    gallery_dir: Path = Path("data/gallery")
    # Models a worker loads; empty means every model whose weights are in models_dir. With pools
    # (below) each pool's list replaces it.
    models: CommaList = Field(default_factory=list)
    # Worker pools (docs/pools.md): each a named set of models served by its own workers from its
    # own queue. Unset: one pool `default` serving `models`. Read the same by every service.
    pools: PoolMap = Field(default_factory=dict)
    # Workers only: the pool this worker serves (its models, its queue).
    pool: str = DEFAULT_POOL
    # Whether CLASSIFIER_POOLS was given; otherwise `pools` is the one implicit pool.
    _pools_given: bool = PrivateAttr(default=False)

    # HTTP: each service has its own default port (gateway 8000, results 8001, worker 9100).
    host: str = "127.0.0.1"
    port: int | None = None
    # A request's line and headers must arrive within this time and size (classifier_common.server):
    # a client reaching a service directly cannot hold connections open or send megabytes of headers.
    http_head_timeout_s: float = Field(default=10.0, gt=0)
    http_max_head_bytes: int = Field(default=16 * 1024, ge=1024)

    # Queue topology and delivery. Each pool has its queue `<queue_name>.<pool>` (queue_for_pool).
    queue_name: str = "classifier.jobs"
    # The embedded (memory://) queue keeps each accepted message in a file here until it is acked,
    # so a restart of `make run` loses nothing. Empty: not durable (tests).
    spool_dir: Path | None = Path("data/queue")
    queue_max_length: int = Field(default=10_000, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    prefetch: int = Field(default=4, ge=1)  # >= max_batch, or batches can never fill
    broker_retry_after_s: int = Field(default=5, ge=1)
    # RabbitMQ's management API (http://user:pass@host:15672), read only by GET /v1/stats for the
    # messages delivered to workers and not acked yet, which AMQP does not report. Empty: not read.
    rabbitmq_management_url: str | None = None

    # Worker.
    # Job threads per worker (per pool in the one-process system), sharing its deliveries: on a GPU
    # several decode their batches while one runs the model. On a CPU one worker per core is faster.
    worker_threads: int = Field(default=1, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    # What runs each model's forward pass (docs/performance.md, "Runtimes"): auto takes the fastest
    # runtime that agrees with fp32 torch on the gallery in a check at start-up; a named one is
    # checked too (torch, the reference, is not) and the worker does not start if it fails.
    runtime: Literal["auto", "torch", "torch-bf16", "torch-cuda", "onnxruntime", "onnxruntime-int8"] = "auto"
    # Where a worker makes the ONNX exports the seed step did not (the models volume is read-only
    # to workers). Empty: a folder in the system's temporary directory.
    runtime_cache_dir: Path | None = None
    # Up to max_batch of the messages already waiting run as one forward pass; with no wait a lone
    # job is never delayed (docs/performance.md: +15 % images/s for saturated CPU workers).
    max_batch: int = Field(default=4, ge=1)
    max_batch_wait_ms: int = Field(default=0, ge=0)
    heartbeat_s: float = Field(default=5.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    # Scaling experiments only (experiments/, docs/metrics.md): set, it adds the catalog entry
    # `synthetic_sleep`, a stand-in model that takes this many milliseconds per image and runs
    # no network. Unset (always, outside experiments), that model does not exist.
    synthetic_service_ms: int | None = Field(default=None, ge=1)

    # Gateway.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # A batch submission (POST /v1/batches): at most this many items, and this many bytes of
    # uploads in all (each file also within max_upload_bytes). The default stays under the front
    # doors' body limits (devstack nginx 64 MiB, the chart's 4 x max_upload_bytes).
    batch_max_items: int = Field(default=100, ge=1, le=1000)
    batch_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    # The claim check: an upload larger than this is stored once in the job store and its queue
    # message carries a reference, so large uploads never fill the broker's memory; smaller ones
    # travel inside the message. 0 stores every upload; max_upload_bytes or more stores none.
    # The default is where storing starts to cost less than carrying (docs/performance.md).
    claim_check_bytes: int = Field(default=256 * 1024, ge=0)
    api_keys: CommaList = Field(default_factory=list)
    # With API keys on, the queued jobs one key may have at once (429 beyond; 0: no bound), so
    # that one client cannot fill the queue (queue_max_length) for everyone.
    max_queued_per_client: int = Field(default=1000, ge=0)
    cors_origins: CommaList = Field(default_factory=list)

    # Callbacks (classifier_common.callbacks): a job submitted with a callback_url is POSTed there
    # once finished, its body signed with HMAC-SHA256 under callback_secret. No secret: a
    # callback_url is refused (422). Attempts are retried with doubling delays, capped.
    callback_secret: SecretStr | None = None
    callback_max_attempts: int = Field(default=5, ge=1)
    callback_backoff_s: float = Field(default=2.0, gt=0)
    callback_backoff_max_s: float = Field(default=300.0, gt=0)
    callback_timeout_s: float = Field(default=5.0, gt=0)
    callback_poll_s: float = Field(default=1.0, gt=0)
    # Loopback, private and link-local targets are refused unless set (local development, tests):
    # a client must not make the service call the cluster's own endpoints.
    callback_allow_private: bool = False

    # Store.
    retention_s: int = Field(default=7 * 24 * 3600, ge=60)
    purge_interval_s: int = Field(default=300, ge=1)
    result_cache: bool = True

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("spool_dir", "callback_secret", "runtime_cache_dir", "rabbitmq_management_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("models", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("pools", mode="before")
    @classmethod
    def _parse_pools(cls, value: object) -> object:
        return parse_pools(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_pools(self) -> Settings:
        if not self.pools:
            self.pools = {DEFAULT_POOL: list(self.models)}
            self._pools_given = False
            return self
        self._pools_given = True
        known = {*CATALOG, SYNTHETIC_MODEL}
        owner: dict[str, str] = {}
        for name, models in self.pools.items():
            if not _POOL_NAME.match(name):
                raise ValueError(
                    f"pool name {name!r}: lowercase letters, digits and '-', starting and ending with a "
                    "letter or digit, at most 30 characters"
                )
            if not models:
                raise ValueError(f"pool {name!r} serves no models")
            for model in models:
                if model not in known and not is_synthetic(model):
                    raise ValueError(f"pool {name!r}: unknown model {model!r} (known: {', '.join(sorted(known))})")
                if model in owner and owner[model] != name:
                    raise ValueError(f"model {model!r} is in two pools: {owner[model]!r} and {name!r}")
                if model in owner:
                    raise ValueError(f"pool {name!r} lists {model!r} twice")
                owner[model] = name
        return self

    @property
    def pools_given(self) -> bool:
        """CLASSIFIER_POOLS was set; otherwise ``pools`` is the one implicit pool ``default``."""
        return self._pools_given

    def queue_for_pool(self, pool: str) -> str:
        """The queue a pool's jobs wait in: ``classifier.jobs.default``, ``classifier.jobs.lite``."""
        return f"{self.queue_name}.{pool}"

    def pool_for_model(self, model: str) -> str | None:
        """The pool serving ``model``; None when no pool does (a submission is refused, 422).
        The implicit pool with no model list serves every model (whose weights are present)."""
        for name, models in self.pools.items():
            if model in models:
                return name
        if not self._pools_given and not self.pools[DEFAULT_POOL]:
            return DEFAULT_POOL
        return None

    def pool_models(self, pool: str) -> list[str]:
        """The models a worker of ``pool`` loads; empty: every model whose weights are present
        (the implicit pool without CLASSIFIER_MODELS). An unknown pool is a start-up error."""
        if pool not in self.pools:
            raise ValueError(f"pool {pool!r} is not among the pools: {', '.join(self.pools)} (CLASSIFIER_POOLS)")
        return list(self.pools[pool])

    @property
    def delivery_limit(self) -> int:
        """Deliveries of one message the broker allows before dead-lettering it: one more than
        max_attempts, so that a worker taking a job whose earlier attempts all died can still
        record it as failed instead of the broker silently dropping it."""
        return self.max_attempts + 1

    @property
    def embedded(self) -> bool:
        """The whole system in one process: in-process queue, local store, workers as threads."""
        return self.broker_url.startswith("memory://")


@lru_cache
def get_settings() -> Settings:
    return Settings()
