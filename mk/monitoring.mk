# Monitoring: Prometheus rules and their unit tests, the local Prometheus config.
# promtool comes from Debian's `prometheus` package (requirements/apt-monitoring.txt).
PROMTOOL ?= promtool

.PHONY: monitoring-check

monitoring-check: ## promtool: check the alert/recording rules and local Prometheus config, run the rule unit tests
	$(PROMTOOL) check rules monitoring/prometheus/alerts.yaml
	cd monitoring/prometheus && $(PROMTOOL) test rules alerts_test.yaml
	$(PROMTOOL) check config monitoring/prometheus/local.yml
