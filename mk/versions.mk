# Third-party versions: every tool, chart and image pin is in versions.env (its header says how to
# read it). Each becomes a variable, NAME ?= value: KIND_VERSION, HELM_VERSION,
# KEDA_CHART_VERSION, ... A value on the command line or in the environment still wins
# (make kind-up KEDA_CHART_VERSION=2.19.0).

VERSIONS_FILE := versions.env
VERSION_PINS := $(shell sed -n 's/^\([A-Z][A-Z0-9_]*\)=\([^ #]*\).*/\1=\2/p' $(VERSIONS_FILE))
$(foreach pin,$(VERSION_PINS),$(eval $(firstword $(subst =, ,$(pin))) ?= $(word 2,$(subst =, ,$(pin)))))

.PHONY: versions-check

versions-check: ## Compare every pin in versions.env with its latest release and list what is behind (offline: says so, exits 0)
	$(PY) -m scripts.versions_check --file $(VERSIONS_FILE)
