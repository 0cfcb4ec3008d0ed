# Performance benchmark (issue 7): bench/, results in bench/results/, explained in docs/performance.md.
.PHONY: bench bench-smoke bench-tools

bench-tools: ## BentoML in its own venv under .tools/bentoml, for the benchmark's scenario (5)
	PROJECT_VENV="$(VENV)" bench/install-bentoml.sh

bench: ## The full benchmark (about 10 minutes): prints the table, writes bench/results/latest.{json,md}
	@$(MAKE) --no-print-directory bench-tools || echo "BentoML could not be installed: its rows are reported as not run"
	$(PY) -m bench $(BENCH_ARGS)

bench-smoke: ## The benchmark on 3 images for ~1.5 s per row (CI keeps the harness working); writes data/bench-smoke/
	$(PY) -m bench --smoke $(BENCH_ARGS)
