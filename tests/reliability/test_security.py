"""Security: API keys on job submission, CORS, the request id from the client to the worker's
logs, and no secrets in the repository or in default settings."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_results.main import create_app as create_results_app
from classifier_standalone.app import create_app
from devstack.paths import REPO
from devstack.stack import Stack
from tests.reliability.accounting import read_json_lines, wait_until
from tests.utils.api import assert_error_shape, wait_for_job

GOLDFINCH = "n01531178_goldfinch.JPEG"
MODEL = "efficientnet_lite0"
BODY = {"model": MODEL, "image": GOLDFINCH}
KEYS = ["first-test-key", "second-test-key"]
UI_ORIGIN = "https://ui.example.com"


def _settings(state: Path, seeded: tuple[Path, Path], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "broker_url": f"memory://security-{uuid.uuid4().hex}",
        "store_url": f"sqlite:///{state}/jobs.db",
        "spool_dir": None,
        "models_dir": seeded[0],
        "gallery_dir": seeded[1],
        "models": [MODEL],
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


# --- API keys -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[TestClient]:
    settings = _settings(tmp_path_factory.mktemp("keyed"), seeded, api_keys=KEYS)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong"},
        {"X-API-Key": ""},
        {"X-API-Key": KEYS[0] + "x"},
        {"X-API-Key": KEYS[0][:-1]},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEYS[0]}"},
        {"Authorization": KEYS[0]},
    ],
    ids=["none", "wrong", "empty", "longer", "shorter", "bearer-wrong", "basic", "no-scheme"],
)
def test_submission_without_a_valid_key_is_401(keyed: TestClient, headers: dict[str, str]) -> None:
    store = keyed.app.state.store
    before = sum(store.count_by_status().values())
    response = keyed.post("/v1/jobs", json=BODY, headers=headers)
    assert_error_shape(response, 401, "unauthorized")
    assert sum(store.count_by_status().values()) == before  # nothing was recorded


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEYS[0]}, {"X-API-Key": KEYS[1]}, {"Authorization": f"Bearer {KEYS[1]}"}],
    ids=["x-api-key", "second-key", "bearer"],
)
def test_submission_with_a_valid_key_is_202(keyed: TestClient, headers: dict[str, str]) -> None:
    response = keyed.post("/v1/jobs", json=BODY, headers=headers)
    assert response.status_code == 202, response.text
    # The job is its key's: read with the key that submitted it (tests/results/test_ownership.py
    # has another key's 404).
    read = keyed.get(response.headers["location"], headers=headers)
    assert read.status_code == 200 and read.json()["id"] == response.json()["id"]


def test_an_idempotency_key_finds_only_its_own_clients_job(keyed: TestClient) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    first = keyed.post("/v1/jobs", json=BODY, headers={"X-API-Key": KEYS[0], **key})
    other = keyed.post("/v1/jobs", json=BODY, headers={"Authorization": f"Bearer {KEYS[1]}", **key})
    assert first.status_code == other.status_code == 202, (first.text, other.text)
    assert other.json()["id"] != first.json()["id"] and "idempotent-replayed" not in other.headers
    assert "client_id" not in first.json()  # who sent it is not shown
    # Each client's own retry finds its own job, whichever header carries its key.
    again = keyed.post("/v1/jobs", json=BODY, headers={"Authorization": f"Bearer {KEYS[0]}", **key})
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    # The other client sending a different request under the same key is refused for itself
    # only: the 422 names its own job, never the first client's.
    orange = {**BODY, "image": "n07747607_orange.JPEG"}
    refused = keyed.post("/v1/jobs", json=orange, headers={"X-API-Key": KEYS[1], **key})
    body = assert_error_shape(refused, 422, "idempotency_key_reused")
    assert body["error"]["details"] == {"job_id": other.json()["id"]}


def test_reads_other_than_jobs_stay_open_when_keys_are_set(keyed: TestClient) -> None:
    for path in ("/v1/models", "/v1/images", f"/v1/images/{GOLDFINCH}", "/v1/info", "/healthz", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
    # A job is its key's: the job routes need the key (looked up with it: 404, not refused).
    assert_error_shape(keyed.get("/v1/jobs/" + "0" * 32), 401, "unauthorized")
    assert keyed.get("/v1/jobs/" + "0" * 32, headers={"X-API-Key": KEYS[0]}).status_code == 404


def test_the_key_is_checked_before_the_body_is_read(keyed: TestClient) -> None:
    # A client without a key cannot make the gateway parse (or hold) a large body.
    response = keyed.post("/v1/jobs", content=b"{" * 100_000, headers={"content-type": "application/json"})
    assert_error_shape(response, 401, "unauthorized")


# --- CORS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cors(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> TestClient:
    return TestClient(create_app(_settings(tmp_path_factory.mktemp("cors"), seeded, cors_origins=[UI_ORIGIN])))


def test_cors_preflight_from_an_allowed_origin(cors: TestClient) -> None:
    response = cors.options(
        "/v1/jobs",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key, idempotency-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert all(h in allowed for h in ("content-type", "x-api-key", "idempotency-key"))
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["x-request-id"]


def test_cors_answer_exposes_location_and_request_id(cors: TestClient) -> None:
    response = cors.post("/v1/jobs", json=BODY, headers={"Origin": UI_ORIGIN})
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "location" in exposed and "x-request-id" in exposed and "retry-after" in exposed


def test_cors_refuses_other_origins(cors: TestClient) -> None:
    preflight = cors.options(
        "/v1/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers
    simple = cors.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_is_off_by_default(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    client = TestClient(create_app(_settings(tmp_path, seeded)))
    simple = client.get("/v1/models", headers={"Origin": UI_ORIGIN})
    assert "access-control-allow-origin" not in simple.headers
    preflight = client.options("/v1/jobs", headers={"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers


def test_results_service_cors(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/jobs.db", cors_origins=[UI_ORIGIN], log_format="text")
    client = TestClient(create_results_app(settings))
    response = client.get("/v1/jobs/" + "0" * 32, headers={"Origin": UI_ORIGIN})
    assert response.status_code == 404 and response.headers["access-control-allow-origin"] == UI_ORIGIN
    preflight = client.options(
        "/v1/jobs/" + "0" * 32, headers={"Origin": UI_ORIGIN, "Access-Control-Request-Method": "DELETE"}
    )
    assert preflight.status_code == 200 and "DELETE" in preflight.headers["access-control-allow-methods"]


# --- request ids, end to end on the processes ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_request_id_follows_the_job_into_the_worker_logs(shared_stack: Stack) -> None:
    request_id = f"client-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=f"http://127.0.0.1:{shared_stack.gateway_port}") as gateway:
        response = gateway.post("/v1/jobs", json=BODY, headers={"X-Request-ID": request_id})
    assert response.status_code == 202
    assert response.headers["x-request-id"] == request_id and response.json()["request_id"] == request_id
    job_id = response.json()["id"]
    with httpx.Client(base_url=f"http://127.0.0.1:{shared_stack.results_port}", timeout=40) as results:
        job = wait_for_job(results, f"/v1/jobs/{job_id}")
        assert job["request_id"] == request_id
        read = results.get(f"/v1/jobs/{job_id}", headers={"X-Request-ID": "reader-1"})
        assert read.headers["x-request-id"] == "reader-1"  # each request's own id is echoed

    def lines(prefix: str) -> list[dict]:
        return [r for r in read_json_lines(shared_stack.state_dir.glob(f"{prefix}*.log")) if r.get("job_id") == job_id]

    wait_until(lambda: any(r["msg"] == "job succeeded" for r in lines("worker-")), 10, "the worker's log line")
    assert {r["request_id"] for r in lines("worker-")} == {request_id}
    assert [r["request_id"] for r in lines("gateway") if r["msg"] == "job queued"] == [request_id]


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_unusable_request_ids_are_replaced(shared_stack: Stack) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{shared_stack.gateway_port}") as gateway:
        for bad in ("x" * 200, "tab\tinside"):
            response = gateway.get("/v1/models", headers={"X-Request-ID": bad})
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), bad


# --- secrets ------------------------------------------------------------------------------------

BINARY = {".png", ".jpg", ".jpeg", ".JPEG", ".gif", ".webp", ".pth", ".ico", ".woff", ".woff2", ".db", ".gz"}
CONFIG = {".yaml", ".yml", ".env", ".ini", ".toml", ".json", ".cfg", ".conf", ".properties"}
TOKENS = re.compile(
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36}\b"  # GitHub token
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack token
    r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API key
    r"|\bsk-[A-Za-z0-9]{32,}\b"  # OpenAI-style key
)
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://([^:/\s@'\"]+):([^@\s/'\"]+)@([^/\s:'\"]+)")
SECRET_KEY = re.compile(
    r"""^\s*-?\s*["']?(password|passwd|secret|token|api[_-]?keys?|admin[_-]?password|root[_-]?password|"""
    r"""client[_-]?secret|secret[_-]?key|access[_-]?key|private[_-]?key)["']?\s*[:=]\s*["']?([^"'\s#,}]*)""",
    re.IGNORECASE,
)
# Values that name a secret rather than hold one: empty, null, an object or list (a schema), a
# template or environment reference, or an explicit placeholder.
PLACEHOLDER = re.compile(r"^(|null|~|none|[\[{].*|\$\(.*|\$\{.*|<.*|\*+|CHANGE-?ME.*|pass|password|user)$", re.I)


def _text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    files = []
    for name in filter(None, listed):
        path = REPO / name
        if path.suffix in BINARY or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:4096]:
            files.append(path)
    return files


def test_no_secrets_in_the_repository() -> None:
    files = _text_files()
    assert len(files) > 50, "the file list looks wrong"
    found = []
    for path in files:
        name = path.relative_to(REPO)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if TOKENS.search(line):
                found.append(f"{name}:{number}: token or private key")
            # The test suites hold deliberately fake URLs with credentials (redaction, refusals).
            for user, password, host in [] if name.parts[0] == "tests" else URL_CREDENTIALS.findall(line):
                local_guest = (user, password) == ("guest", "guest") and host in ("127.0.0.1", "localhost")
                if not (local_guest or PLACEHOLDER.match(password)):
                    found.append(f"{name}:{number}: credentials in a URL")
            match = SECRET_KEY.match(line)
            if path.suffix in CONFIG | {""} and match and not PLACEHOLDER.match(match.group(2)):
                found.append(f"{name}:{number}: {match.group(1)} has a literal value")
    assert found == []


def test_no_secret_has_a_default_value() -> None:
    defaults = Settings.model_construct()
    assert defaults.api_keys == [] and defaults.callback_secret is None
    for name in Settings.model_fields:
        if re.search(r"secret|password|token|keys?$", name):
            value = getattr(defaults, name)
            assert value in (None, [], ""), f"{name} has a default value"
    for url in (defaults.broker_url, defaults.store_url):
        assert "@" not in url, url
