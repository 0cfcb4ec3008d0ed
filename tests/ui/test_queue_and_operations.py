"""The page says where a queued job stands ("Queued: 2 jobs ahead · about 2 s."), and its
Operations tab shows each pool of workers, refreshed while shown. Against a gateway and results
service with no worker (jobs stay queued) whose pool finished 100 jobs in the last 50 s."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from classifier_common.store.sqlite import SqliteJobStore
from tests.ui.conftest import VIEWPORT, opened_page
from tests.ui.test_page import GOLDFINCH, choose_gallery_image, classify
from tests.utils.queue_system import serving, settings_for, system_without_workers, worked, worker_alive


@pytest.fixture
def queue_url(seeded, tmp_path: Path) -> Iterator[str]:
    store = SqliteJobStore(tmp_path / "jobs.db")
    worked(store, 100, over_s=50.0, failed=2, dead_lettered=1)  # about 2 jobs/s
    worker_alive(store, ["efficientnet_lite0"])
    try:
        with serving(system_without_workers(settings_for(seeded), store)) as url:
            yield url
    finally:
        store.close()


@pytest.fixture
def queue_page(browser: Browser, queue_url: str) -> Iterator[Page]:
    with opened_page(browser, queue_url) as page:
        yield page


def _submit(url: str, n: int) -> None:
    for _ in range(n):
        response = httpx.post(f"{url}/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH})
        assert response.status_code == 202, response.text


def test_a_queued_job_shows_how_many_are_ahead(
    queue_page: Page, queue_url: str, screenshot: Callable[[Page], Path]
) -> None:
    page = queue_page
    _submit(queue_url, 2)
    choose_gallery_image(page, "goldfinch")
    classify(page)
    # The ticket first, then the long-poll's answer with the job's place.
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^Queued: 2 jobs ahead · about [12] s\.$"))
    screenshot(page)


def test_the_operations_tab_shows_each_pool_and_keeps_it_fresh(
    queue_page: Page, queue_url: str, screenshot: Callable[[Page], Path]
) -> None:
    page = queue_page
    _submit(queue_url, 3)
    tab = page.get_by_role("link", name="Operations")
    tab.click()
    expect(tab).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()
    expect(page.locator("#job-form")).to_be_hidden()

    row = page.locator("#operations-pools tr[data-pool='default']")
    expect(row.get_by_role("rowheader")).to_have_text("default")
    cells = row.get_by_role("cell")
    # models, backlog, in the queue, consumers, ready workers, jobs/s, jobs/s while busy, p50, p95, failed,
    # dead-lettered
    expect(cells.nth(1)).to_have_text("33 queued · 0 running")
    expect(cells.nth(2)).to_have_text("3 ready0 unacked")
    expect(cells.nth(3)).to_have_text("0")
    expect(cells.nth(4)).to_have_text("1")
    expect(cells.nth(5)).to_have_text("0.33")
    expect(cells.nth(6)).to_have_text("2.22")
    expect(cells.nth(8)).to_have_text("1.00 s")
    expect(cells.nth(9)).to_have_text("2")
    expect(cells.nth(10)).to_have_text("1")
    expect(cells.nth(10)).to_have_class(re.compile(r"\balarm\b"))
    expect(page.locator("#operations-updated")).to_contain_text("Last 5 min · updated")
    screenshot(page)

    _submit(queue_url, 2)  # the next refresh shows them, without a reload
    expect(cells.nth(1)).to_have_text("55 queued · 0 running", timeout=12_000)

    page.get_by_role("link", name="Classify").click()
    expect(page.locator("#job-form")).to_be_visible()
    expect(page.locator("#operations")).to_be_hidden()
    # A link to the tab opens it directly.
    page.goto("/#operations")
    expect(page.locator("#operations-pools tr[data-pool='default']")).to_be_visible()


def test_operations_needs_a_key_when_keys_are_on(browser: Browser, seeded, tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    with serving(system_without_workers(settings_for(seeded, api_keys=["k-ops"]), store)) as url:
        context = browser.new_context(viewport=VIEWPORT, base_url=url)
        page = context.new_page()
        page.goto("/#operations")
        expect(page.locator("#operations-error")).to_contain_text("An API key is needed")
        context.close()
    store.close()


def test_operations_on_a_phone_in_dark_mode(
    browser: Browser, queue_url: str, screenshot: Callable[[Page], Path]
) -> None:
    """The page never scrolls sideways: the table scrolls inside its panel."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", base_url=queue_url)
    page = context.new_page()
    page.goto("/#operations")
    expect(page.locator("#operations-pools tr[data-pool='default']")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    table = page.locator(".table-scroll")
    assert table.evaluate("el => el.scrollWidth > el.clientWidth")  # its own scrollbar
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 19, 26)", background  # the dark palette
    screenshot(page)
    context.close()
