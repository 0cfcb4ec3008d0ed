"""The Grafana dashboards are well-formed for the Grafana sidecar of kube-prometheus-stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.monitoring.conftest import DASHBOARDS

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_both_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} == {"classifier-overview.json", "classifier-model.json"}


def test_dashboard_uids_are_unique_and_stable() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert sorted(uids) == ["classifier-model", "classifier-overview"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["title"]
    panels = dashboard["panels"]
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        where = f"{path.name}: {panel.get('title')!r}"
        assert panel["datasource"] == DATASOURCE, where
        assert panel["targets"], f"{where}: no target"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, where
            assert target["expr"].strip(), where


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    occupied: dict[tuple[int, int], str] = {}
    for panel in load(path)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_datasource_is_a_prometheus_variable(path: Path) -> None:
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE


def test_per_model_dashboard_filters_every_query_by_model() -> None:
    dashboard = load(next(p for p in DASHBOARDS if p.name == "classifier-model.json"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["model"]["type"] == "query"
    assert variables["model"]["multi"] is True
    assert "model" in variables["model"]["query"]["query"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert 'model=~"$model"' in target["expr"], panel["title"]


def test_overview_covers_what_the_issue_lists() -> None:
    dashboard = load(next(p for p in DASHBOARDS if p.name == "classifier-overview.json"))
    text = json.dumps(dashboard["panels"])
    for needle in (
        "classifier_jobs_submitted_total",
        "classifier_http_request_duration_seconds_bucket",
        "classifier_inference_duration_seconds_bucket",
        "classifier_job_queue_wait_seconds_bucket",
        "classifier_batch_size",
        "classifier_result_cache_total",
        "classifier_backlog_jobs",
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "classifier:backlog_per_worker",
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "kube_horizontalpodautoscaler_status_current_replicas",
        'status=~\\"5..\\"',
        "classifier_jobs{",
    ):
        assert needle in text, needle
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in text


def test_overview_shows_backlog_throughput_latency_and_replicas_per_pool() -> None:
    dashboard = load(next(p for p in DASHBOARDS if p.name == "classifier-overview.json"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    pool = variables["pool"]
    assert pool["type"] == "query" and pool["multi"] is True and pool["includeAll"] is True
    assert "pool)" in pool["query"]["query"]
    panels = {panel["title"]: panel for panel in dashboard["panels"]}
    for title, needle in (
        ("Backlog per pool", "classifier:pool_backlog:sum"),
        ("Throughput per pool", "classifier_jobs_processed_total"),
        ("Latency per pool", "classifier_job_queue_wait_seconds_bucket"),
        ("Replicas per pool", "kube_deployment_spec_replicas"),
        ("Backlog per worker", "classifier:backlog_per_worker"),
    ):
        exprs = [target["expr"] for target in panels[title]["targets"]]
        assert any(needle in expr for expr in exprs), title
        for expr in exprs:
            # Every query of a per-pool panel follows the pool variable.
            assert 'pool=~"$pool"' in expr or "classifier-worker-$pool" in expr, (title, expr)
            assert "by (pool)" in expr or "by (le, pool)" in expr or "$pool" in expr, (title, expr)


def test_no_query_reads_a_single_jobs_queue() -> None:
    """Each pool has its queue classifier.jobs.<pool>: a query of `classifier.jobs` alone
    would show nothing."""
    for path in DASHBOARDS:
        text = path.read_text()
        assert 'queue=\\"classifier.jobs\\"' not in text, path.name
        assert 'queue=\\"classifier.jobs.dead\\"' not in text, path.name
