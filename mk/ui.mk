.PHONY: test-ui screenshot

test-ui: ## Browser (Playwright + Debian's chromium), CLI and Python client tests against a real one-process server
	$(PY) -m pytest tests/ui tests/cli tests/client

screenshot: ## Refresh docs/screenshot.png (the README's picture) from the browser test
	UPDATE_SCREENSHOT=1 $(PY) -m pytest tests/ui -k goldfinch
