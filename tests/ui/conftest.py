"""The web page in a real browser: Debian's chromium driven by Playwright, against the real embedded
system started as `make run` starts it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.utils.server import REPO, Server, embedded_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "ui"
VIEWPORT = {"width": 1280, "height": 800}
UPLOAD_LIMIT = 2 * 1024 * 1024  # small, so the 413 test sends little


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Server]:
    models_dir, gallery_dir = seeded
    state = tmp_path_factory.mktemp("ui-server")
    with embedded_server(state, models_dir, gallery_dir, CLASSIFIER_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT)) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (requirements/apt-ui.txt, `make setup`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def opened_page(browser: Browser, url: str) -> Iterator[Page]:
    """A fresh browser profile (empty history) on the page at ``url``, ready; an uncaught script
    error fails the test."""
    context = browser.new_context(viewport=VIEWPORT, base_url=url)
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto("/")
    page.wait_for_selector("body[data-ready]")
    yield page
    context.close()
    assert not script_errors, f"uncaught errors in the page: {script_errors}"


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with opened_page(browser, server.url) as opened:
        yield opened


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page], Path]:
    """Saves the viewport under test-artifacts/ui/<test name>.png (CI keeps it as an artifact)."""

    def take(page: Page) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}.png"
        page.screenshot(path=path, animations="disabled")
        return path

    return take
