"""Cancel and Retry on the page: Cancel for a queued job, Retry for a canceled (or failed) one,
and the link between a job and its retry, against a server whose jobs stay queued (its worker
never starts; a failed job is failed in its store, as a worker records it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from classifier_common.domain import JobError, utcnow
from classifier_common.store.sqlite import SqliteJobStore
from tests.client.conftest import stalled  # noqa: F401, F811 - the fixture: a server whose jobs stay queued
from tests.ui.conftest import opened_page
from tests.ui.test_page import JOB_S, choose_gallery_image, classify
from tests.utils.server import Server


@pytest.fixture
def stalled_page(browser: Browser, stalled: Server) -> Iterator[Page]:  # noqa: F811
    with opened_page(browser, stalled.url) as page:
        yield page


def queue_goldfinch(page: Page) -> str:
    """Submit the goldfinch on the page; the stalled server keeps it queued. Its job id."""
    choose_gallery_image(page, "goldfinch")
    classify(page)
    expect(page.get_by_role("status")).to_contain_text("Queued")
    return page.locator("#job-id").inner_text()


def test_cancel_a_queued_job_then_retry_it_and_follow_the_links(
    stalled_page: Page,
    stalled: Server,  # noqa: F811
    screenshot: Callable[[Page], Path],
) -> None:
    page = stalled_page
    old_id = queue_goldfinch(page)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)

    cancel = page.get_by_role("button", name="Cancel job")
    cancel.focus()
    page.keyboard.press("Enter")  # by keyboard: focus stays in the result afterwards
    expect(page.get_by_role("status")).to_contain_text("Canceled")
    expect(page.locator("#job")).to_have_attribute("data-status", "canceled")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    retry = page.get_by_role("button", name="Retry")
    expect(retry).to_be_focused()
    assert httpx.get(f"{stalled.url}/v1/jobs/{old_id}").json()["status"] == "canceled"

    retry.click()
    expect(page.locator("#job-id")).not_to_have_text(old_id)
    new_id = page.locator("#job-id").inner_text()
    expect(page.get_by_role("status")).to_contain_text("Queued")
    back = page.get_by_role("button", name=f"Retry of job {old_id}: show it")
    expect(back).to_be_visible()
    expect(page.locator("#job-links")).to_contain_text(f"Retry of job {old_id[:8]}")
    screenshot(page)
    assert httpx.get(f"{stalled.url}/v1/jobs/{new_id}").json()["retry_of"] == old_id

    back.click()  # to the old job, which names its retry and offers no second one
    expect(page.locator("#job-id")).to_have_text(old_id)
    expect(page.locator("#job-links")).to_contain_text(f"Retried as job {new_id[:8]}")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    page.get_by_role("button", name=f"Retried as job {new_id}: show it").click()
    expect(page.locator("#job-id")).to_have_text(new_id)
    page.get_by_role("button", name="Cancel job").click()  # the stalled queue is short
    expect(page.locator("#job")).to_have_attribute("data-status", "canceled")


def test_a_failed_job_offers_retry(
    stalled_page: Page,
    stalled: Server,  # noqa: F811
    screenshot: Callable[[Page], Path],
) -> None:
    page = stalled_page
    job_id = queue_goldfinch(page)
    store = SqliteJobStore(stalled.log_path.parent / "jobs.db")  # fails it as a worker would record it
    try:
        store.start(job_id, utcnow())
        store.fail(job_id, JobError(code="internal_error", message="out of memory"), utcnow())
    finally:
        store.close()
    expect(page.get_by_role("status")).to_contain_text("Failed", timeout=JOB_S)  # the page follows it
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#job-id")).not_to_have_text(job_id)
    expect(page.locator("#job-links")).to_contain_text(f"Retry of job {job_id[:8]}")
    expect(page.get_by_role("status")).to_contain_text("Queued")
    screenshot(page)
    page.get_by_role("button", name="Cancel job").click()  # the stalled queue is short
    expect(page.locator("#job")).to_have_attribute("data-status", "canceled")
