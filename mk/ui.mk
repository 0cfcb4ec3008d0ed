.PHONY: test-ui screenshot

test-ui: ## Browser (Playwright + Debian's chromium) and CLI tests against a real embedded server
	$(PY) -m pytest tests/ui tests/cli

screenshot: ## Refresh docs/screenshot.png (the README's picture) from the browser test
	UPDATE_SCREENSHOT=1 $(PY) -m pytest tests/ui -k goldfinch
