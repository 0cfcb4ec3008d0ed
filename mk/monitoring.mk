# Monitoring: Prometheus rules and their unit tests, the local Prometheus config.
# promtool comes from Debian's `prometheus` package (requirements/apt-monitoring.txt).
PROMTOOL ?= promtool

.PHONY: monitoring-check

monitoring-check: ## promtool: check the alert/recording rules and local Prometheus config, run the rule unit tests
	$(PROMTOOL) check rules monitoring/prometheus/alerts.yaml
	cd monitoring/prometheus && $(PROMTOOL) test rules alerts_test.yaml
	$(PROMTOOL) check config monitoring/prometheus/local.yml

# Helm reads only files inside the chart: the rule file and the dashboards are copied into
# helm/classifier/files/ (tests/monitoring/test_chart_monitoring.py fails while the copies differ).
CHART_FILES := helm/classifier/files

.PHONY: chart-files experiment

chart-files: ## Copy monitoring/prometheus/alerts.yaml and the Grafana dashboards into the chart
	install -D -m 0644 monitoring/prometheus/alerts.yaml $(CHART_FILES)/prometheus/alerts.yaml
	rm -f $(CHART_FILES)/dashboards/*.json
	install -D -m 0644 -t $(CHART_FILES)/dashboards monitoring/grafana/dashboards/*.json

# Scaling experiments (docs/metrics.md, "Scaling experiments"). Without a cluster (the default)
# a local stack, a local Prometheus and the HPA emulator; EXPERIMENT_TARGET=cluster drives
# BASE_URL instead and reads the real HPA (Prometheus port-forwarded to PROMETHEUS_URL).
# EXPERIMENT_POOLS="lite=step big=steady:rate=0.4,service_ms=1500": several worker pools instead
# of PROFILE, each with its own load, queue, workers and HPA emulator (local only).
PROFILE ?= step
EXPERIMENT_POOLS ?=
EXPERIMENT_TARGET ?= local
EXPERIMENT_OUT ?= data/experiments/$(if $(EXPERIMENT_POOLS),pools,$(PROFILE))-$(shell date +%Y%m%d-%H%M%S)
EXPERIMENT_ARGS ?=
PROMETHEUS_URL ?= http://127.0.0.1:9090

experiment: ## Scaling experiment PROFILE=step|ramp|spike|steady, or EXPERIMENT_POOLS="lite=step big=steady"; report in EXPERIMENT_OUT
	$(PY) -m experiments run $(if $(EXPERIMENT_POOLS),$(addprefix --pool ,$(EXPERIMENT_POOLS)),--profile $(PROFILE)) \
		--out $(EXPERIMENT_OUT) \
		$(if $(filter cluster,$(EXPERIMENT_TARGET)),--base-url $(BASE_URL) --prometheus-url $(PROMETHEUS_URL) --namespace $(K8S_NAMESPACE)) \
		$(EXPERIMENT_ARGS)

.PHONY: prometheus

prometheus: ## Prometheus for `make stack` on http://127.0.0.1:9090 (WORKERS workers; rules loaded)
	$(PY) -m experiments targets --out data/stack/prometheus-targets.json \
		--ports $$(seq -s, 19100 $$((19100 + $(or $(WORKERS),2) - 1)))
	prometheus --config.file=monitoring/prometheus/local.yml --storage.tsdb.path=data/stack/prometheus \
		--web.listen-address=127.0.0.1:9090
