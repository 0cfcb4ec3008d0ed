"""What the page tells a person, and where: errors brought into view, checks made when a file is
chosen, keyboard focus that stays put, words instead of decoder messages, the phone's copy."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Page, expect

from tests.ui.conftest import UPLOAD_LIMIT
from tests.ui.test_page import JOB_S, ORANGE, choose_gallery_image, classify
from tests.utils.server import Server

PHONE = {"width": 375, "height": 740}


def test_phone_error_after_classify_is_scrolled_to_and_focused(page: Page, screenshot: Callable[[Page], Path]) -> None:
    # the result panel is below the whole gallery on a phone: the error must come to the person
    page.set_viewport_size(PHONE)
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture\n"}]
    )
    classify(page)  # named and typed as a JPEG: only the server, reading it, finds out
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Not an image")
    expect(alert).to_be_focused()
    expect(alert).to_be_in_viewport()
    screenshot(page)


def test_decoder_message_is_a_detail_under_plain_words(page: Page, seeded: tuple[Path, Path]) -> None:
    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": _truncated_png(seeded[1] / ORANGE)}]
    )
    classify(page)
    alert = page.get_by_role("alert")
    expect(alert.locator("strong")).to_have_text("That image could not be read")
    expect(alert).to_contain_text("“broken.png” looks like an image, but its data is damaged or cut off.")
    # the server's own words stay available, set apart as a detail
    detail = alert.locator(".error-detail")
    expect(detail).to_contain_text(re.compile(r"^Details: the image could not be decoded: "))
    lead = alert.locator("span").inner_text()
    assert "decoded" not in lead and "stream" not in lead, lead


def test_too_large_or_wrong_type_is_refused_when_chosen(page: Page, server: Server) -> None:
    info = httpx.get(f"{server.url}/v1/info").json()
    assert info["max_upload_bytes"] == UPLOAD_LIMIT
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" else None)

    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (UPLOAD_LIMIT + 1024)}]
    )
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("That file is too large")
    expect(alert).to_contain_text("“huge.jpg” is 2,098,176 bytes; the limit is 2,097,152 bytes.")
    expect(page.get_by_role("button", name="Classify")).to_be_disabled()  # nothing to send

    page.get_by_label("choose a file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture\n"}]
    )
    expect(alert).to_contain_text("“notes.txt” is not an image the classifier can read.")
    expect(alert).to_contain_text("Accepted formats: BMP, GIF, JPEG, PNG, TIFF, WEBP.")
    expect(page.get_by_role("button", name="Classify")).to_be_disabled()
    assert uploads == []  # refused before a byte was sent


def test_focus_stays_on_classify_and_its_ring_is_visible(page: Page) -> None:
    choose_gallery_image(page, "goldfinch")
    button = page.get_by_role("button", name="Classify")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#job")).to_be_visible()
    # while the request was out and after: the keyboard user is where they were
    expect(page.get_by_role("button", name=re.compile("Classify|Submitting"))).to_be_focused()
    expect(page.get_by_role("status")).to_contain_text("Succeeded: goldfinch", timeout=JOB_S)
    expect(button).to_be_focused()

    # the focus ring contrasts 3:1 with what is behind it (WCAG 1.4.11), light and dark
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.get_by_role("radio", name="tench").focus()
        page.keyboard.press("ArrowRight")  # from the keyboard: :focus-visible
        ratio = page.evaluate(_RING_CONTRAST, "#gallery input:focus ~ img")
        assert ratio >= 3, f"{scheme}: the focus ring contrasts {ratio:.2f}:1 with the panel"


def test_focused_tile_is_not_hidden_by_the_sticky_bar(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 560})
    radios = page.get_by_role("radio")
    radios.first.focus()
    for _ in range(14):  # down the gallery, row by row with the arrow keys
        page.keyboard.press("ArrowRight")
        tile = page.locator("label.tile").filter(has=page.locator("input:focus"))
        box = tile.bounding_box()
        bar = page.locator(".submit-bar").bounding_box()
        assert box is not None and bar is not None
        assert box["y"] + box["height"] <= bar["y"] + 1, f"the focused tile ends at {box}, the bar starts at {bar}"


def test_phone_offers_the_camera(page: Page, screenshot: Callable[[Page], Path]) -> None:
    page.set_viewport_size(PHONE)
    expect(page.locator(".dropzone")).to_contain_text("Take a photo or choose a file", use_inner_text=True)
    camera = page.get_by_label("Take a photo")
    expect(camera).to_have_attribute("capture", "environment")
    expect(camera).to_have_attribute("accept", "image/*")
    expect(page.get_by_text("Drop your own image here")).to_be_hidden()  # nothing is dropped on a phone
    screenshot(page)

    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.get_by_text("Drop your own image here")).to_be_visible()
    expect(page.get_by_text("Take a photo")).to_be_hidden()
    expect(page.locator("#camera")).to_be_hidden()  # not a Tab stop where it is not offered


def _truncated_png(source: Path) -> bytes:
    out = io.BytesIO()
    Image.open(source).save(out, format="PNG")
    data = out.getvalue()
    return data[: len(data) // 2]  # the header is fine, the pixel data stops half-way


# The contrast of the focus ring (box-shadow colour) of the element matching the selector with the
# panel's background, as WCAG computes it.
_RING_CONTRAST = """(selector) => {
    const ring = getComputedStyle(document.querySelector(selector)).boxShadow;
    const back = getComputedStyle(document.querySelector('.panel')).backgroundColor;
    const rgb = (css) => css.match(/rgba?\\(([^)]+)\\)/)[1].split(',').slice(0, 3).map(Number);
    const lum = ([r, g, b]) => [r, g, b]
        .map((c) => c / 255)
        .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const [a, b] = [lum(rgb(ring)), lum(rgb(back))].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
}"""
