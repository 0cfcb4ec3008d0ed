# Performance benchmark: bench/, results in bench/results/, explained in docs/performance.md.
.PHONY: bench bench-smoke bench-tools bench-decode-bombs bench-claim-check

# The processes that import torch (workers, in-process loops, naive app, BentoML) run on the CPU
# build of torch, as the worker images do; the gateway, results service and harness use $(VENV).
BENCH_CPU_VENV := .tools/bench-cpu

bench-tools: ## torch's CPU build in .tools/bench-cpu and BentoML in .tools/bentoml (borrowing it), for the benchmark
	PROJECT_VENV="$(VENV)" bench/install-cpu-torch.sh
	PROJECT_VENV="$(BENCH_CPU_VENV)" bench/install-bentoml.sh

bench: ## The full benchmark (about 7 minutes): prints the table, writes bench/results/latest.{json,md}
	@$(MAKE) --no-print-directory bench-tools || echo "make bench-tools failed: without $(BENCH_CPU_VENV) the torch processes \
	run on $(VENV)'s torch (the report's header says which), without BentoML its rows are reported as not run"
	$(PY) -m bench $(BENCH_ARGS)

bench-smoke: ## The benchmark on 3 images for ~1.5 s per row (CI keeps the harness working); writes data/bench-smoke/
	$(PY) -m bench --smoke $(BENCH_ARGS)

bench-decode-bombs: ## Gateway and worker peak memory for crafted decompression bombs (about 6 minutes): bench/results/decode_bombs.{json,md}
	$(PY) -m bench.decode_bombs

bench-claim-check: ## An upload inline in the queue message against stored in the job store, 16 KiB to 10 MiB (about 5 minutes): bench/results/claim_check.{json,md}
	$(PY) -m bench.claim_check
