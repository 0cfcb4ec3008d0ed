"""How the page follows jobs over time: every unfinished job of the history kept up to date, the
steps of a canceled or failed job, cached answers in words, a history that survives a reload."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.ui.conftest import VIEWPORT
from tests.ui.test_page import JOB_S, ORANGE, choose_gallery_image, classify
from tests.utils.corrupt_images import bad_exif_images
from tests.utils.server import Server, embedded_server

SLOW_MS = 1500  # each job of the slow server's one worker takes this long


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Server]:
    """One worker serving `synthetic_sleep`, a model that takes SLOW_MS per image: jobs queue up."""
    models_dir, gallery_dir = seeded
    env = {"CLASSIFIER_MODELS": "synthetic_sleep", "CLASSIFIER_SYNTHETIC_SERVICE_MS": str(SLOW_MS)}
    with embedded_server(tmp_path_factory.mktemp("slow"), models_dir, gallery_dir, **env) as running:
        yield running


@pytest.fixture
def slow_page(browser: Browser, slow_server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, base_url=slow_server.url)
    page = context.new_page()
    page.goto("/")
    page.wait_for_selector("body[data-ready]")
    page.get_by_role("combobox", name="Model").select_option("synthetic_sleep")
    yield page
    context.close()


def history_item(page: Page, job_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f".history-item[data-id='{job_id}']")


def test_every_unfinished_job_of_the_history_is_kept_up_to_date(slow_page: Page) -> None:
    page = slow_page
    ids = []
    for label in ("goldfinch", "orange", "tench"):  # the second and third wait behind the first
        choose_gallery_image(page, label)
        classify(page)
        expect(page.locator("#job-image")).to_have_text(label)
        ids.append(page.locator("#job-id").inner_text())
    expect(page.get_by_role("status")).to_contain_text("Succeeded", timeout=JOB_S)
    for job_id in ids:  # including the jobs no longer shown
        expect(history_item(page, job_id).locator(".pill")).to_have_text("succeeded", timeout=JOB_S)


def test_canceled_job_never_ran_and_says_canceled(slow_page: Page, slow_server: Server) -> None:
    page = slow_page
    # photos no other test of this server uses: an identical earlier job would answer at once
    choose_gallery_image(page, "barn")
    classify(page)  # the worker is busy with this one for SLOW_MS...
    choose_gallery_image(page, "dam")
    classify(page)  # ...while this one waits in the queue
    expect(page.locator("#job-image")).to_have_text("dam")
    queued = page.locator("#job-id").inner_text()
    canceled = httpx.delete(f"{slow_server.url}/v1/jobs/{queued}")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text

    expect(page.get_by_role("status")).to_have_text("Canceled before a worker started it.", timeout=JOB_S)
    steps = page.locator(".steps li")
    expect(steps.nth(0)).to_have_class(re.compile(r"\bdone\b"))
    expect(steps.nth(1)).not_to_have_class(re.compile(r"\bdone\b"))  # it never ran
    expect(steps.nth(2)).to_have_text("Canceled")


def test_failed_job_last_step_says_failed(page: Page, server: Server) -> None:
    # A JPEG whose EXIF Pillow cannot write back: the gateway accepts it, the worker fails the job
    broken = bad_exif_images()["jpeg-rational-as-text"]
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": broken}]
    )
    classify(page)
    expect(page.get_by_role("status")).to_contain_text("Failed:", timeout=JOB_S)
    expect(page.locator(".steps li").nth(2)).to_have_text("Failed")


def test_cached_answer_says_cached_result(page: Page, server: Server) -> None:
    ids: list[str] = []
    for _ in range(2):  # the same photo with the same model: the second is answered from the first
        choose_gallery_image(page, "goldfinch")
        classify(page)
        expect(page.locator("#job-id")).not_to_have_text(ids[-1] if ids else "")
        ids.append(page.locator("#job-id").inner_text())
        expect(page.get_by_role("status")).to_contain_text("Succeeded: goldfinch", timeout=JOB_S)
    job = httpx.get(f"{server.url}/v1/jobs/{ids[-1]}").json()
    assert job["result"]["cached"], job
    original = f"{job['result']['inference_ms']:.0f}"
    meta = page.locator("#job-meta")
    expect(meta).to_contain_text(f"cached result (originally {original} ms)")
    expect(meta).not_to_contain_text("inference")


def test_history_never_keeps_object_urls_and_reloads_cleanly(page: Page, seeded: tuple[Path, Path]) -> None:
    # a TIFF: the server accepts it, chromium cannot draw it, so no picture can be made of it
    tiff = io.BytesIO()
    Image.open(seeded[1] / ORANGE).save(tiff, format="TIFF")
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "scan.tiff", "mimeType": "image/tiff", "buffer": tiff.getvalue()}]
    )
    classify(page)
    expect(page.locator("#job-image")).to_have_text("scan.tiff")
    choose_gallery_image(page, "goldfinch")
    classify(page)
    expect(page.get_by_role("status")).to_contain_text("Succeeded: goldfinch", timeout=JOB_S)

    stored = page.evaluate("localStorage.getItem('classifier.history.v1')")
    assert "blob:" not in stored, stored
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.locator(".history-item")).to_have_count(2)
    page.wait_for_load_state("networkidle")
    assert errors == []


def test_history_saved_by_an_older_page_loses_its_object_urls(page: Page) -> None:
    old = [
        {"id": "0" * 32, "model": "efficientnet_lite0", "image": "photo.jpg", "source": "upload",
         "created_at": "2026-01-01T00:00:00Z", "status": "succeeded", "top": None,
         "thumb": "blob:http://127.0.0.1/0c5e1bd5-1a3e-4a4e-9b8e-000000000000"},
    ]  # fmt: skip
    page.evaluate("(v) => localStorage.setItem('classifier.history.v1', v)", json.dumps(old))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.locator(".history-item .thumb-placeholder")).to_have_count(1)
    page.wait_for_load_state("networkidle")
    assert errors == []
