"""The performance benchmark: the same gallery images, model and thread settings through

1. the forward pass alone (this CPU's limit),
2. decode + preprocess + forward in one process (the worker's own code),
3. the whole system: gateway -> RabbitMQ -> worker -> SQLite -> results (long-poll),
4. a naive FastAPI app that classifies inside its request handler,
5. BentoML serving the same model (when it installs here),

plus the result-cache hit and the gateway's submission rate with no worker running.

    python -m bench            # the full run (make bench), writes bench/results/latest.{json,md}
    python -m bench --smoke    # a few images, seconds (make bench-smoke, CI)

docs/performance.md explains the numbers.
"""
