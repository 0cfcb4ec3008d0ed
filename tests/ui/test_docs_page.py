"""/docs in chromium: Swagger UI's "Try it out" works with the documented example as it is."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def test_try_it_out_submits_the_documented_example(page: Page) -> None:
    page.goto("/docs")  # Swagger UI is served from the package: no CDN
    operation = page.locator("#operations-jobs-create_job_v1_jobs_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    body = operation.locator(".body-param textarea")
    expect(body).to_contain_text('"image": "n01531178_goldfinch.JPEG"')
    expect(body).not_to_contain_text("callback_url")
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("202", timeout=15_000)
