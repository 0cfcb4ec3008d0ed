# Reliability and security: faults, load, bad input, fuzzing, callbacks, API keys, CORS (tests/reliability).
# What the figures mean is in docs/guarantees.md. The broker-restart test stops and restarts the
# local RabbitMQ (rabbitmqctl stop_app/start_app) for a few seconds.

.PHONY: reliability reliability-full

reliability: ## Faults, load (2,000 x 50 clients), bad input, OpenAPI fuzzing, callbacks, security; prints the figures
	$(PY) -m pytest tests/reliability -p no:cacheprovider

reliability-full: ## The disk-full and long-poll figures at full size (60 s full; 500 long-polls + 300 slow clients)
	RELIABILITY_FULL_SIZE=1 $(PY) -m pytest tests/reliability/test_disk_full.py tests/reliability/test_capacity.py -s -p no:cacheprovider
