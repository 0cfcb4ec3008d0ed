"""The HPA emulator against the worked examples of the Kubernetes documentation, plus edge cases.

Sources of the examples:
- Horizontal Pod Autoscaling, "Algorithm details" and "Configurable scaling behavior":
  https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/
- HorizontalPodAutoscaler Walkthrough:
  https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale-walkthrough/
"""

from __future__ import annotations

import pytest

from experiments.hpa import (
    Autoscaler,
    Behavior,
    HPASpec,
    HPAState,
    MetricTarget,
    metric_proposal,
    parse_quantity,
    reconcile,
    replay,
)

SYNC_S = 15  # the controller's default --horizontal-pod-autoscaler-sync-period


def backlog_spec(
    *, target: float = 30, min_replicas: int = 1, max_replicas: int = 10, behavior: dict | None = None
) -> HPASpec:
    """The worker HPA's shape: External metric, AverageValue target (backlog per worker)."""
    return HPASpec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target=MetricTarget("AverageValue", target),
        behavior=Behavior.from_spec(behavior),
    )


# --- "Algorithm details" ----------------------------------------------------------------------


def test_docs_current_200m_desired_100m_doubles_the_replicas() -> None:
    spec = HPASpec(1, 100, MetricTarget("Value", parse_quantity("100m")))
    assert metric_proposal(spec, current_replicas=3, metric_value=parse_quantity("200m")) == 6


def test_docs_current_50m_desired_100m_halves_the_replicas() -> None:
    spec = HPASpec(1, 100, MetricTarget("Value", parse_quantity("100m")))
    assert metric_proposal(spec, current_replicas=4, metric_value=parse_quantity("50m")) == 2


def test_docs_average_value_is_the_metric_divided_by_the_pods() -> None:
    # 3 pods at 200m each against an averageValue of 100m: double.
    spec = HPASpec(1, 100, MetricTarget("AverageValue", 0.1))
    assert metric_proposal(spec, current_replicas=3, metric_value=3 * 0.2) == 6


def test_docs_ratio_within_the_default_tolerance_skips_scaling() -> None:
    spec = HPASpec(1, 100, MetricTarget("Value", 100))
    assert metric_proposal(spec, current_replicas=10, metric_value=109) == 10
    assert metric_proposal(spec, current_replicas=10, metric_value=91) == 10
    assert metric_proposal(spec, current_replicas=10, metric_value=112) == 12


# --- Walkthrough ------------------------------------------------------------------------------


def test_walkthrough_cpu_305_percent_of_a_50_percent_target_wants_7_replicas() -> None:
    # php-apache: 1 replica at 305 % CPU utilisation, target 50 % -> "resized to 7 replicas".
    spec = HPASpec(1, 10, MetricTarget("Utilization", 50))
    assert metric_proposal(spec, current_replicas=1, metric_value=305) == 7


def test_walkthrough_reaches_7_replicas_under_the_default_scale_up_policies() -> None:
    # The load stays the same, so utilisation is 305 % divided over the replicas. The default
    # policies allow max(+100 %, +4 pods) per 15 s: 1 -> 5, then 7, then it holds.
    autoscaler = Autoscaler(HPASpec(1, 10, MetricTarget("Utilization", 50)))
    replicas, history = 1, []
    for step in range(4):
        decision = autoscaler.step(step * SYNC_S, replicas, 305 / replicas)
        replicas = decision.desired_replicas
        history.append(replicas)
    assert history == [5, 7, 7, 7]
    assert autoscaler.step(4 * SYNC_S, 5, 305 / 5).reason == "DesiredWithinRange"


def test_walkthrough_external_queue_one_worker_per_30_outstanding_tasks() -> None:
    # type: External, target AverageValue 30: 100 tasks need ceil(100 / 30) = 4 workers.
    decision = reconcile(backlog_spec(target=30), HPAState(), now=0, current_replicas=1, metric_value=100)
    assert decision.proposal == 4
    assert decision.desired_replicas == 4


def test_walkthrough_object_metric_value_target() -> None:
    # requests-per-second of an Ingress, target Value 10k: 15k with 2 pods -> 3 pods.
    spec = HPASpec(1, 10, MetricTarget.from_spec({"type": "Value", "value": "10k"}))
    assert metric_proposal(spec, current_replicas=2, metric_value=15_000) == 3


# --- "Configurable scaling behavior" ------------------------------------------------------------


def test_docs_scale_down_policies_80_to_10_replicas() -> None:
    # Pods 4 / 60 s and Percent 10 / 60 s, the policy allowing the biggest change wins:
    # 80 -> 72 (8 pods), 72 -> 64 (7.2 rounded up to 8), ... Percent while above 40 replicas,
    # then the Pods policy's 4 at a time.
    behavior = {
        "scaleDown": {
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 60},
                {"type": "Percent", "value": 10, "periodSeconds": 60},
            ]
        }
    }
    spec = backlog_spec(target=1, min_replicas=1, max_replicas=100, behavior=behavior)
    autoscaler = Autoscaler(spec)
    replicas, counts = 80, [80]
    for minute in range(1, 40):
        replicas = autoscaler.step(minute * 60, replicas, metric_value=10).desired_replicas
        counts.append(replicas)
        if replicas == 10:
            break
    assert counts[:3] == [80, 72, 64]
    assert counts == [80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    steps = [a - b for a, b in zip(counts, counts[1:], strict=False)]
    below_40 = [step for count, step in zip(counts, steps, strict=False) if count <= 40]
    assert below_40[:-1] == [4] * (len(below_40) - 1)  # the last step stops at the target


def test_docs_policy_limits_within_one_period() -> None:
    # The same policies: a second sync inside the 60 s period may remove nothing more.
    behavior = {
        "scaleDown": {
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 60},
                {"type": "Percent", "value": 10, "periodSeconds": 60},
            ]
        }
    }
    autoscaler = Autoscaler(backlog_spec(target=1, max_replicas=100, behavior=behavior))
    assert autoscaler.step(0, 80, 10).desired_replicas == 72
    held = autoscaler.step(15, 72, 10)
    assert held.desired_replicas == 72
    assert held.reason == "ScaleDownLimit"
    assert autoscaler.step(60, 72, 10).desired_replicas == 64


def test_docs_select_policy_min_removes_at_most_5_pods_a_minute() -> None:
    # Percent 10 / 60 s and Pods 5 / 60 s with selectPolicy Min: the smaller change.
    behavior = {
        "scaleDown": {
            "policies": [
                {"type": "Percent", "value": 10, "periodSeconds": 60},
                {"type": "Pods", "value": 5, "periodSeconds": 60},
            ],
            "selectPolicy": "Min",
        }
    }
    spec = backlog_spec(target=1, max_replicas=100, behavior=behavior)
    assert reconcile(spec, HPAState(), now=0, current_replicas=80, metric_value=10).desired_replicas == 75
    # At 30 replicas 10 % (3) is the smaller change.
    assert reconcile(spec, HPAState(), now=0, current_replicas=30, metric_value=10).desired_replicas == 27


def test_docs_select_policy_disabled_turns_scale_down_off() -> None:
    spec = backlog_spec(behavior={"scaleDown": {"selectPolicy": "Disabled"}})
    decision = reconcile(spec, HPAState(), now=0, current_replicas=8, metric_value=0)
    assert decision.proposal < 8
    assert decision.desired_replicas == 8
    # Scaling up still works.
    assert reconcile(spec, HPAState(), now=0, current_replicas=2, metric_value=120).desired_replicas == 4


def test_docs_default_behavior_adds_4_pods_or_100_percent_every_15_seconds() -> None:
    autoscaler = Autoscaler(backlog_spec(target=1, max_replicas=100))
    assert autoscaler.step(0, 2, 1000).desired_replicas == 6  # max(2 x 2, 2 + 4)
    inside_period = autoscaler.step(5, 6, 1000)  # the 15 s period still counts the +4
    assert (inside_period.desired_replicas, inside_period.reason) == (6, "ScaleUpLimit")
    assert autoscaler.step(15, 6, 1000).desired_replicas == 12  # max(2 x 6, 6 + 4)
    assert autoscaler.step(30, 12, 1000).desired_replicas == 24


def test_docs_default_behavior_values() -> None:
    behavior = Behavior.from_spec(None)
    assert behavior.scale_up.stabilization_window_seconds == 0
    assert behavior.scale_up.select_policy == "Max"
    assert {(p.type, p.value, p.period_seconds) for p in behavior.scale_up.policies} == {
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    }
    assert behavior.scale_down.stabilization_window_seconds == 300
    assert [(p.type, p.value, p.period_seconds) for p in behavior.scale_down.policies] == [("Percent", 100, 15)]


def test_docs_downscale_stabilization_window_of_one_minute() -> None:
    # behavior.scaleDown.stabilizationWindowSeconds: 60 -> the highest recommendation of the
    # last minute is used; the scale-down happens once the high one is 60 s old.
    spec = backlog_spec(target=30, behavior={"scaleDown": {"stabilizationWindowSeconds": 60}})
    autoscaler = Autoscaler(spec)
    assert autoscaler.step(0, 4, 120).desired_replicas == 4
    for now in (15, 30, 45):
        decision = autoscaler.step(now, 4, 30)
        assert (decision.proposal, decision.desired_replicas) == (1, 4)
    assert autoscaler.step(60, 4, 30).desired_replicas == 1


def test_docs_scale_up_tolerance_of_5_percent() -> None:
    # Target 100Mi, behavior.scaleUp.tolerance 0.05: scale up only above 105Mi.
    spec = HPASpec(
        1,
        10,
        MetricTarget.from_spec({"type": "AverageValue", "averageValue": "100Mi"}),
        behavior=Behavior.from_spec({"scaleUp": {"tolerance": 0.05}}),
    )
    assert metric_proposal(spec, current_replicas=1, metric_value=parse_quantity("104Mi")) == 1
    assert metric_proposal(spec, current_replicas=1, metric_value=parse_quantity("106Mi")) == 2
    # Scale-down keeps the default 10 %.
    assert metric_proposal(spec, current_replicas=1, metric_value=parse_quantity("95Mi")) == 1


# --- edge cases -------------------------------------------------------------------------------


def test_tolerance_band_around_the_target() -> None:
    spec = backlog_spec(target=30)  # 4 workers: 120 jobs is on target
    for backlog, expected in ((126, 4), (114, 4), (140, 5), (90, 3)):
        decision = reconcile(spec, HPAState(), now=0, current_replicas=4, metric_value=backlog)
        assert decision.desired_replicas == expected, backlog


def test_tolerance_is_configurable() -> None:
    strict = HPASpec(1, 10, MetricTarget("AverageValue", 30), tolerance=0.0)
    assert metric_proposal(strict, current_replicas=4, metric_value=126) == 5
    loose = HPASpec(1, 10, MetricTarget("AverageValue", 30), tolerance=0.25)
    assert metric_proposal(loose, current_replicas=4, metric_value=140) == 4


def test_max_replicas_clamps_a_huge_backlog() -> None:
    decision = reconcile(
        backlog_spec(target=30, max_replicas=10), HPAState(), now=0, current_replicas=8, metric_value=10_000
    )
    assert decision.proposal == 334
    assert (decision.desired_replicas, decision.reason) == (10, "TooManyReplicas")


def test_min_replicas_clamps_an_empty_queue() -> None:
    decision = reconcile(backlog_spec(min_replicas=2), HPAState(), now=0, current_replicas=3, metric_value=0)
    assert decision.proposal == 0
    assert (decision.desired_replicas, decision.reason) == (2, "TooFewReplicas")


def test_default_stabilisation_holds_a_scale_down_for_300_seconds() -> None:
    autoscaler = Autoscaler(backlog_spec(target=30))
    assert autoscaler.step(0, 1, 300).desired_replicas == 5  # +4 pods: the policy limit
    assert autoscaler.step(15, 5, 300).desired_replicas == 10
    # The queue empties at t=30; the t=15 recommendation of 10 holds until it is 300 s old.
    now = 30
    while now < 315:
        decision = autoscaler.step(now, 10, 0)
        assert decision.desired_replicas == 10, now
        assert decision.proposal == 0
        now += SYNC_S
    assert autoscaler.step(315, 10, 0).desired_replicas == 1


def test_policy_limits_a_scale_up() -> None:
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}
    autoscaler = Autoscaler(backlog_spec(target=30, behavior=behavior))
    assert autoscaler.step(0, 1, 300).desired_replicas == 3
    for now in (15, 30, 45):
        decision = autoscaler.step(now, 3, 300)
        assert (decision.desired_replicas, decision.reason) == (3, "ScaleUpLimit")
    assert autoscaler.step(60, 3, 300).desired_replicas == 5


def test_scale_up_stabilisation_window_ignores_a_short_spike() -> None:
    autoscaler = Autoscaler(backlog_spec(target=30, behavior={"scaleUp": {"stabilizationWindowSeconds": 60}}))
    assert autoscaler.step(0, 2, 60).desired_replicas == 2
    spike = autoscaler.step(15, 2, 180)
    assert (spike.proposal, spike.desired_replicas) == (6, 2)
    for now in (30, 45):
        assert autoscaler.step(now, 2, 180).desired_replicas == 2
    # Sustained for the whole window: every remembered proposal is 6 now.
    assert autoscaler.step(60, 2, 180).desired_replicas == 6


def test_replicas_outside_min_max_are_corrected_directly() -> None:
    spec = backlog_spec(min_replicas=2, max_replicas=5)
    above = reconcile(spec, HPAState(), now=0, current_replicas=9, metric_value=0)
    assert (above.desired_replicas, above.reason) == (5, "AboveMaxReplicas")
    # The correction is a scale event like any other: it counts against the policies.
    assert above.state.scale_down_events == ((0, 4),)
    assert above.state.recommendations == ()
    below = reconcile(spec, HPAState(), now=0, current_replicas=1, metric_value=999)
    assert (below.desired_replicas, below.reason) == (2, "BelowMinReplicas")
    assert below.state.scale_up_events == ((0, 1),)


def test_zero_replicas_with_positive_min_means_autoscaling_is_off() -> None:
    decision = reconcile(backlog_spec(min_replicas=1), HPAState(), now=0, current_replicas=0, metric_value=500)
    assert (decision.desired_replicas, decision.reason) == (0, "ScalingDisabled")


def test_scale_from_zero_when_min_replicas_is_zero() -> None:
    spec = backlog_spec(target=30, min_replicas=0)
    assert reconcile(spec, HPAState(), now=0, current_replicas=0, metric_value=45).desired_replicas == 2
    assert reconcile(spec, HPAState(), now=0, current_replicas=0, metric_value=0).desired_replicas == 0


def test_reconcile_is_pure_and_deterministic() -> None:
    spec = backlog_spec(target=30)
    state = HPAState()
    first = reconcile(spec, state, now=100, current_replicas=2, metric_value=200)
    second = reconcile(spec, state, now=100, current_replicas=2, metric_value=200)
    assert first == second
    assert state == HPAState()  # the input state is untouched
    assert first.state.recommendations == ((100, 7),)
    assert first.state.scale_up_events == ((100, first.desired_replicas - 2),)


def test_history_is_bounded() -> None:
    autoscaler = Autoscaler(backlog_spec(target=30))
    for step in range(1000):
        autoscaler.step(step * SYNC_S, 3, 90)
    # Only the scale-down window's samples are kept (300 s / 15 s).
    assert len(autoscaler.state.recommendations) <= 300 // SYNC_S + 1


def test_spec_from_a_rendered_hpa_manifest() -> None:
    manifest = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "classifier-classifier-worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
            "minReplicas": 1,
            "maxReplicas": 8,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": "classifier_queue_backlog",
                            "selector": {"matchLabels": {"queue": "classifier.jobs"}},
                        },
                        "target": {"type": "AverageValue", "averageValue": "20"},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}],
                },
                "scaleDown": {"stabilizationWindowSeconds": 120},
            },
        },
    }
    spec = HPASpec.from_manifest(manifest)
    assert (spec.min_replicas, spec.max_replicas) == (1, 8)
    assert spec.target == MetricTarget("AverageValue", 20)
    assert spec.behavior.scale_up.policies[0].value == 2
    assert spec.behavior.scale_down.stabilization_window_seconds == 120
    assert spec.behavior.scale_down.policies == Behavior().scale_down.policies  # defaulted


@pytest.mark.parametrize(
    "behavior",
    [
        {"scaleUp": {"selectPolicy": "Fastest"}},
        {"scaleUp": {"policies": [{"type": "Replicas", "value": 1, "periodSeconds": 15}]}},
        {"scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}},
        {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}},
        {"scaleDown": {"stabilizationWindowSeconds": 3601}},
        {"scaleDown": {"stabilisationWindowSeconds": 60}},  # misspelt field
        {"scaleSideways": {}},
    ],
)
def test_invalid_behavior_is_rejected(behavior: dict) -> None:
    with pytest.raises(ValueError):
        Behavior.from_spec(behavior)


@pytest.mark.parametrize(
    ("text", "value"),
    [("30", 30.0), ("500m", 0.5), ("1.5k", 1500.0), ("2Gi", 2.0 * 2**30), (7, 7.0)],
)
def test_parse_quantity(text: str | int, value: float) -> None:
    assert parse_quantity(text) == value


def test_replay_applies_each_decision() -> None:
    samples = [(t * SYNC_S, 300.0) for t in range(3)]
    decisions = replay(backlog_spec(target=30), samples, start_replicas=1)
    assert [d.desired_replicas for d in decisions] == [5, 10, 10]
