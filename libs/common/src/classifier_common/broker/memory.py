"""The embedded job queue: an in-process broker with the same delivery contract as RabbitMQ.

Bounded (``queue_max_length`` ready messages, then :class:`QueueFull`), unacked deliveries go
back to the queue when rejected with requeue or when their consumer closes, every message
counts its deliveries and is dead-lettered after ``max_attempts`` of them (``Settings.delivery_limit``), and
``reject(requeue=False)`` dead-letters at once. Dead letters wait in :attr:`MemoryBroker.dead` until a
:class:`MemoryDeadLetterConsumer` takes them (the worker's reconciler).

Durable when given a spool directory (``Settings.spool_dir``): a published message is written to
a file (fsync'd) before ``publish`` returns and removed when it is acked, moved to ``dead/`` when
dead-lettered (and removed once the dead letter is consumed), and a broker created over the same
directory starts with the messages left there, as redeliveries, and the dead letters left there.

Workers' finished-job notices go straight to the listeners registered in the same process
(:class:`MemoryFinishedListener`), in the thread that announces them.

Brokers are registered by URL (``memory://`` or ``memory://NAME``) and pool: a publisher and a
consumer built from the same settings in one process share each pool's queue, and the finished-job
notices of every pool reach every listener registered under that URL. A pool's messages spool to
``<spool_dir>/pools/<pool>/``; messages spooled before pools existed (at the top of the directory)
are moved to their model's pool on first use.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from classifier_common import metrics
from classifier_common.broker.base import DeadLetter, QueueCounts
from classifier_common.config import DEFAULT_POOL, Settings
from classifier_common.errors import BrokerUnavailable, PoisonMessage, queue_full
from classifier_common.messages import decode

log = logging.getLogger(__name__)


@dataclass
class _Message:
    body: bytes
    message_id: str
    deliveries: int = 0
    spool_file: Path | None = None


class Notices:
    """The finished-job listeners of one process, heard by every pool's queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Callable[[list[str]], None]] = []

    def announce(self, job_ids: list[str]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(job_ids)
            except Exception:  # noqa: BLE001 - a notice is best effort, as with RabbitMQ
                log.exception("a finished-job listener failed")

    def add(self, listener: Callable[[list[str]], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove(self, listener: Callable[[list[str]], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)


class MemoryBroker:
    """One bounded queue plus its dead-letter list. Thread-safe: one condition guards all state."""

    def __init__(
        self,
        *,
        max_length: int,
        max_attempts: int,
        retry_after_s: int = 5,
        spool_dir: Path | None = None,
        notices: Notices | None = None,
        pool: str = DEFAULT_POOL,
    ):
        self.pool = pool
        self.max_length = max_length
        self.max_attempts = max_attempts
        self._retry_after = retry_after_s
        self._cond = threading.Condition()
        self._ready: deque[_Message] = deque()
        self._unacked: dict[int, tuple[_Message, MemoryConsumer]] = {}
        self._dead: list[tuple[DeadLetter, Path | None]] = []  # and its spool file
        self._tags = itertools.count(1)
        self._spool = spool_dir
        self.notices = notices or Notices()
        self._consumers = 0  # guarded by _cond; MemoryConsumer counts itself in and out
        if spool_dir is not None:
            (spool_dir / "dead").mkdir(parents=True, exist_ok=True)
            for path in sorted(spool_dir.glob("*.msg")):
                message_id = path.stem.split("-", 1)[1]
                # It may have been delivered before the restart: count that delivery.
                self._ready.append(_Message(path.read_bytes(), message_id, deliveries=1, spool_file=path))
            if self._ready:
                log.info("recovered %d queued messages from %s", len(self._ready), spool_dir)
            for path in sorted((spool_dir / "dead").glob("*.msg")):
                dead = DeadLetter(path.read_bytes(), path.stem.split("-", 1)[1], "unknown", 0)
                self._dead.append((dead, path))

    def _spool_write(self, body: bytes, message_id: str) -> Path | None:
        if self._spool is None:
            return None
        path = self._spool / f"{time.time_ns():020d}-{message_id}.msg"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        return path

    # -- inspection

    @property
    def ready_count(self) -> int:
        with self._cond:
            return len(self._ready)

    @property
    def unacked_count(self) -> int:
        with self._cond:
            return len(self._unacked)

    @property
    def consumer_count(self) -> int:
        """Consumers started and not closed (like a RabbitMQ queue's consumer count)."""
        with self._cond:
            return self._consumers

    @property
    def dead(self) -> list[DeadLetter]:
        """Dead letters not consumed yet, oldest first."""
        with self._cond:
            return [dead for dead, _ in self._dead]

    # -- used by the publisher, consumer and delivery below

    def publish(self, body: bytes, message_id: str) -> None:
        with self._cond:
            # Like x-max-length: only ready messages count, not those held by workers.
            if len(self._ready) >= self.max_length:
                raise queue_full(self.pool, self.max_length, self._retry_after)
            self._ready.append(_Message(body, message_id, spool_file=self._spool_write(body, message_id)))
            self._cond.notify_all()

    def take(self, consumer: MemoryConsumer, timeout: float) -> MemoryDelivery | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._ready and consumer._may_take()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            message = self._ready.popleft()
            message.deliveries += 1
            tag = next(self._tags)
            self._unacked[tag] = (message, consumer)
            consumer._held += 1
            return MemoryDelivery(self, tag, message)

    def settle(self, tag: int, outcome: Literal["ack", "requeue", "dead"]) -> None:
        with self._cond:
            entry = self._unacked.pop(tag, None)
            if entry is None:
                log.debug("settling delivery %d ignored: already settled or its consumer closed", tag)
                return
            message, consumer = entry
            consumer._held -= 1
            if outcome == "ack" and message.spool_file is not None:
                message.spool_file.unlink(missing_ok=True)
            if outcome == "dead":
                self._dead_letter(message, "rejected")
            elif outcome == "requeue":
                self._return(message)
            self._cond.notify_all()

    def return_held(self, consumer: MemoryConsumer) -> None:
        """The consumer went away: what it held goes back, as RabbitMQ does on channel close."""
        with self._cond:
            for tag, (message, owner) in list(self._unacked.items()):
                if owner is consumer:
                    del self._unacked[tag]
                    self._return(message)
            consumer._held = 0
            self._cond.notify_all()

    def announce_finished(self, job_ids: list[str]) -> None:
        self.notices.announce(job_ids)

    def take_dead(self, timeout: float) -> tuple[DeadLetter, Path | None] | None:
        """The oldest dead letter (and its spool file), removed; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._dead:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._dead.pop(0)

    def return_dead(self, entry: tuple[DeadLetter, Path | None]) -> None:
        with self._cond:
            self._dead.append(entry)
            self._cond.notify_all()

    @property
    def condition(self) -> threading.Condition:
        return self._cond

    def _return(self, message: _Message) -> None:
        if message.deliveries >= self.max_attempts:
            self._dead_letter(message, "delivery_limit")
        else:
            # Returned messages go ahead of the others, as in a quorum queue.
            self._ready.appendleft(message)

    def _dead_letter(self, message: _Message, reason: Literal["rejected", "delivery_limit"]) -> None:
        log.warning("message %s dead-lettered (%s after %d deliveries)", message.message_id, reason, message.deliveries)
        spool_file = None
        if message.spool_file is not None and message.spool_file.exists():
            spool_file = message.spool_file.parent / "dead" / message.spool_file.name
            message.spool_file.replace(spool_file)
        self._dead.append((DeadLetter(message.body, message.message_id, reason, message.deliveries), spool_file))
        self._cond.notify_all()


class MemoryDelivery:
    def __init__(self, broker: MemoryBroker, tag: int, message: _Message):
        self.body = message.body
        self.message_id = message.message_id
        self.delivery_count = message.deliveries
        self.redelivered = message.deliveries > 1
        self._broker = broker
        self._tag = tag

    def ack(self) -> None:
        self._broker.settle(self._tag, "ack")

    def reject(self, requeue: bool) -> None:
        self._broker.settle(self._tag, "requeue" if requeue else "dead")


class MemoryPublisher:
    """Publishes to the queue of the pool it is given (one broker per pool)."""

    def __init__(self, brokers: dict[str, MemoryBroker]):
        self.brokers = brokers
        self._closed = False

    def publish(self, body: bytes, *, message_id: str, pool: str = DEFAULT_POOL) -> None:
        self.ping()
        self._broker(pool).publish(body, message_id)

    def start_publish(self, body: bytes, *, message_id: str, pool: str = DEFAULT_POOL) -> Future[None]:
        """Publishes now (the message is in the queue and its spool file when this returns)."""
        self.publish(body, message_id=message_id, pool=pool)
        published: Future[None] = Future()
        published.set_result(None)
        return published

    def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the publisher is closed")

    def depth(self, pool: str = DEFAULT_POOL) -> int:
        """Messages ready in the pool's queue (not those held by workers), as the RabbitMQ adapter."""
        return self._broker(pool).ready_count

    def _broker(self, pool: str) -> MemoryBroker:
        try:
            return self.brokers[pool]
        except KeyError:
            raise ValueError(f"no queue for pool {pool!r} (pools: {', '.join(self.brokers)})") from None

    def queue_counts(self, pool: str = DEFAULT_POOL) -> QueueCounts:
        self.ping()
        broker = self._broker(pool)
        with broker.condition:
            return QueueCounts(
                ready=broker.ready_count,
                unacked=broker.unacked_count,
                consumers=broker.consumer_count,
                dead_letters=len(broker.dead),
            )

    def close(self) -> None:
        self._closed = True


class MemoryConsumer:
    """Hands out at most ``prefetch`` unsettled deliveries at a time, like a RabbitMQ consumer."""

    def __init__(self, broker: MemoryBroker, prefetch: int):
        self.broker = broker
        self._prefetch = prefetch
        # Guarded by the broker's condition.
        self._held = 0
        self._started = False
        self._consuming = False
        self._closed = False

    def _may_take(self) -> bool:
        return self._consuming and self._held < self._prefetch

    def start(self) -> None:
        with self.broker.condition:
            if self._closed:
                return
            if not self._started:
                self.broker._consumers += 1
            self._started = self._consuming = True
            self.broker.condition.notify_all()

    def get(self, timeout: float) -> MemoryDelivery | None:
        return self.broker.take(self, timeout)

    @property
    def connected(self) -> bool:
        with self.broker.condition:
            return self._started and not self._closed

    def stop_consuming(self) -> None:
        with self.broker.condition:
            self._consuming = False

    def announce_finished(self, job_ids: list[str]) -> None:
        self.broker.announce_finished(job_ids)

    def close(self) -> None:
        with self.broker.condition:
            if self._started and not self._closed:
                self.broker._consumers -= 1
            self._consuming = False
            self._closed = True
        self.broker.return_held(self)


class MemoryFinishedListener:
    """Hears the notices of the consumers of every pool on the same in-process broker URL."""

    def __init__(self, notices: Notices):
        self.notices = notices
        self._on_finished: Callable[[list[str]], None] | None = None

    def start(self, on_finished: Callable[[list[str]], None], on_connected: Callable[[], None]) -> None:
        if self._on_finished is not None:
            return
        self._on_finished = on_finished
        self.notices.add(on_finished)
        metrics.FINISHED_LISTENER_CONNECTED.set(1)
        on_connected()

    @property
    def connected(self) -> bool:
        return self._on_finished is not None

    def close(self) -> None:
        if self._on_finished is not None:
            self.notices.remove(self._on_finished)
            self._on_finished = None
            metrics.FINISHED_LISTENER_CONNECTED.set(0)


class MemoryDeadLetterConsumer:
    """Takes the in-process broker's dead letters one by one, on a thread of its own."""

    RETRY_S = 1.0

    def __init__(self, broker: MemoryBroker):
        self.broker = broker
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self, handle: Callable[[DeadLetter], bool]) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(handle,), name="dead-letters", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._thread is not None and not self._closing.is_set()

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, handle: Callable[[DeadLetter], bool]) -> None:
        while not self._closing.is_set():
            entry = self.broker.take_dead(timeout=0.2)
            if entry is None:
                continue
            dead, spool_file = entry
            try:
                done = handle(dead)
            except Exception:  # a bug in the handler: keep the dead letter, try again later
                log.exception("handling a dead letter failed")
                done = False
            if done:
                if spool_file is not None:
                    spool_file.unlink(missing_ok=True)
            else:
                self.broker.return_dead(entry)
                self._closing.wait(self.RETRY_S)


@dataclass
class _Hub:
    """What one ``memory://`` URL holds: each pool's queue and the notices they share."""

    notices: Notices
    brokers: dict[str, MemoryBroker]


_hubs: dict[str, _Hub] = {}
_brokers_lock = threading.Lock()


def pool_spool_dir(spool_dir: Path, pool: str) -> Path:
    return spool_dir / "pools" / pool


def _adopt_unpooled_spool(settings: Settings) -> None:
    """Moves the messages an earlier version spooled at the top of ``spool_dir`` (one queue, no
    pools) into the folder of the pool serving each one's model, so that a restart after an
    upgrade loses nothing. One that names no served model goes to the first pool, whose worker
    records it as failed."""
    root = settings.spool_dir
    if root is None or not root.is_dir():
        return
    first = next(iter(settings.pools))
    for folder, into in ((root, ""), (root / "dead", "dead")):
        for path in sorted(folder.glob("*.msg")):
            try:
                pool = settings.pool_for_model(decode(path.read_bytes()).model) or first
            except PoisonMessage:
                pool = first
            target = pool_spool_dir(root, pool) / into
            target.mkdir(parents=True, exist_ok=True)
            path.replace(target / path.name)
            log.info("spooled message %s moved to pool %s", path.name, pool)


def _hub(settings: Settings) -> _Hub:
    hub = _hubs.get(settings.broker_url)
    if hub is None:
        _adopt_unpooled_spool(settings)
        hub = _hubs[settings.broker_url] = _Hub(Notices(), {})
    return hub


def notices_for(settings: Settings) -> Notices:
    """The finished-job notices shared by every pool under ``settings.broker_url``."""
    with _brokers_lock:
        return _hub(settings).notices


def broker_for(settings: Settings, pool: str | None = None) -> MemoryBroker:
    """The queue of ``pool`` (default: ``settings.pool``) registered under ``settings.broker_url``,
    created on first use with these settings' limits."""
    pool = pool or settings.pool
    with _brokers_lock:
        hub = _hub(settings)
        broker = hub.brokers.get(pool)
        if broker is None:
            broker = MemoryBroker(
                max_length=settings.queue_max_length,
                max_attempts=settings.delivery_limit,
                retry_after_s=settings.broker_retry_after_s,
                spool_dir=None if settings.spool_dir is None else pool_spool_dir(settings.spool_dir, pool),
                notices=hub.notices,
                pool=pool,
            )
            hub.brokers[pool] = broker
        return broker


def brokers_for(settings: Settings) -> dict[str, MemoryBroker]:
    """Every pool's queue (``settings.pools``), created on first use."""
    return {pool: broker_for(settings, pool) for pool in settings.pools}


def forget_broker(url: str) -> None:
    """Drop the brokers registered under a URL (tests, or a process that is done with them)."""
    with _brokers_lock:
        _hubs.pop(url, None)
