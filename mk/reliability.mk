# Reliability and security: faults, load, bad input, fuzzing, callbacks, API keys, CORS (tests/reliability).
# What the figures mean is in docs/guarantees.md. The broker's faults (restart, SIGKILL, memory
# alarm) run on a RabbitMQ node the tests start for themselves; the shared broker is never touched.

.PHONY: reliability reliability-figures reliability-full

reliability: ## Faults, load (2,000 x 50 clients), bad input, OpenAPI fuzzing, callbacks, security; prints the figures
	$(PY) -m pytest tests/reliability -p no:cacheprovider

reliability-figures: ## The broker faults at the sizes docs/guarantees.md reports (10 s SIGKILL outage, 60 s memory alarm, 5,000-job backlog); ~10 min
	RELIABILITY_FULL=1 $(PY) -m pytest tests/reliability/test_broker_faults.py -p no:cacheprovider -s

reliability-full: ## The disk-full and long-poll figures at full size (60 s full; 500 long-polls + 300 slow clients)
	RELIABILITY_FULL_SIZE=1 $(PY) -m pytest tests/reliability/test_disk_full.py tests/reliability/test_capacity.py -s -p no:cacheprovider
