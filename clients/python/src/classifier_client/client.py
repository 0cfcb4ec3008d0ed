"""The client: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), the same methods.

with Client("http://127.0.0.1:8000") as client:
    job = client.wait(client.submit("efficientnet_lite0", image="n01531178_goldfinch.JPEG"), timeout=60)
    print(job["result"]["predictions"][0])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import httpx

from classifier_client._calls import (
    DEFAULT_MODEL,
    DEFAULT_URL,
    MAX_WAIT_S,
    Call,
    FileInput,
    Retry,
    batch_call,
    get_call,
    headers,
    job_id_of,
    list_call,
    next_call,
    read_answer,
    retry_call,
    stats_call,
    submit_call,
)
from classifier_client.bodies import Batch, Image, Info, Job, Model, Stats, finished
from classifier_client.errors import ClassifierError, Unreachable, WaitTimeout

USER_AGENT = "classifier-client/0.1"
DEFAULT_RETRY = Retry()


@dataclass(frozen=True)
class Outcome:
    """One item of :meth:`Client.submit_many`: the finished job, or why there is none (the
    submission was refused, or the wait timed out: ``error.job`` then holds the last state)."""

    item: Any  # the gallery name or file as given
    job: Job | None
    error: ClassifierError | None = None


def _items(images: Iterable[str], files: Iterable[FileInput]) -> list[tuple[str, Any]]:
    return [("image", image) for image in images] + [("file", file) for file in files]


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _first_wait(timeout: float | None) -> float:
    """How long :meth:`Client.submit_many` has each submission wait (one request when it finishes)."""
    return MAX_WAIT_S if timeout is None else min(MAX_WAIT_S, timeout)


def _left(job: Job, timeout: float | None, deadline: float | None) -> float | None:
    """What is left of ``timeout`` after a submission that waited; WaitTimeout if nothing is."""
    remaining = _remaining(deadline)
    if remaining is not None and remaining <= 0 and not finished(job):
        raise WaitTimeout(job, cast(float, timeout))
    return remaining


class Client:
    """Blocking client; thread-safe (one connection pool). ``retry`` governs passing failures
    (:class:`Retry`); every other error is raised as a :class:`~classifier_client.errors.ClassifierError`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: Retry = DEFAULT_RETRY,
        user_agent: str = USER_AGENT,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self._http = httpx.Client(base_url=self.base_url, headers=headers(api_key, user_agent), transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, **call.send_kwargs(self.timeout))
                return read_answer(response)
            except httpx.TransportError as exc:
                error: ClassifierError = Unreachable(self.base_url, exc)
            except ClassifierError as exc:
                error = exc
            delay = self.retry.delay(attempt, error)
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def models(self) -> list[Model]:
        return cast(list[Model], self._call(Call("GET", "/v1/models")))

    def images(self) -> list[Image]:
        return cast(list[Image], self._call(Call("GET", "/v1/images")))

    def info(self) -> Info:
        """The model and image names, the upload limit and the accepted formats."""
        return cast(Info, self._call(Call("GET", "/v1/info")))

    def submit(
        self,
        model: str = DEFAULT_MODEL,
        *,
        image: str | None = None,
        file: FileInput | None = None,
        filename: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float = 0,
    ) -> Job:
        """Queue a job for a gallery ``image`` or an uploaded ``file`` (a path, bytes or a binary
        file object); returns the queued job (202). With ``wait`` (up to 30 s), the server holds
        the answer until the job finishes or that time passes: the finished job if it did, in
        one request."""
        call = submit_call(model, image, file, filename, callback_url, idempotency_key, wait)
        return cast(Job, self._call(call))

    def submit_batch(
        self,
        model: str = DEFAULT_MODEL,
        *,
        images: Iterable[str] = (),
        files: Iterable[FileInput] = (),
        filenames: list[str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        """Queue every gallery image and file in one request (POST /v1/batches); returns the batch
        (202): each item's job, or why it was refused."""
        call = batch_call(model, list(images), list(files), filenames, callback_url, idempotency_key)
        return cast(Batch, self._call(call))

    def get_batch(self, batch: str | Batch) -> Batch:
        """The batch (by id, URL or batch): counts per status and each item's job and result."""
        return cast(Batch, self._call(Call("GET", f"/v1/batches/{job_id_of(batch)}")))

    def get(self, job: str | Job, wait: float = 0) -> Job:
        """The job (by id, status URL or job); with ``wait``, held up to that many seconds
        (at most 30) until it finishes."""
        return cast(Job, self._call(get_call(job_id_of(job), min(wait, MAX_WAIT_S))))

    def wait(
        self,
        job: str | Job,
        timeout: float | None = None,
        *,
        poll_s: float = MAX_WAIT_S,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """The job once finished (succeeded, failed or canceled), long-polling ``poll_s`` seconds
        at a time; :class:`~classifier_client.errors.WaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current: Job = job if isinstance(job, dict) else self.get(job)
        while not finished(current):
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(current, cast(float, timeout))
            current = self.get(current, wait=poll_s if remaining is None else min(poll_s, remaining))
            if on_update is not None:
                on_update(current)
        return current

    def cancel(self, job: str | Job) -> Job:
        """Cancel a queued job (409 :class:`~classifier_client.errors.Conflict` once it runs)."""
        return cast(Job, self._call(Call("DELETE", f"/v1/jobs/{job_id_of(job)}")))

    def stats(self, window_s: int | None = None) -> Stats:
        """Each pool of workers: backlog, consumers, ready workers, jobs/s and latency over the
        last ``window_s`` seconds (the server's default, 300, when None)."""
        return cast(Stats, self._call(stats_call(window_s)))

    def retry_job(self, job: str | Job, *, idempotency_key: str | None = None) -> Job:
        """Queue a new job from a failed or canceled one (202); the new job's ``retry_of`` names
        the old one. 409 :class:`~classifier_client.errors.Conflict` for any other job, for one
        retried before, and for an uploaded image (not kept: submit the file again)."""
        return cast(Job, self._call(retry_call(job_id_of(job), idempotency_key)))

    def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Job]:
        """Every job (of this API key, when the server has keys) matching the filters, newest
        first, fetched a page at a time as the iteration goes (``page_size`` jobs a page)."""
        call: Call | None = list_call(status, model, created_after, created_before, page_size)
        while call is not None:
            page = self._call(call)
            yield from cast(list[Job], page["jobs"])
            call = next_call(page["next"]) if page.get("next") else None

    def submit_many(
        self,
        model: str = DEFAULT_MODEL,
        *,
        images: Iterable[str] = (),
        files: Iterable[FileInput] = (),
        concurrency: int = 8,
        timeout: float | None = None,
    ) -> Iterator[Outcome]:
        """Submit every gallery image and file, and yield each :class:`Outcome` as its job
        finishes (not in the order given), ``concurrency`` at a time."""

        def one(kind: str, item: Any) -> Outcome:
            try:
                # One request when the job finishes within the submission's wait; else long-polls.
                deadline = None if timeout is None else time.monotonic() + timeout
                job = self.submit(model, wait=_first_wait(timeout), **{kind: item})
                return Outcome(item, self.wait(job, _left(job, timeout, deadline)))
            except ClassifierError as exc:
                return Outcome(item, getattr(exc, "job", None), exc)

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
            futures = [pool.submit(one, kind, item) for kind, item in _items(images, files)]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()


class AsyncClient:
    """The same API for asyncio."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: Retry = DEFAULT_RETRY,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers(api_key, user_agent), transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, **call.send_kwargs(self.timeout))
                return read_answer(response)
            except httpx.TransportError as exc:
                error: ClassifierError = Unreachable(self.base_url, exc)
            except ClassifierError as exc:
                error = exc
            delay = self.retry.delay(attempt, error)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def models(self) -> list[Model]:
        return cast(list[Model], await self._call(Call("GET", "/v1/models")))

    async def images(self) -> list[Image]:
        return cast(list[Image], await self._call(Call("GET", "/v1/images")))

    async def info(self) -> Info:
        return cast(Info, await self._call(Call("GET", "/v1/info")))

    async def submit(
        self,
        model: str = DEFAULT_MODEL,
        *,
        image: str | None = None,
        file: FileInput | None = None,
        filename: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        wait: float = 0,
    ) -> Job:
        call = submit_call(model, image, file, filename, callback_url, idempotency_key, wait)
        return cast(Job, await self._call(call))

    async def get(self, job: str | Job, wait: float = 0) -> Job:
        return cast(Job, await self._call(get_call(job_id_of(job), min(wait, MAX_WAIT_S))))

    async def wait(
        self,
        job: str | Job,
        timeout: float | None = None,
        *,
        poll_s: float = MAX_WAIT_S,
        on_update: Callable[[Job], Awaitable[None] | None] | None = None,
    ) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        current: Job = job if isinstance(job, dict) else await self.get(job)
        while not finished(current):
            remaining = _remaining(deadline)
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(current, cast(float, timeout))
            current = await self.get(current, wait=poll_s if remaining is None else min(poll_s, remaining))
            if on_update is not None:
                result = on_update(current)
                if result is not None:
                    await result
        return current

    async def submit_batch(
        self,
        model: str = DEFAULT_MODEL,
        *,
        images: Iterable[str] = (),
        files: Iterable[FileInput] = (),
        filenames: list[str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        call = batch_call(model, list(images), list(files), filenames, callback_url, idempotency_key)
        return cast(Batch, await self._call(call))

    async def get_batch(self, batch: str | Batch) -> Batch:
        return cast(Batch, await self._call(Call("GET", f"/v1/batches/{job_id_of(batch)}")))

    async def cancel(self, job: str | Job) -> Job:
        return cast(Job, await self._call(Call("DELETE", f"/v1/jobs/{job_id_of(job)}")))

    async def stats(self, window_s: int | None = None) -> Stats:
        return cast(Stats, await self._call(stats_call(window_s)))

    async def retry_job(self, job: str | Job, *, idempotency_key: str | None = None) -> Job:
        return cast(Job, await self._call(retry_call(job_id_of(job), idempotency_key)))

    async def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Job]:
        call: Call | None = list_call(status, model, created_after, created_before, page_size)
        while call is not None:
            page = await self._call(call)
            for job in cast(list[Job], page["jobs"]):
                yield job
            call = next_call(page["next"]) if page.get("next") else None

    async def submit_many(
        self,
        model: str = DEFAULT_MODEL,
        *,
        images: Iterable[str] = (),
        files: Iterable[FileInput] = (),
        concurrency: int = 8,
        timeout: float | None = None,
    ) -> AsyncIterator[Outcome]:
        gate = asyncio.Semaphore(concurrency)

        async def one(kind: str, item: Any) -> Outcome:
            async with gate:
                try:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    job = await self.submit(model, wait=_first_wait(timeout), **{kind: item})
                    return Outcome(item, await self.wait(job, _left(job, timeout, deadline)))
                except ClassifierError as exc:
                    return Outcome(item, getattr(exc, "job", None), exc)

        tasks = [asyncio.ensure_future(one(kind, item)) for kind, item in _items(images, files)]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
