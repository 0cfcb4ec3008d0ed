# Reliability and security: faults, load, bad input, fuzzing, callbacks, API keys, CORS (tests/reliability).
# What the figures mean is in docs/guarantees.md. The broker-restart test stops and restarts the
# local RabbitMQ (rabbitmqctl stop_app/start_app) for a few seconds.

.PHONY: reliability

reliability: ## Faults, load (2,000 x 50 clients), bad input, OpenAPI fuzzing, callbacks, security; prints the figures
	$(PY) -m pytest tests/reliability -p no:cacheprovider
