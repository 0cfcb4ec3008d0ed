"""The worker's lifecycle: load models, start consuming, batch deliveries, heartbeat, reconcile
dead letters (:mod:`classifier_worker.reconciler`), drain on stop.

Used two ways: as its own process (``python -m classifier_worker``) and as threads inside the
one-process system (:class:`classifier_worker.component.WorkerComponent`, composed by
``classifier_standalone``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from socket import gethostname

from classifier_common import metrics
from classifier_common.broker import Consumer, DeadLetterConsumer, Delivery, connect_dead_letters
from classifier_common.catalog import available_models, get_spec, register_synthetic_models
from classifier_common.config import Settings
from classifier_common.domain import utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.store import JobStore
from classifier_worker import allocator, export, onnx_only
from classifier_worker.models import LoadedModel
from classifier_worker.processor import Processor
from classifier_worker.reconciler import Reconciler
from classifier_worker.runtimes import ONNX_RUNTIMES, torch_installed
from classifier_worker.selection import select_runtime
from classifier_worker.synthetic import SyntheticModel

log = logging.getLogger(__name__)


class _Tracked:
    """Remembers whether a delivery was settled, so a bug never leaves one unacked forever."""

    def __init__(self, delivery: Delivery):
        self._delivery = delivery
        self.body = delivery.body
        self.redelivered = delivery.redelivered
        self.delivery_count = delivery.delivery_count
        self.settled = False

    def ack(self) -> None:
        if self._settle():
            self._delivery.ack()

    def reject(self, requeue: bool) -> None:
        if self._settle():
            self._delivery.reject(requeue)

    def _settle(self) -> bool:
        """True the first time: a delivery is settled once (a second ack of a tag would make
        RabbitMQ close the channel, and every delivery held on it with it)."""
        if self.settled:
            return False
        self.settled = True
        metrics.IN_FLIGHT.dec()
        return True


def load_models(settings: Settings) -> dict[str, LoadedModel]:
    """The models of the pool this worker serves, loaded and on their runtime. Without torch
    installed, each from its seeded ONNX export (:mod:`classifier_worker.onnx_only`). Raises
    RuntimeUnavailable (or RuntimeError) when the worker cannot serve them."""
    allocator.keep_freed_memory()  # before the first job's buffers are allocated
    with_torch = torch_installed()
    if with_torch:
        import torch

        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        threads = torch.get_num_threads()
    else:
        onnx_only.check_runtime(settings.runtime)
        threads = settings.torch_threads or 0  # 0: ONNX Runtime's default
        log.info("torch is not installed: every model runs on ONNX Runtime from its seeded export")
    if settings.synthetic_service_ms:  # scaling experiments only
        register_synthetic_models(m for models in settings.pools.values() for m in models)
    # Exactly the models of the pool this worker serves (CLASSIFIER_POOL); the implicit pool
    # without a model list serves every model whose weights are present.
    names = settings.pool_models(settings.pool) or [spec.name for spec in available_models(settings.models_dir)]
    if not names:
        raise RuntimeError(f"no model weights in {settings.models_dir}: run the seed step (make setup)")
    loaded: dict[str, LoadedModel] = {}
    for name in names:
        spec = get_spec(name)
        if spec.family == "synthetic" and settings.synthetic_service_ms:
            loaded[name] = SyntheticModel.create(spec, settings.synthetic_service_ms)
            metrics.MODEL_LOADED.labels(name).set(1)
            continue
        if not spec.available(settings.models_dir):
            raise RuntimeError(f"weights for {name} not found at {spec.weights_path(settings.models_dir)}")
        if not with_torch:
            loaded[name] = onnx_only.load(spec, settings.models_dir, threads, settings.runtime)
            metrics.MODEL_LOADED.labels(name).set(1)
            continue
        loaded[name] = LoadedModel.load(spec, settings.models_dir)
        select_runtime(
            loaded[name],
            settings.runtime,
            models_dir=settings.models_dir,
            gallery_dir=settings.gallery_dir,
            cache_dir=settings.runtime_cache_dir or export.default_cache_dir(),
            threads=threads,
        )
        metrics.MODEL_LOADED.labels(name).set(1)
    if with_torch:
        release_torch_modules(loaded)
    else:  # the ONNX Runtime sessions auto did not choose are gone: their memory goes back
        allocator.return_freed_memory()
    return loaded


def release_torch_modules(loaded: dict[str, LoadedModel]) -> bool:
    """When ONNX Runtime runs every loaded model, nothing runs the torch modules any more: free
    their weights (tens of MB per model) and give the memory back. True when released."""
    if not loaded or any(model.runtime.name not in ONNX_RUNTIMES for model in loaded.values()):
        return False
    for model in loaded.values():
        model.release_module()
    allocator.return_freed_memory()
    log.info("torch modules released: ONNX Runtime runs every loaded model", extra={"models": sorted(loaded)})
    return True


class Worker:
    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        store: JobStore,
        models: dict[str, LoadedModel],
        *,
        threads: int = 1,
        worker_id: str | None = None,
        dead_letters: DeadLetterConsumer | None = None,
    ):
        self.settings = settings
        self.consumer = consumer
        self.store = store
        self.models = models
        self.worker_id = worker_id or f"{gethostname()}-{uuid.uuid4().hex[:6]}"
        self.processor = Processor(
            store,
            models,
            Path(settings.gallery_dir),
            max_attempts=settings.max_attempts,
            result_cache=settings.result_cache,
            worker_id=self.worker_id,
        )
        self.reconciler = Reconciler(store, dead_letters or connect_dead_letters(settings), consumer.announce_finished)
        self._threads = [threading.Thread(target=self._loop, name=f"worker-{i}", daemon=True) for i in range(threads)]
        if settings.prefetch < threads * settings.max_batch:
            log.warning(
                "CLASSIFIER_PREFETCH (%d) is less than CLASSIFIER_WORKER_THREADS x CLASSIFIER_MAX_BATCH (%d x %d): "
                "the job threads share the prefetched messages, so they cannot each fill a batch",
                settings.prefetch,
                threads,
                settings.max_batch,
            )
        self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._stopping = threading.Event()
        self._store_ok = False
        # Set when the worker cannot go on (the broker refused us for good): the process exits
        # non-zero and its supervisor (Kubernetes, the stack script) restarts it.
        self.fatal = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.consumer.start()
        self._beat()
        self._heartbeat_thread.start()
        for thread in self._threads:
            thread.start()
        self.reconciler.start()
        metrics.WORKER_READY.set(1)
        log.info(
            "worker consuming",
            extra={"worker_id": self.worker_id, "pool": self.settings.pool, "models": sorted(self.models)},
        )

    def stop(self, timeout: float | None = None) -> bool:
        """Stop taking jobs, finish and ack the ones held, disconnect. True if drained in time."""
        log.info("worker stopping: draining held jobs")
        metrics.WORKER_READY.set(0)
        self.consumer.stop_consuming()
        self._stopping.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.shutdown_grace_s)
        drained = True
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            drained = drained and not thread.is_alive()
        self.reconciler.stop()
        self.consumer.close()
        log.info("worker stopped", extra={"drained": drained})
        return drained

    def readiness(self) -> dict[str, str | None]:
        return {
            "models": None if self.models and all(m.ready for m in self.models.values()) else "models not loaded",
            "broker": None if self.consumer.connected else "not connected to the broker",
            "store": None if self._store_ok else "store unreachable",
            "consuming": "stopping" if self._stopping.is_set() else None,
        }

    # -- loops ---------------------------------------------------------------------------------
    def _next_batch(self) -> list[Delivery]:
        first = self.consumer.get(timeout=0.2)
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.max_batch_wait_ms / 1000
        while len(batch) < self.settings.max_batch:
            wait = deadline - time.monotonic()
            nxt = self.consumer.get(timeout=max(0.0, wait)) if wait > 0 else self.consumer.get(timeout=0)
            if nxt is None:
                break
            batch.append(nxt)
        return batch

    def _loop(self) -> None:
        while True:
            try:
                batch = self._next_batch()
            except Exception:
                log.exception("the consumer failed for good; the worker stops")
                self.fatal.set()
                return
            if not batch:
                if self._stopping.is_set():
                    return  # nothing held any more
                continue
            tracked = [_Tracked(d) for d in batch]
            metrics.IN_FLIGHT.inc(len(tracked))
            finished: list[str] = []
            try:
                finished = self.processor.process(tracked)  # type: ignore[arg-type]
            except Exception:  # the processor settles each delivery itself; this is the last net
                log.exception("unexpected error processing a batch; its unsettled deliveries are requeued")
            for t in tracked:
                if not t.settled:
                    log.error("a delivery was left unsettled; requeued")
                    t.reject(requeue=True)
            if finished:
                self.consumer.announce_finished(finished)

    def _beat(self) -> None:
        try:
            self.store.heartbeat(self.worker_id, sorted(self.models), utcnow())
            self._store_ok = True
        except StoreUnavailable:
            self._store_ok = False

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.settings.heartbeat_s):
            self._beat()
