"""Several files chosen or dropped at once: one batch, each file a job in the history, kept up to
date until the batch is done."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.ui.test_page import GOLDFINCH, JOB_S, ORANGE, classify


def history_row(page: Page, name: str):
    return page.locator(".history-item").filter(has_text=name)


def test_several_files_chosen_make_one_batch_and_each_job_shows_in_the_history(
    page: Page, seeded: tuple[Path, Path], screenshot: Callable[[Page], Path]
) -> None:
    gallery = seeded[1]
    requests: list[str] = []
    page.on(
        "request", lambda r: requests.append(f"{r.method} {r.url.split('/', 3)[-1]}") if r.method == "POST" else None
    )
    page.get_by_label("choose a file").set_input_files(
        files=[
            {"name": "bird.jpg", "mimeType": "image/jpeg", "buffer": (gallery / GOLDFINCH).read_bytes()},
            {"name": "fruit.jpg", "mimeType": "image/jpeg", "buffer": (gallery / ORANGE).read_bytes()},
            # named and typed as a JPEG: only the server, reading it, refuses it (and it alone)
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a picture\n"},
        ]
    )
    expect(page.locator("#selection")).to_have_text("3 files: bird.jpg, fruit.jpg, notes.jpg")
    classify(page)

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("1 of 3 files refused")
    expect(alert).to_contain_text("“notes.jpg”")
    status = page.locator("#batch-status")
    expect(status).to_have_text("Batch done (3 files): 2 of 2 jobs finished · 1 refused", timeout=JOB_S)
    expect(history_row(page, "bird.jpg").locator(".pill")).to_have_text("succeeded")
    expect(history_row(page, "bird.jpg")).to_contain_text("goldfinch")
    expect(history_row(page, "fruit.jpg")).to_contain_text("orange")
    expect(history_row(page, "notes.jpg")).to_have_count(0)  # refused: no job
    assert requests == ["POST v1/batches"], requests  # one request for the three files
    screenshot(page)

    page.reload()  # the history keeps the batch's jobs, with their pictures
    page.wait_for_selector("body[data-ready]")
    expect(history_row(page, "bird.jpg").locator("img")).to_have_attribute("src", re.compile(r"^data:image/jpeg"))


def test_files_dropped_together_make_one_batch(page: Page, screenshot: Callable[[Page], Path]) -> None:
    # a drop as the browser makes it: a DataTransfer holding two files, on the drop zone
    page.evaluate(
        """async (names) => {
          const dt = new DataTransfer();
          for (const name of names) {
            const blob = await (await fetch(`/v1/images/${name}`)).blob();
            dt.items.add(new File([blob], `dropped-${name}`, { type: 'image/jpeg' }));
          }
          const zone = document.getElementById('dropzone');
          zone.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
          zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [GOLDFINCH, ORANGE],
    )
    expect(page.locator("#selection")).to_contain_text("2 files: dropped-")
    classify(page)
    expect(page.locator("#batch-status")).to_have_text("Batch done (2 files): 2 of 2 jobs finished", timeout=JOB_S)
    expect(page.get_by_role("alert")).to_be_hidden()
    for name in (GOLDFINCH, ORANGE):
        expect(history_row(page, f"dropped-{name}").locator(".pill")).to_have_text("succeeded")
    screenshot(page)
