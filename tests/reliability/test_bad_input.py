"""Bad input the gateway and workers must refuse cleanly: a 4xx in the one error shape, never a
500, never a stuck job, never a file outside the gallery. (The common cases, non-image bytes,
truncated JPEG, oversized upload and so on, are in tests/gateway/test_jobs.py.)

- decompression bombs: small files declaring a huge image are refused from the header alone;
- uploads whose metadata breaks the gateway's own check (Pillow raises TypeError): 422 for that
  upload alone, in a batch too, never a 500;
- JSON nesting bombs, on /v1/jobs and /v1/batches: 422 with the request id;
- odd gallery names: unicode, very long, NUL, encoded slashes, a symlink out of the gallery;
- JSON bodies with the wrong types, multipart bodies with too many fields;
- poison messages published straight onto the real RabbitMQ queue: dead-lettered and logged,
  the worker goes on with the next job, and its reconciler fails a job whose message was poison;
- uploads whose metadata breaks Pillow, published among good jobs so that they share a batch:
  each fails alone (tests/reliability/test_corrupt_images.py fuzzes the decode path itself).
"""

from __future__ import annotations

import shutil
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pika
import pytest
from fastapi.testclient import TestClient

from classifier_common.broker.memory import MemoryBroker, MemoryConsumer
from classifier_common.catalog import get_spec
from classifier_common.config import Settings
from classifier_common.domain import Job, JobStatus
from classifier_common.images import MAX_PIXELS, sha256
from classifier_common.messages import JobMessage
from classifier_common.store import open_store
from classifier_standalone.app import create_app
from classifier_worker.models import LoadedModel
from classifier_worker.processor import Processor
from devstack.isolated import AMQP_URL
from devstack.stack import Stack
from tests.reliability.accounting import read_json_lines, wait_until
from tests.utils.api import assert_error_shape, wait_for_job
from tests.utils.corrupt_images import bad_exif_images, bad_strip_offset_images
from tests.utils.jobs import queued_job

GOLDFINCH = "n01531178_goldfinch.JPEG"
UNICODE_NAME = "Stieglitz – grünfink 鳥.JPEG"
MODEL = "efficientnet_lite0"


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header for a ``width`` x ``height`` RGB image, followed by a few bytes of
    pixel data: tiny on the wire, gigabytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Path:
    """A gallery with a unicode-named image, next to a secret file that must never be served,
    and a symlink inside the gallery that points at it."""
    root = tmp_path_factory.mktemp("odd-gallery")
    gallery = root / "gallery"
    gallery.mkdir()
    shutil.copy(seeded[1] / GOLDFINCH, gallery / GOLDFINCH)
    shutil.copy(seeded[1] / GOLDFINCH, gallery / UNICODE_NAME)
    shutil.copy(seeded[1] / "n07747607_orange.JPEG", root / "secret.JPEG")
    (gallery / "link.JPEG").symlink_to(root / "secret.JPEG")
    return gallery


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path], gallery: Path) -> Iterator[TestClient]:
    state = tmp_path_factory.mktemp("bad-input")
    settings = Settings(
        broker_url=f"memory://bad-input-{uuid.uuid4().hex}",
        store_url=f"sqlite:///{state}/jobs.db",
        spool_dir=None,
        models_dir=seeded[0],
        gallery_dir=gallery,
        models=[MODEL],
        log_format="text",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _upload(client: TestClient, data: bytes, name: str = "image.png") -> httpx.Response:
    return client.post("/v1/jobs", files={"file": (name, data, "image/png")}, data={"model": MODEL})


# --- decompression bombs ------------------------------------------------------------------------


def test_png_declaring_4_gigapixels_is_422_from_its_header(client: TestClient) -> None:
    data = png_declaring(65_535, 65_535)
    assert len(data) < 200
    started = time.perf_counter()
    body = assert_error_shape(_upload(client, data), 422, "invalid_image")
    assert "pixels" in body["error"]["message"]
    assert time.perf_counter() - started < 5, "the image was decoded instead of refused from its header"


def test_png_over_our_pixel_limit_is_422(client: TestClient) -> None:
    side = int(MAX_PIXELS**0.5) + 100
    body = assert_error_shape(_upload(client, png_declaring(side, side)), 422, "invalid_image")
    assert "pixels" in body["error"]["message"]


def test_a_bomb_that_reaches_a_worker_fails_its_job(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    """Defence in depth: a bomb published without the gateway's check fails the job
    (invalid_image) instead of being decoded or requeued."""
    store = open_store(f"sqlite:///{tmp_path}/jobs.db")
    broker = MemoryBroker(max_length=10, max_attempts=4)
    model = LoadedModel.load(get_spec(MODEL), seeded[0])
    processor = Processor(store, {MODEL: model}, seeded[1], max_attempts=3, result_cache=False)
    data = png_declaring(65_535, 65_535)
    job = queued_job(model=MODEL, image="bomb.png", source="upload", image_sha256=sha256(data))
    store.create(job)
    broker.publish(JobMessage.for_job(job, data).encode(), job.id)
    consumer = MemoryConsumer(broker, prefetch=1)
    consumer.start()
    processor.process([consumer.get(timeout=1)])
    stored = store.get(job.id)
    assert stored.status is JobStatus.failed and stored.error.code == "invalid_image"
    assert broker.ready_count == broker.unacked_count == 0 and not broker.dead


# --- uploads whose metadata breaks the gateway's check ------------------------------------------


@pytest.mark.parametrize("name", sorted(bad_strip_offset_images()))
def test_an_upload_that_breaks_the_decoder_is_422(client: TestClient, name: str) -> None:
    """Small enough to be decoded at the gateway, where Pillow raises TypeError on it."""
    assert_error_shape(_upload(client, bad_strip_offset_images()[name], "broken.tif"), 422, "invalid_image")


def test_a_batch_upload_that_breaks_the_decoder_is_refused_alone(client: TestClient, gallery: Path) -> None:
    """Its batch-mates before and after it are queued and classified; the batch is not a 500."""
    parts = [
        ("file", ("bird.jpg", (gallery / GOLDFINCH).read_bytes(), "image/jpeg")),
        ("file", ("broken.tif", bad_strip_offset_images()["tiff-strip-offsets-as-rational"], "image/tiff")),
        ("image", (None, GOLDFINCH)),
    ]
    response = client.post("/v1/batches", data={"model": MODEL}, files=parts)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert (batch["accepted"], batch["refused"]) == (2, 1), batch
    items = batch["items"]
    assert items[1]["status"] == "refused" and items[1]["error"]["code"] == "invalid_image", items[1]
    for item in (items[0], items[2]):
        assert wait_for_job(client, item["status_url"])["status"] == "succeeded"


# --- JSON nesting bombs -------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 10_000])  # within the 64 KiB body limit
@pytest.mark.parametrize("bracket", ["[", '{"a":'])
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
def test_deeply_nested_json_body_is_422_with_the_request_id(
    client: TestClient, path: str, depth: int, bracket: str
) -> None:
    closing = "]" if bracket == "[" else "}"
    body = bracket * depth + "1" + closing * depth
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert assert_error_shape(response, 422, "invalid_input")["request_id"]
    assert client.get("/healthz").status_code == 200


# --- gallery names ------------------------------------------------------------------------------

ODD_NAMES = [
    "../secret.JPEG",
    "..%2Fsecret.JPEG",
    "%2e%2e%2fsecret.JPEG",
    "..%5Csecret.JPEG",
    "..\\secret.JPEG",
    "link.JPEG",  # a symlink inside the gallery pointing outside it
    "/etc/passwd",
    f"{GOLDFINCH}\x00.png",
    f"{GOLDFINCH}%00",
    "x" * 5_000,
    "ñ" * 300,
    ".",
    "..",
    " ",
]


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_names_never_reach_a_file_outside_the_gallery(client: TestClient, gallery: Path, name: str) -> None:
    secret = (gallery.parent / "secret.JPEG").read_bytes()
    # As a path segment, escaped the way a client would send it, and raw.
    for path in (f"/v1/images/{quote(name, safe='')}", f"/v1/images/{name}"):
        try:
            response = client.get(path, follow_redirects=False)
        except httpx.InvalidURL:
            continue  # the client itself refuses to send it (NUL)
        assert response.content != secret
        if response.status_code in (200, 307):  # "." and ".." collapse to /v1/images/: the listing
            assert response.status_code == 307 or isinstance(response.json(), list), path
            continue
        assert response.status_code in (404, 422), (path, response.status_code)
        assert_error_shape(response, response.status_code)
    response = client.post("/v1/jobs", json={"model": MODEL, "image": name})
    assert_error_shape(response, 422)
    assert response.json()["error"]["code"] in ("unknown_image", "invalid_input")


def test_unicode_gallery_name_is_served_and_classified(client: TestClient, seeded: tuple[Path, Path]) -> None:
    listed = [image["name"] for image in client.get("/v1/images").json()]
    assert UNICODE_NAME in listed and "link.JPEG" not in listed
    response = client.get(f"/v1/images/{quote(UNICODE_NAME)}")
    assert response.status_code == 200 and response.content == (seeded[1] / GOLDFINCH).read_bytes()
    submitted = client.post("/v1/jobs", json={"model": MODEL, "image": UNICODE_NAME})
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(client, submitted.headers["location"])
    assert job["image"] == UNICODE_NAME and job["result"]["predictions"][0]["label"] == "goldfinch"


# --- wrong types and shapes ---------------------------------------------------------------------

WRONG_TYPES = [
    {"model": 5, "image": GOLDFINCH},
    {"model": None, "image": GOLDFINCH},
    {"model": [MODEL], "image": GOLDFINCH},
    {"model": MODEL, "image": {"$gt": ""}},  # an operator a Mongo query would obey
    {"model": MODEL, "image": True},
    {"model": MODEL, "image": 1.5},
    {"model": MODEL, "image": ""},
    {"model": "", "image": GOLDFINCH},
    "a string",
    123,
    {},
    [],
]


@pytest.mark.parametrize("body", WRONG_TYPES, ids=range(len(WRONG_TYPES)))
def test_json_with_wrong_types_is_422(client: TestClient, body: object) -> None:
    assert_error_shape(client.post("/v1/jobs", json=body), 422, "invalid_input")


def test_json_null_is_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b"null", headers={"content-type": "application/json"})
    assert_error_shape(response, 422, "invalid_input")


def test_multipart_with_too_many_fields_is_422(client: TestClient, seeded: tuple[Path, Path]) -> None:
    # Found by the fuzzer: Starlette's form parser answered a bare 400.
    fields = {f"extra{i}": "x" for i in range(10)}
    response = client.post(
        "/v1/jobs",
        files={"file": ("bird.jpg", (seeded[1] / GOLDFINCH).read_bytes(), "image/jpeg")},
        data={"model": MODEL, **fields},
    )
    assert_error_shape(response, 422, "invalid_input")


def test_multipart_model_sent_as_a_file_is_422(client: TestClient, seeded: tuple[Path, Path]) -> None:
    response = client.post(
        "/v1/jobs",
        files={
            "file": ("bird.jpg", (seeded[1] / GOLDFINCH).read_bytes(), "image/jpeg"),
            "model": ("model.txt", MODEL.encode(), "text/plain"),
        },
    )
    assert_error_shape(response, 422, "invalid_input")


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    # Found by the fuzzer: GET and DELETE /v1/jobs/{id} are two routes, Starlette named only one.
    response = client.put("/v1/jobs/" + "0" * 32)
    assert_error_shape(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}


# --- poison messages on the real queue ----------------------------------------------------------

POISON = [
    b"not json at all",
    b"\xff\xfe\x00binary",
    b'{"v": 99, "job_id": "0123456789abcdef0123456789abcdef", "model": "efficientnet_lite0"}',
    b'{"v": 2, "job_id": "0123456789abcdef0123456789abcdef", "model": "efficientnet_lite0"}',
    b'{"v": 1, "job_id": 5}',
    b"[1, 2, 3]",
    b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the JSON parser
]


def _record(stack: Stack, image: str, upload: bytes | None = None) -> Job:
    """A job written to the stack's store as the gateway writes it (its message is up to the test)."""
    store = open_store(stack.env["CLASSIFIER_STORE_URL"])
    try:
        job = queued_job(
            model=MODEL,
            image=image,
            source="gallery" if upload is None else "upload",
            image_sha256=sha256(upload if upload is not None else image.encode()),
        )
        return store.create(job)
    finally:
        store.close()


def _stored(stack: Stack, job_id: str) -> Job:
    store = open_store(stack.env["CLASSIFIER_STORE_URL"])
    try:
        return store.get(job_id)
    finally:
        store.close()


def _publish(stack: Stack, messages: list[tuple[bytes, str]]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body, message_id in messages:
            properties = pika.BasicProperties(delivery_mode=2, message_id=message_id)
            queue = f"{stack.env['CLASSIFIER_QUEUE_NAME']}.default"  # the one pool's queue
            channel.basic_publish("", queue, body, properties, mandatory=True)
    finally:
        connection.close()


def _worker_logs(stack: Stack) -> list[dict]:
    return read_json_lines(sorted(stack.state_dir.glob("worker-*.log")))


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_poison_messages_on_the_real_queue_are_dead_lettered_and_reconciled(shared_stack: Stack) -> None:
    """Each poison message is dead-lettered alone and the worker goes on; the worker's reconciler
    then drains the dead-letter queue, and a job whose message was poison (named by the message
    id, as the gateway publishes it) ends failed instead of queued forever."""
    stranded = _record(shared_stack, GOLDFINCH)
    _publish(
        shared_stack,
        [(body, f"poison-{i}") for i, body in enumerate(POISON)] + [(b"[" * 100_000, stranded.id)],
    )
    # A normal job after them still runs: the worker neither crashed nor stalled.
    with httpx.Client(base_url=f"http://127.0.0.1:{shared_stack.gateway_port}") as gateway:
        submitted = gateway.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH})
    assert submitted.status_code == 202
    with httpx.Client(base_url=f"http://127.0.0.1:{shared_stack.results_port}", timeout=40) as results:
        job = wait_for_job(results, submitted.headers["location"])
        assert job["status"] == "succeeded"
        failed = wait_for_job(results, f"/v1/jobs/{stranded.id}")
    assert failed["status"] == "failed" and failed["error"]["code"] == "dead_lettered", failed

    def logged(prefix: str) -> int:
        return sum(r["msg"].startswith(prefix) for r in _worker_logs(shared_stack))

    wait_until(lambda: logged("poison message dead-lettered") >= len(POISON) + 1, 5, "the poison to be logged")
    wait_until(lambda: logged("dead letter ") >= len(POISON), 10, "the dead letters to be reconciled")
    assert all(proc.poll() is None for name, proc in shared_stack.procs.items() if name.startswith("worker-"))
    assert httpx.get(f"http://127.0.0.1:{shared_stack.worker_port}/readyz").status_code == 200


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_broken_images_in_one_batch_on_the_real_queue_fail_alone(shared_stack: Stack) -> None:
    """Uploads whose EXIF Pillow cannot write back (TypeError, struct.error, AttributeError)
    published between good jobs, so that they share the worker's batches: each fails as
    invalid_image after one attempt, each good job succeeds after one."""
    broken = bad_exif_images()
    jobs, messages = [], []
    for name in ("jpeg-rational-as-text", "png-short-as-text", "webp-text-as-rational", None, None, None):
        upload = None if name is None else broken[name]
        job = _record(shared_stack, GOLDFINCH if name is None else f"{name}.img", upload)
        jobs.append((name, job))
        messages.append((JobMessage.for_job(job, upload).encode(), job.id))
    messages = [messages[i] for i in (3, 0, 4, 1, 5, 2)]  # good, broken, good, ...
    _publish(shared_stack, messages)
    for name, job in jobs:
        wait_until(lambda job=job: _stored(shared_stack, job.id).status.finished, 30, f"job {name} to finish")
        stored = _stored(shared_stack, job.id)
        assert stored.attempts == 1, stored
        if name is None:
            assert stored.status is JobStatus.succeeded, stored
        else:
            assert stored.status is JobStatus.failed and stored.error.code == "invalid_image", stored
