"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) algorithm for one metric, as pure code.

Given the HPA's spec, what it remembers (recent recommendations, recent scale events), the time,
the current replica count and the metric's value, :func:`reconcile` returns the replica count the
controller would set and what it would remember next. Time is passed in, nothing is read from a
clock, a cluster or a file: the same calls give the same decisions. The scaling experiments use it
to start and stop worker processes where no cluster exists, and users can try `autoscaling`
values on recorded load before deploying them.

Followed, step by step, from the controller (kubernetes/kubernetes
pkg/controller/podautoscaler/horizontal.go and replica_calculator.go) and its documentation,
https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/
("Algorithm details", "Configurable scaling behavior"):

1. Proposal from the metric (replica_calculator.go):
   - ``Value``:        ratio = value / target;  replicas = ceil(ratio * ready pods)
   - ``AverageValue``: ratio = value / (target * current); replicas = ceil(value / target)
     (an External metric's value is the sum of the series the adapter returns)
   - ``Utilization``:  ratio = utilization / target; replicas = ceil(ratio * ready pods)
   No change while 1 - tolerance_down <= ratio <= 1 + tolerance_up (0.1 each by default;
   ``behavior.scale{Up,Down}.tolerance`` overrides it per direction, Kubernetes 1.33+).
   Quantities are compared in milli-units, rounded up, as the controller does.
2. Stabilisation: every proposal is remembered with its time. The recommendation is the current
   count moved up to at least the *lowest* proposal of the scale-up window and down to at most the
   *highest* proposal of the scale-down window (windows exclude samples exactly at their edge).
3. Rate limits (behavior policies): a Pods policy allows ``value`` replicas, a Percent policy
   ``value`` % of the count at the start of its period (``periodSeconds``), counting the scale
   events of that period; ``selectPolicy`` Max takes the policy allowing the biggest change, Min
   the smallest, Disabled forbids that direction. Then minReplicas/maxReplicas.
4. A current count above maxReplicas (below minReplicas) is set to it directly; a count of 0 with
   minReplicas > 0 means autoscaling is switched off.

Omitted behaviour fields take the Kubernetes defaults: scale-up no window, max(100 %, 4 pods)
per 15 s; scale-down a 300 s window, 100 % per 15 s. (The controller gives an HPA with no
``behavior`` at all a legacy path capped at max(2 x current, 4) per sync; the classifier chart
always sets ``behavior``, so only the behaviour path is emulated.) Not emulated: the per-pod
treatment of unready pods and missing metrics for Resource metrics (every pod is taken as ready
and reporting), and several metrics per HPA (the controller would take the largest proposal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TargetType = Literal["Value", "AverageValue", "Utilization"]
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

DEFAULT_TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance
MAX_PERIOD_SECONDS = 1800  # API validation limits
MAX_STABILIZATION_SECONDS = 3600


@dataclass(frozen=True)
class ScalingPolicy:
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``spec.behavior`` (``scaleUp`` or ``scaleDown``), defaults filled in."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]
    tolerance: float | None = None  # None: the controller-wide tolerance


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15)),
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=300,  # --horizontal-pod-autoscaler-downscale-stabilization
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Behavior:
        """Read ``spec.behavior`` in the autoscaling/v2 shape (the chart's
        ``autoscaling.behavior`` values), e.g.
        ``{"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods",
        "value": 1, "periodSeconds": 30}]}}``. Missing fields take the Kubernetes defaults.
        """
        spec = spec or {}
        _reject_unknown(spec, {"scaleUp", "scaleDown"}, "behavior")
        return cls(
            scale_up=_rules_from_spec(spec.get("scaleUp"), DEFAULT_SCALE_UP, "scaleUp"),
            scale_down=_rules_from_spec(spec.get("scaleDown"), DEFAULT_SCALE_DOWN, "scaleDown"),
        )


@dataclass(frozen=True)
class MetricTarget:
    """``target`` of the HPA's metric. ``value`` is the target's number: ``value``,
    ``averageValue`` or ``averageUtilization`` (a percentage) according to ``type``."""

    type: TargetType
    value: float

    def __post_init__(self) -> None:
        if self.type not in ("Value", "AverageValue", "Utilization"):
            raise ValueError(f"unknown target type {self.type!r}")
        if not self.value > 0:
            raise ValueError(f"target value must be > 0, got {self.value!r}")

    @classmethod
    def from_spec(cls, target: Mapping[str, Any]) -> MetricTarget:
        kind = target.get("type")
        key = {
            "Value": "value",
            "AverageValue": "averageValue",
            "Utilization": "averageUtilization",
        }
        if kind not in key or key[kind] not in target:
            raise ValueError(f"target needs type and its value field: {dict(target)!r}")
        return cls(type=kind, value=parse_quantity(target[key[kind]]))


@dataclass(frozen=True)
class HPASpec:
    min_replicas: int
    max_replicas: int
    target: MetricTarget
    behavior: Behavior = field(default_factory=Behavior)
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise ValueError(
                f"need 0 <= minReplicas <= maxReplicas and maxReplicas >= 1, "
                f"got {self.min_replicas}..{self.max_replicas}"
            )
        if self.tolerance < 0:
            raise ValueError("tolerance must be >= 0")

    @classmethod
    def from_manifest(cls, hpa: Mapping[str, Any], *, tolerance: float = DEFAULT_TOLERANCE) -> HPASpec:
        """Build from a rendered ``autoscaling/v2`` HorizontalPodAutoscaler object (as
        ``helm template`` prints it) with exactly one metric."""
        if hpa.get("apiVersion") != "autoscaling/v2" or hpa.get("kind") != "HorizontalPodAutoscaler":
            raise ValueError("expected an autoscaling/v2 HorizontalPodAutoscaler")
        spec = hpa["spec"]
        metrics = spec.get("metrics") or []
        if len(metrics) != 1:
            raise ValueError(f"the emulator handles one metric, the HPA has {len(metrics)}")
        (metric,) = metrics
        source = metric[_METRIC_SOURCE_KEYS[metric["type"]]]
        return cls(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            target=MetricTarget.from_spec(source["target"]),
            behavior=Behavior.from_spec(spec.get("behavior")),
            tolerance=tolerance,
        )


_METRIC_SOURCE_KEYS = {
    "External": "external",
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "ContainerResource": "containerResource",
}


@dataclass(frozen=True)
class HPAState:
    """What the controller remembers about one HPA: (time, replicas) of recent proposals and
    (time, replicas changed) of recent scale-ups and scale-downs. Starts empty, as for an HPA
    the controller has just begun to watch."""

    recommendations: tuple[tuple[float, int], ...] = ()
    scale_up_events: tuple[tuple[float, int], ...] = ()
    scale_down_events: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class Decision:
    desired_replicas: int
    proposal: int  # from the metric and tolerance alone
    stabilized: int  # after the stabilisation windows, before rate limits and min/max
    # Why desired differs from stabilized, in the words of the HPA's ScalingLimited condition:
    # DesiredWithinRange, ScaleUpLimit, ScaleDownLimit, TooManyReplicas, TooFewReplicas;
    # or ScalingDisabled / AboveMaxReplicas / BelowMinReplicas for the special cases of step 4.
    reason: str
    state: HPAState


def metric_proposal(
    spec: HPASpec,
    *,
    current_replicas: int,
    metric_value: float,
    ready_replicas: int | None = None,
) -> int:
    """Replica count the metric asks for (step 1). ``metric_value``: the External/Object metric's
    value (summed over series) for Value and AverageValue targets, the pods' average utilisation
    in percent for Utilization. ``ready_replicas`` defaults to ``current_replicas``."""
    if metric_value < 0:
        raise ValueError("metric value must be >= 0")
    ready = current_replicas if ready_replicas is None else ready_replicas
    usage = _milli(metric_value)
    target = _milli(spec.target.value)
    down_tol = _tolerance(spec, spec.behavior.scale_down)
    up_tol = _tolerance(spec, spec.behavior.scale_up)

    def within(ratio: float) -> bool:
        return (1.0 - down_tol) <= ratio <= (1.0 + up_tol)

    if spec.target.type == "AverageValue":
        ratio = _divide(usage, target * current_replicas)
        if within(ratio):
            return current_replicas
        return math.ceil(usage / target)
    # Value and Utilization: a ratio of the whole, applied to the ready pods.
    ratio = usage / target
    if current_replicas == 0:
        return math.ceil(ratio)
    if within(ratio):
        return current_replicas
    return math.ceil(ratio * ready)


def reconcile(
    spec: HPASpec,
    state: HPAState,
    *,
    now: float,
    current_replicas: int,
    metric_value: float,
    ready_replicas: int | None = None,
) -> Decision:
    """One sync of the controller for this HPA (the real one runs every 15 s)."""
    if current_replicas < 0:
        raise ValueError("current replicas must be >= 0")
    if current_replicas == 0 and spec.min_replicas != 0:
        return Decision(0, 0, 0, "ScalingDisabled", state)
    recommendations = state.recommendations
    if current_replicas > spec.max_replicas:
        proposal = stabilized = desired = spec.max_replicas
        reason = "AboveMaxReplicas"
    elif current_replicas < spec.min_replicas:
        proposal = stabilized = desired = spec.min_replicas
        reason = "BelowMinReplicas"
    else:
        proposal = metric_proposal(
            spec,
            current_replicas=current_replicas,
            metric_value=metric_value,
            ready_replicas=ready_replicas,
        )
        stabilized, recommendations = _stabilize(spec.behavior, state.recommendations, now, current_replicas, proposal)
        desired, reason = _limit_rate(spec, state, now, current_replicas, stabilized)

    # Every change is remembered for the policies' periods, corrections into min..max too.
    up_events, down_events = state.scale_up_events, state.scale_down_events
    if desired > current_replicas:
        up_events = _record_event(up_events, spec.behavior.scale_up, now, desired - current_replicas)
    elif desired < current_replicas:
        down_events = _record_event(down_events, spec.behavior.scale_down, now, current_replicas - desired)
    new_state = HPAState(recommendations, up_events, down_events)
    return Decision(desired, proposal, stabilized, reason, new_state)


class Autoscaler:
    """:func:`reconcile` with the state kept between calls: ``step`` once per sync period."""

    def __init__(self, spec: HPASpec) -> None:
        self.spec = spec
        self.state = HPAState()

    def step(
        self,
        now: float,
        current_replicas: int,
        metric_value: float,
        ready_replicas: int | None = None,
    ) -> Decision:
        decision = reconcile(
            self.spec,
            self.state,
            now=now,
            current_replicas=current_replicas,
            metric_value=metric_value,
            ready_replicas=ready_replicas,
        )
        self.state = decision.state
        return decision


# --- steps 2 and 3 ----------------------------------------------------------------------------


def _stabilize(
    behavior: Behavior,
    history: tuple[tuple[float, int], ...],
    now: float,
    current: int,
    proposal: int,
) -> tuple[int, tuple[tuple[float, int], ...]]:
    up_cutoff = now - behavior.scale_up.stabilization_window_seconds
    down_cutoff = now - behavior.scale_down.stabilization_window_seconds
    up_recommendation = down_recommendation = proposal
    for at, replicas in history:
        if at > up_cutoff:
            up_recommendation = min(up_recommendation, replicas)
        if at > down_cutoff:
            down_recommendation = max(down_recommendation, replicas)
    recommendation = min(max(current, up_recommendation), down_recommendation)
    # Samples older than both windows can no longer matter (the controller overwrites them).
    kept = tuple(s for s in history if s[0] > min(up_cutoff, down_cutoff))
    return recommendation, kept + ((now, proposal),)


def _limit_rate(spec: HPASpec, state: HPAState, now: float, current: int, desired: int) -> tuple[int, str]:
    if desired > current:
        limit = max(_scale_up_limit(spec.behavior.scale_up, state, now, current), current)
        if spec.max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = spec.max_replicas, "TooManyReplicas"
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(_scale_down_limit(spec.behavior.scale_down, state, now, current), current)
        if spec.min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = spec.min_replicas, "TooFewReplicas"
        if desired < allowed:
            return allowed, reason
    return desired, "DesiredWithinRange"


def _period_start(policy: ScalingPolicy, state: HPAState, now: float, current: int) -> int:
    cutoff = now - policy.period_seconds
    added = sum(change for at, change in state.scale_up_events if at > cutoff)
    removed = sum(change for at, change in state.scale_down_events if at > cutoff)
    return current - added + removed


def _scale_up_limit(rules: ScalingRules, state: HPAState, now: float, current: int) -> int:
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(policy, state, now, current)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:  # rounded up, or a small Percent could never add a pod
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return max(proposals) if rules.select_policy == "Max" else min(proposals)


def _scale_down_limit(rules: ScalingRules, state: HPAState, now: float, current: int) -> int:
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        start = _period_start(policy, state, now, current)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:  # truncated, as Go's int32(float) conversion does
            proposals.append(int(start * (1 - policy.value / 100)))
    # The biggest change is the lowest count.
    return min(proposals) if rules.select_policy == "Max" else max(proposals)


def _record_event(
    events: tuple[tuple[float, int], ...], rules: ScalingRules, now: float, change: int
) -> tuple[tuple[float, int], ...]:
    longest = max((p.period_seconds for p in rules.policies), default=0)
    return tuple(e for e in events if e[0] >= now - longest) + ((now, change),)


# --- parsing and arithmetic -------------------------------------------------------------------


def _rules_from_spec(spec: Mapping[str, Any] | None, default: ScalingRules, where: str) -> ScalingRules:
    if spec is None:
        return default
    _reject_unknown(
        spec,
        {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"},
        where,
    )
    window = int(spec.get("stabilizationWindowSeconds", default.stabilization_window_seconds))
    if not 0 <= window <= MAX_STABILIZATION_SECONDS:
        raise ValueError(f"{where}.stabilizationWindowSeconds must be within 0..3600, got {window}")
    select = spec.get("selectPolicy", default.select_policy)
    if select not in ("Max", "Min", "Disabled"):
        raise ValueError(f"{where}.selectPolicy must be Max, Min or Disabled, got {select!r}")
    policies = default.policies
    if spec.get("policies") is not None:
        policies = tuple(_policy_from_spec(p, where) for p in spec["policies"])
        if not policies and select != "Disabled":
            raise ValueError(f"{where}.policies must not be empty")
    tolerance = spec.get("tolerance")
    if tolerance is not None:
        tolerance = parse_quantity(tolerance)
        if tolerance < 0:
            raise ValueError(f"{where}.tolerance must be >= 0")
    return ScalingRules(window, select, policies, tolerance)


def _policy_from_spec(spec: Mapping[str, Any], where: str) -> ScalingPolicy:
    _reject_unknown(spec, {"type", "value", "periodSeconds"}, f"{where}.policies[]")
    kind, value, period = (
        spec.get("type"),
        int(spec.get("value", 0)),
        int(spec.get("periodSeconds", 0)),
    )
    if kind not in ("Pods", "Percent"):
        raise ValueError(f"{where} policy type must be Pods or Percent, got {kind!r}")
    if value <= 0:
        raise ValueError(f"{where} policy value must be > 0, got {value}")
    if not 0 < period <= MAX_PERIOD_SECONDS:
        raise ValueError(f"{where} policy periodSeconds must be within 1..1800, got {period}")
    return ScalingPolicy(kind, value, period)


def _reject_unknown(spec: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"unknown field(s) in {where}: {sorted(unknown)}")


def _tolerance(spec: HPASpec, rules: ScalingRules) -> float:
    return spec.tolerance if rules.tolerance is None else rules.tolerance


def _milli(value: float) -> int:
    # Quantity.MilliValue(): the value in thousandths, rounded up. round() first so that
    # 0.1 * 1000 = 100.00000000000001 does not become 101.
    return math.ceil(round(value * 1000, 6))


def _divide(numerator: int, denominator: int) -> float:
    # Go's float division: x/0 is +Inf, 0/0 is NaN (never within the tolerance band).
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return numerator / denominator


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(value: str | float) -> float:
    """A Kubernetes quantity (``30``, ``"500m"``, ``"1.5k"``, ``"2Gi"``) as a float."""
    if isinstance(value, bool):
        raise TypeError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def replay(spec: HPASpec, samples: Sequence[tuple[float, float]], *, start_replicas: int) -> list[Decision]:
    """Run the autoscaler over (time, metric value) samples, assuming every decision takes
    effect at once (replicas become ready immediately). For trying ``behavior`` values on a
    recorded backlog; the experiments runner instead feeds back the replicas really running."""
    autoscaler = Autoscaler(spec)
    replicas = start_replicas
    decisions = []
    for now, value in samples:
        decision = autoscaler.step(now, replicas, value)
        replicas = decision.desired_replicas
        decisions.append(decision)
    return decisions
