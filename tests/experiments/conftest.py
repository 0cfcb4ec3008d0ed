"""Fixtures for the experiments' tests: the real promtool, as the monitoring tests have it."""

from __future__ import annotations

from tests.monitoring.conftest import promtool, run_promtool

__all__ = ["promtool", "run_promtool"]
