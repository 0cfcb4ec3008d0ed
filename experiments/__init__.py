"""Scaling experiments: drive a load profile against the system, record backlog, replicas,
throughput and latency, and report on them.

Modules, each with one job:

- :mod:`experiments.hpa` -- the Kubernetes HPA v2 algorithm (pure; time passed in).
- :mod:`experiments.profiles` -- load profiles (step, ramp, spike): submissions per second over time.
- :mod:`experiments.report` -- samples.csv + jobs.csv -> PNG plots and summary.md.
- :mod:`experiments.adapter_query` -- the backlog PromQL exactly as prometheus-adapter renders it.
- :mod:`experiments.targets` -- the local Prometheus' worker targets file.

Command line: ``python -m experiments --help``.
"""
