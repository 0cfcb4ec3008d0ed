"""What a person does on the page, in chromium, against the real system."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from classifier_common.catalog import get_spec
from tests.ui.conftest import UPLOAD_LIMIT, VIEWPORT
from tests.utils.corrupt_images import bad_exif_images
from tests.utils.server import REPO, Server, embedded_server

JOB_S = 60_000  # ms a job may take to show its result: the first inference on a cold 2-core runner
GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"
README_SCREENSHOT = REPO / "docs" / "screenshot.png"


def choose_gallery_image(page: Page, label: str) -> None:
    radio = page.get_by_role("radio", name=label, exact=True)
    # a person clicks the photo; the radio button itself is visually hidden
    page.locator("label.tile").filter(has=radio).click()
    expect(radio).to_be_checked()


def classify(page: Page) -> None:
    page.get_by_role("button", name="Classify").click()


def predictions(page: Page) -> list[tuple[str, str]]:
    rows = page.locator("#predictions li")
    return [(row.locator(".label").inner_text(), row.locator(".score").inner_text()) for row in rows.all()]


def test_gallery_goldfinch_is_classified_and_the_ticket_shown(
    page: Page, server: Server, screenshot: Callable[[Page], Path]
) -> None:
    expect(page.get_by_role("combobox", name="Model")).to_have_value("efficientnet_lite0")
    expect(page.locator("#model-state")).to_have_text("loaded")

    choose_gallery_image(page, "goldfinch")
    expect(page.locator("#selection")).to_have_text("Gallery photo: goldfinch")
    # every text the live status region shows, in order
    page.evaluate("""() => {
        window.statusTexts = [];
        const status = document.getElementById('status');
        new MutationObserver(() => window.statusTexts.push(status.textContent))
            .observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "?wait=" in request.url else None)
    classify(page)

    expect(page.get_by_role("status")).to_have_text(re.compile(r"^Succeeded: goldfinch \(\d+\.\d%\)\.$"), timeout=JOB_S)
    texts = page.evaluate("window.statusTexts")
    assert texts[0] == "Queued: waiting for a worker…", texts  # the ticket came back before the result
    assert polls and all(re.search(r"/v1/jobs/[0-9a-f]{32}\?wait=\d+$", url) for url in polls), polls
    job_id = page.locator("#job-id").inner_text()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    expect(page.locator("#job-url")).to_have_attribute("href", f"/v1/jobs/{job_id}")

    # the page shows what the API stored for this job, not something of its own
    job = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["image"] == GOLDFINCH
    expected = [(p["label"], p["score"]) for p in job["result"]["predictions"]]
    shown = predictions(page)
    assert [label for label, _ in shown] == [label for label, _ in expected]
    assert shown[0] == ("goldfinch", f"{expected[0][1] * 100:.1f}%")
    top_bar = page.locator("#predictions li .bar span").first
    width = top_bar.evaluate("el => parseFloat(el.style.width)")
    assert abs(width - expected[0][1] * 100) < 0.01

    shot_path = screenshot(page)  # always kept under test-artifacts/ui/
    if os.environ.get("UPDATE_SCREENSHOT"):  # `make screenshot` refreshes the README's picture
        # 256 colours keep the committed file around 150 KiB instead of 500
        shot = Image.open(shot_path).convert("RGB")
        shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(README_SCREENSHOT, optimize=True)


def test_uploaded_png_is_classified(
    page: Page, tmp_path: Path, seeded: tuple[Path, Path], screenshot: Callable[[Page], Path]
) -> None:
    png = tmp_path / "my orange.png"
    Image.open(seeded[1] / ORANGE).save(png)  # PNG, and not byte-identical to any gallery file

    page.get_by_label("choose a file").set_input_files(png)
    expect(page.locator("#upload-preview")).to_be_visible()
    expect(page.locator("#upload-name")).to_contain_text("my orange.png")
    expect(page.get_by_role("radio", checked=True)).to_have_count(0)  # the file replaces a gallery choice
    classify(page)

    expect(page.get_by_role("status")).to_contain_text("Succeeded: orange", timeout=JOB_S)
    expect(page.locator("#job-image")).to_have_text("my orange.png")
    assert len(predictions(page)) == 5
    # the history keeps a small picture of the upload (an object URL would not survive a reload)
    expect(page.locator(".history-item img").first).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"))
    screenshot(page)


def test_text_file_is_refused_with_a_415_in_words(page: Page, screenshot: Callable[[Page], Path]) -> None:
    # named and typed as a JPEG, so the page's own check lets it through: the server reads it
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture\n"}]
    )
    classify(page)

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Not an image")
    expect(alert).to_contain_text("“notes.jpg” is not an image the classifier can read.")
    expect(alert).to_contain_text("Accepted formats: BMP, GIF, JPEG, PNG, TIFF, WEBP.")
    expect(page.locator("#job")).to_be_hidden()  # refused: no ticket
    expect(page.locator(".history-item")).to_have_count(0)
    screenshot(page)


def test_too_large_file_is_refused_with_the_limit(page: Page) -> None:
    # a server that does not publish its limits (/v1/info): the page sends the file, the server refuses
    page.route("**/v1/info", lambda route: route.abort())
    page.reload()
    page.wait_for_selector("body[data-ready]")
    # just over the limit: the server reads it all and answers 413 (far over, it answers before reading)
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (UPLOAD_LIMIT + 1024)}]
    )
    classify(page)

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("That file is too large")
    # sizes that round to the same MiB are given in bytes
    expect(alert).to_contain_text("“huge.jpg” is 2,098,176 bytes; the limit is 2,097,152 bytes.")


def test_unknown_model_is_refused_with_a_422_in_words(page: Page) -> None:
    # the model list can go stale (another server behind the ingress): the request carries a model
    # the server does not have, and the real server answers
    choose_gallery_image(page, "goldfinch")
    page.route(
        "**/v1/jobs",
        lambda route: route.continue_(post_data=json.dumps({"model": "no_such_model", "image": GOLDFINCH})),
    )
    classify(page)
    expect(page.get_by_role("alert")).to_contain_text("The request was refused")
    expect(page.get_by_role("alert")).to_contain_text("no_such_model")


def test_busy_unavailable_and_unreachable_server_errors_in_words(
    browser: Browser, tmp_path: Path, seeded: tuple[Path, Path]
) -> None:
    """Real servers produce each error. 429: the embedded worker cannot start (a model of its pool
    has no weights), so the queue, bounded to one job, fills. 503: the store cannot be opened. Then that
    server is stopped: the connection is refused."""
    models_dir, gallery_dir = seeded
    (tmp_path / "stalled").mkdir()
    (tmp_path / "broken").mkdir()

    def open_page(url: str) -> Page:
        page = browser.new_context(viewport=VIEWPORT, base_url=url).new_page()
        page.goto("/")
        page.wait_for_selector("body[data-ready]")
        choose_gallery_image(page, "goldfinch")
        return page

    # lite0's weights only, and one pool serving lite0 and lite1: the worker never starts
    only_lite0 = tmp_path / "stalled" / "models"
    only_lite0.mkdir()
    weights = get_spec("efficientnet_lite0").weights_file
    shutil.copy(models_dir / weights, only_lite0 / weights)
    stalled = {"CLASSIFIER_POOLS": "stalled=efficientnet_lite0,efficientnet_lite1", "CLASSIFIER_QUEUE_MAX_LENGTH": "1"}
    with embedded_server(tmp_path / "stalled", only_lite0, gallery_dir, wait_for="/healthz", **stalled) as server:
        page = open_page(server.url)
        classify(page)
        expect(page.locator("#job")).to_be_visible()  # the first job is queued, and stays queued
        classify(page)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("The queue is full")
        expect(alert).to_contain_text(
            re.compile(r"Too many jobs are waiting right now\. Please try again in (a second|\d+ seconds)\.")
        )
        page.context.close()

    (tmp_path / "not-a-dir").write_text("a file where the database's folder should be")
    broken = {"CLASSIFIER_STORE_URL": f"sqlite:///{tmp_path}/not-a-dir/jobs.db"}
    with embedded_server(tmp_path / "broken", models_dir, gallery_dir, wait_for="/healthz", **broken) as server:
        page = open_page(server.url)
        classify(page)
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("The service is temporarily unavailable")
        expect(alert).to_contain_text(re.compile(r"Please try again in (a second|\d+ seconds)\."))
    classify(page)  # the server is gone now
    expect(page.get_by_role("alert")).to_contain_text("Cannot reach the server")
    page.context.close()


def test_history_lists_this_browsers_jobs_newest_first(page: Page, screenshot: Callable[[Page], Path]) -> None:
    history = page.locator(".history-item")
    expect(page.get_by_text("Your jobs will be listed here.")).to_be_visible()

    job_ids = {}
    for label in ("goldfinch", "orange"):
        choose_gallery_image(page, label)
        classify(page)
        expect(page.get_by_role("status")).to_contain_text(f"Succeeded: {label}", timeout=JOB_S)
        job_ids[label] = page.locator("#job-id").inner_text()
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("orange")
    expect(history.nth(1)).to_contain_text("goldfinch")

    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(history).to_have_count(2)  # kept in localStorage
    history.nth(1).click()  # re-show the goldfinch job from the server
    expect(page.get_by_role("status")).to_contain_text("Succeeded: goldfinch")
    expect(history.nth(1)).to_have_attribute("aria-current", "true")
    expect(page.locator("#job-id")).to_have_text(job_ids["goldfinch"])
    screenshot(page)

    page.get_by_role("button", name="Clear").click()
    expect(history).to_have_count(0)
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(history).to_have_count(0)


def test_models_offered_as_the_api_lists_them_and_a_failed_job_explained(
    page: Page, server: Server, screenshot: Callable[[Page], Path]
) -> None:
    models = httpx.get(f"{server.url}/v1/models").json()
    select = page.get_by_role("combobox", name="Model")
    for model in models:
        option = select.locator(f"option[value='{model['name']}']")
        if not model["available"]:
            expect(option).to_be_disabled()
            expect(option).to_contain_text("weights not installed")
        elif model["pool"] is None:
            expect(option).to_be_disabled()
            expect(option).to_contain_text("no worker pool serves it")
        else:
            expect(option).to_be_enabled()
    # seeded with three EfficientNet-Lite weights, the server's one pool serves only lite0
    assert [m["name"] for m in models if m["available"] and m["pool"] is None] == [
        "efficientnet_lite1",
        "efficientnet_lite2",
    ]
    expect(page.locator("#model-state")).to_have_text("loaded")

    # A JPEG whose EXIF Pillow cannot write back: accepted, then failed by the worker; the page says why
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": bad_exif_images()["jpeg-rational-as-text"]}]
    )
    classify(page)
    expect(page.get_by_role("status")).to_have_text(
        "Failed: the image could not be read: its data is damaged or cut off.", timeout=JOB_S
    )
    expect(page.locator("#predictions")).to_be_hidden()
    expect(page.locator(".history-item .pill")).to_have_text("failed")
    screenshot(page)


def test_gallery_thumbnails_load_lazily_and_are_named(page: Page, server: Server) -> None:
    images = httpx.get(f"{server.url}/v1/images").json()
    tiles = page.locator("label.tile")
    expect(tiles).to_have_count(len(images))
    expect(page.get_by_role("radio", name="European fire salamander")).to_have_count(1)
    for img in tiles.locator("img").all()[:3]:
        assert img.get_attribute("loading") == "lazy"
    first = tiles.first.locator("img")
    expect(first).to_have_attribute("src", images[0]["url"])
    assert first.evaluate("img => img.complete && img.naturalWidth") == images[0]["width"]


def test_docs_link_and_keyboard_use(page: Page, server: Server) -> None:
    expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "/docs")
    # not opened in the browser: Swagger UI's scripts come from a CDN and the tests stay on 127.0.0.1
    assert "swagger" in httpx.get(f"{server.url}/docs").text.lower()
    # keyboard only: into the gallery with Tab, between photos with the arrow keys, submit with Enter
    page.get_by_role("radio", name="tench").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="goldfinch")).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Succeeded: goldfinch", timeout=JOB_S)


def test_small_screen_has_no_sideways_scrolling(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
