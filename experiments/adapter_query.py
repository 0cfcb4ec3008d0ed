"""The PromQL prometheus-adapter runs for an External metric, rendered from our adapter values.

The experiments sample the backlog with the very query the adapter sends to Prometheus for the
worker HPA, so the emulated autoscaler sees what the real one would. The adapter fills the rule's
``metricsQuery`` (a Go template with ``<<``/``>>`` delimiters) as its BuildExternal does
(kubernetes-sigs/prometheus-adapter, pkg/naming/metrics_query.go):

- ``<<.Series>>``: the series name the rule's ``seriesQuery`` discovered;
- ``<<.LabelMatchers>>``: the HPA's metric selector, one ``label="value"`` per matchLabels entry
  in key order, then ``namespace="<the HPA's namespace>"`` unless the rule says
  ``namespaced: false``; values quoted as Go's %q does;
- ``<<.GroupBy>>``: empty for External metrics.

Other template actions are refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.paths import REPO

ADAPTER_VALUES = REPO / "monitoring" / "prometheus-adapter" / "values.yaml"
BACKLOG_METRIC = "classifier_queue_backlog"
DEFAULT_QUEUE = "classifier.jobs.default"  # the default pool's queue

_ACTION = re.compile(r"<<\s*(.*?)\s*>>")
_SERIES_NAME = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


@dataclass(frozen=True)
class ExternalRule:
    series_query: str
    name_matches: str
    name_as: str
    metrics_query: str
    namespaced: bool

    @property
    def series_name(self) -> str:
        """The metric name the seriesQuery selects (our rules select one by name)."""
        match = _SERIES_NAME.match(self.series_query)
        if not match:
            raise ValueError(f"seriesQuery does not start with a metric name: {self.series_query!r}")
        return match.group(1)

    @property
    def metric_name(self) -> str:
        """The name the adapter serves for the discovered series: ``name.as`` expanded with the
        groups of ``name.matches`` (Go's Regexp.ExpandString)."""
        pattern = re.compile(self.name_matches)
        match = pattern.search(self.series_name)
        if not match:
            raise ValueError(f"{self.series_name!r} does not match name.matches {self.name_matches!r}")
        template = self.name_as
        if not template:  # the adapter's default: the whole match, or the only group
            if pattern.groups > 1:
                raise ValueError("name.as is required when name.matches has several groups")
            template = "$0" if pattern.groups == 0 else "$1"
        return match.expand(re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", template))


def load_external_rules(values_path: Path = ADAPTER_VALUES) -> list[ExternalRule]:
    values = yaml.safe_load(values_path.read_text())
    rules = []
    for raw in values.get("rules", {}).get("external") or []:
        rules.append(_rule_from_values(raw))
    return rules


def external_rule(metric_name: str = BACKLOG_METRIC, values_path: Path = ADAPTER_VALUES) -> ExternalRule:
    matches = [r for r in load_external_rules(values_path) if r.metric_name == metric_name]
    if len(matches) != 1:
        raise LookupError(f"{values_path}: {len(matches)} external rules serve {metric_name!r}, expected 1")
    return matches[0]


def render_metrics_query(
    rule: ExternalRule,
    selector: Mapping[str, str],
    *,
    namespace: str | None,
) -> str:
    """The concrete PromQL for an HPA in ``namespace`` whose metric selector is
    ``matchLabels: selector``. Pass ``namespace=None`` for the local stack, whose series have no
    namespace label (as a ``namespaced: false`` rule would query)."""
    matchers = [f"{key}={go_quote(value)}" for key, value in sorted(selector.items())]
    if rule.namespaced and namespace is not None:
        matchers.append(f"namespace={go_quote(namespace)}")
    fields = {
        ".Series": rule.series_name,
        ".LabelMatchers": ",".join(matchers),
        ".GroupBy": "",
    }

    def substitute(match: re.Match[str]) -> str:
        action = match.group(1)
        if action not in fields:
            raise ValueError(f"unsupported template action <<{action}>> in metricsQuery")
        return fields[action]

    return _ACTION.sub(substitute, rule.metrics_query).strip()


def backlog_query(
    *, queue: str = DEFAULT_QUEUE, namespace: str | None = None, values_path: Path = ADAPTER_VALUES
) -> str:
    """A pool's worker HPA backlog query (the pool's queue; the default pool's unless named)."""
    return render_metrics_query(
        external_rule(BACKLOG_METRIC, values_path),
        {"queue": queue},
        namespace=namespace,
    )


def go_quote(value: str) -> str:
    """A string literal as Go's %q writes it (valid PromQL string syntax)."""
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _rule_from_values(raw: Mapping[str, Any]) -> ExternalRule:
    resources = raw.get("resources") or {}
    name = raw.get("name") or {}
    return ExternalRule(
        series_query=raw["seriesQuery"],
        name_matches=name.get("matches") or ".*",
        name_as=name.get("as") or "",
        metrics_query=raw["metricsQuery"],
        # The adapter adds the HPA's namespace unless told `namespaced: false`.
        namespaced=resources.get("namespaced", True) is not False,
    )
