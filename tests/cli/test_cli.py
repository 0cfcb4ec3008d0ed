"""`classifier models | images | submit | status`: output for people, --json for scripts, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from devstack.ports import free_port
from tests.utils.corrupt_images import bad_exif_images
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"


def test_models_table_and_json_match_the_api(classifier, server: Server) -> None:
    api = httpx.get(f"{server.url}/v1/models").json()

    table = classifier("models")
    assert table.returncode == 0, table.stderr
    rows = {model["name"]: line for line in table.stdout.splitlines() for model in api if f" {model['name']} " in line}
    assert set(rows) == {model["name"] for model in api}, table.stdout
    for model in api:  # which pool serves it, or none
        assert f" {model['pool'] or 'none'} " in rows[model["name"]], table.stdout

    listed = classifier("models", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == api
    # the shared options also go before the command
    assert json.loads(classifier("--json", "models").stdout) == api


def test_images_lists_the_gallery_with_labels(classifier, server: Server) -> None:
    api = httpx.get(f"{server.url}/v1/images").json()
    result = classifier("images")
    assert result.returncode == 0, result.stderr
    assert f"Gallery ({len(api)} images)" in result.stdout
    goldfinch_row = next(line for line in result.stdout.splitlines() if GOLDFINCH in line)
    assert "goldfinch" in goldfinch_row.replace(GOLDFINCH, "")  # the label derived from the name
    assert [i["name"] for i in json.loads(classifier("images", "--json").stdout)] == [i["name"] for i in api]


def test_submit_gallery_image_and_wait_shows_the_top5(classifier) -> None:
    result = classifier("submit", "--model", "efficientnet_lite0", "--image", GOLDFINCH, "--wait")
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    rows = [line for line in result.stdout.splitlines() if re.match(r"\s*[1-5]\s", line)]
    assert len(rows) == 5, result.stdout
    assert "goldfinch" in rows[0] and re.search(r"\d+\.\d\d%", rows[0])
    assert "█" in rows[0]  # the bar
    assert re.search(r"submitted job [0-9a-f]{32}", result.stderr)


def test_submit_json_is_the_job_and_status_finds_it(classifier, server: Server) -> None:
    submitted = classifier("submit", "--image", GOLDFINCH, "--wait", "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "succeeded"
    assert job["result"]["predictions"][0]["label"] == "goldfinch"

    status = classifier("status", job["id"], "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["result"] == job["result"]
    by_url = classifier("status", f"{server.url}{job['status_url']}", "--json")  # the Location, pasted
    assert json.loads(by_url.stdout)["id"] == job["id"]


def test_submit_without_wait_returns_the_ticket_then_status_waits(classifier) -> None:
    submitted = classifier("submit", "-i", ORANGE, "--json")
    assert submitted.returncode == 0, submitted.stderr
    ticket = json.loads(submitted.stdout)
    assert ticket["status"] == "queued"
    assert ticket["status_url"] == f"/v1/jobs/{ticket['id']}"

    waited = classifier("status", ticket["id"], "--wait", "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    assert re.search(r"^\s*1\s+orange\s", waited.stdout, re.MULTILINE), waited.stdout


def test_submit_file_uploads_it(classifier, tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes((seeded[1] / ORANGE).read_bytes())
    result = classifier("submit", "--file", str(photo), "--wait", "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["source"] == "upload" and job["image"] == "photo.jpg"
    assert job["result"]["predictions"][0]["label"] == "orange"


def test_failed_job_exits_1(classifier, tmp_path: Path) -> None:
    # A JPEG whose EXIF Pillow cannot write back: the gateway (headers and end marker only)
    # accepts it, the worker fails the job when it decodes it.
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(bad_exif_images()["jpeg-rational-as-text"])
    result = classifier("submit", "--file", str(broken), "--wait")
    assert result.returncode == 1, result.stderr
    assert "failed" in result.stdout
    assert "invalid_image" in result.stdout


def test_a_model_no_pool_serves_exits_3_with_the_served_models(classifier, server: Server) -> None:
    # the server has lite1's weights but serves only lite0 (CLASSIFIER_MODELS, its one pool)
    models = {m["name"]: m for m in httpx.get(f"{server.url}/v1/models").json()}
    assert models["efficientnet_lite1"]["available"] and models["efficientnet_lite1"]["pool"] is None
    result = classifier("submit", "--model", "efficientnet_lite1", "--image", GOLDFINCH)
    assert result.returncode == 3
    assert "HTTP 422 model_not_served" in result.stderr
    assert "models served here: efficientnet_lite0" in result.stderr


def test_text_file_is_refused_with_exit_3(classifier, tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"  # named as a JPEG: only the server, reading it, finds out
    notes.write_text("not a picture\n")
    result = classifier("submit", "--file", str(notes))
    assert result.returncode == 3
    assert "not an image" in result.stderr and "HTTP 415" in result.stderr
    assert "accepted: BMP, GIF, JPEG, PNG, TIFF, WEBP" in result.stderr

    as_json = classifier("submit", "--file", str(notes), "--json")
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["error"]["code"] == "unsupported_media_type"  # the API's error body


def test_unknown_model_and_image_exit_3(classifier) -> None:
    model = classifier("submit", "--model", "no_such_model", "--image", GOLDFINCH)
    assert model.returncode == 3 and "no_such_model" in model.stderr
    image = classifier("submit", "--image", "no_such_image.jpg")
    assert image.returncode == 3 and "no_such_image.jpg" in image.stderr


def test_status_of_unknown_or_malformed_id_exits_3(classifier) -> None:
    unknown = classifier("status", "0123456789abcdef0123456789abcdef")
    assert unknown.returncode == 3
    assert "no job with id 0123456789abcdef0123456789abcdef" in unknown.stderr and "HTTP 404" in unknown.stderr
    malformed = classifier("status", "not-an-id")
    assert malformed.returncode == 3 and "HTTP 422" in malformed.stderr


def test_unreachable_server_exits_4(classifier) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # --url wins over CLASSIFIER_URL (which points at the live server)
    result = classifier("--url", dead, "models")
    assert result.returncode == 4
    assert f"cannot reach {dead}" in result.stderr and "CLASSIFIER_URL" in result.stderr


def test_wait_timeout_exits_5(classifier) -> None:
    # the 202 always says "queued", so a zero timeout gives up before the first status request
    result = classifier("submit", "--image", GOLDFINCH, "--wait", "--timeout", "0")
    assert result.returncode == 5
    assert re.search(r"job [0-9a-f]{32} is still queued after 0 s", result.stderr)
    assert "classifier status" in result.stderr


def test_usage_errors_exit_2(classifier, tmp_path: Path) -> None:
    neither = classifier("submit", "--model", "efficientnet_lite0")
    assert neither.returncode == 2 and "one of the arguments --image/-i --file/-f is required" in neither.stderr
    missing = classifier("submit", "--file", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_help_documents_the_exit_codes(classifier) -> None:
    result = classifier("--help")
    assert result.returncode == 0
    for line in (
        "0  success",
        "1  the job failed",
        "2  bad arguments",
        "3  the API refused",
        "4  the server failed",
        "5  --wait gave up",
    ):
        assert line in result.stdout
    assert "CLASSIFIER_URL" in result.stdout
