"""`kanal.io/v1alpha1` AlertRule: a threshold on the flows the collectors record, and what to do
when it is crossed (Nuage VSD's threshold alerts, revived). Cluster-scoped, like an ANP.

```yaml
apiVersion: kanal.io/v1alpha1
kind: AlertRule
metadata: {name: port-scan}
spec:
  metric: DestinationPorts   # DeniedFlows | AllowedFlows | Bytes      (counted per connection)
                             # DestinationPorts | DestinationAddresses  (distinct values)
  type: UniqueCount          # Breach | RollingAverage (counts) | UniqueCount (distinct); default
                             # Breach for counts, UniqueCount for distinct metrics
  verdict: Denied            # distinct metrics only: count only Denied or Allowed attempts
  scope:                     # optional, at most one of (none: every flow):
    namespace: x             #   flows from or to a pod of namespace x
    # policy: x/web          #   flows decided by a rule of x/web or by a default deny it takes
    #                        #   part in; `guard` alone: an (Baseline)AdminNetworkPolicy; or
    #                        #   {kind: NetworkPolicy, namespace: x, name: web}
    # podSelector: {...}     #   flows from or to the pods selected (both selectors: the pods
    # namespaceSelector: {...}   of podSelector in the namespaces of namespaceSelector)
  groupBy: Source            # Source | Destination | Scope (one count for the whole scope)
  period: 60s                # Breach and UniqueCount: the sliding period counted
  window: 10m                # RollingAverage only: averaged over this (default 10 periods)
  threshold: 10              # the alert fires when the value exceeds it (value > threshold)
  throttle: 5m               # no repeat for one (rule, key) within this (default: the period)
  actions:                   # every alert is logged and kept for `kanal alerts`; besides:
  - webhook: {url: "http://127.0.0.1:9000/alerts", timeout: 2s, retries: 3}
  - quarantine: {label: kanal.io/quarantine, value: "true"}      (these are the defaults)
```

Only the shape is checked here; what the numbers mean (windows, throttling, keys) is
`kanal.flows.alerts`. A policy named by `scope.policy` need not exist: it may come later, as
references between Kubernetes objects do. The engine ignores AlertRules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

from kanal.model.alertparts import (
    AlertAction,
    AlertScope,
    QuarantineAction,
    WebhookAction,
    duration_text,
    get_duration,
    parse_actions,
    parse_scope,
)
from kanal.model.fields import At, Raw, check_fields, get_mapping, get_str, type_name
from kanal.model.meta import ObjectMeta

DEFAULT_PERIOD_S = 60.0
MIN_PERIOD_S = 1.0
MAX_PERIOD_S = 86400.0
MAX_WINDOW_S = 7 * 86400.0
DEFAULT_WINDOW_PERIODS = 10
E = TypeVar("E", bound=enum.StrEnum)
_SPEC_FIELDS = ("metric", "type", "verdict", "scope", "groupBy", "period", "window",
                "threshold", "throttle", "actions")

__all__ = [
    "AlertAction",
    "AlertMetric",
    "AlertRule",
    "AlertScope",
    "AlertType",
    "GroupBy",
    "QuarantineAction",
    "VerdictFilter",
    "WebhookAction",
    "duration_text",
    "parse_alert_rule",
]


class AlertMetric(enum.StrEnum):
    DENIED_FLOWS = "DeniedFlows"
    ALLOWED_FLOWS = "AllowedFlows"
    BYTES = "Bytes"
    DESTINATION_PORTS = "DestinationPorts"
    DESTINATION_ADDRESSES = "DestinationAddresses"

    @property
    def distinct(self) -> bool:
        """Counts distinct values (a scan, a sweep) rather than adding up flows or bytes."""
        return self in (AlertMetric.DESTINATION_PORTS, AlertMetric.DESTINATION_ADDRESSES)


class AlertType(enum.StrEnum):
    BREACH = "Breach"
    ROLLING_AVERAGE = "RollingAverage"
    UNIQUE_COUNT = "UniqueCount"


class GroupBy(enum.StrEnum):
    SOURCE = "Source"
    DESTINATION = "Destination"
    SCOPE = "Scope"


class VerdictFilter(enum.StrEnum):
    ALLOWED = "Allowed"
    DENIED = "Denied"


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    metric: AlertMetric
    type: AlertType
    threshold: float
    period_s: float = DEFAULT_PERIOD_S
    window_s: float | None = None
    """RollingAverage only: the span the per-period average is taken over."""
    throttle_s: float = DEFAULT_PERIOD_S
    group_by: GroupBy = GroupBy.SOURCE
    scope: AlertScope = None
    verdict: VerdictFilter | None = None
    actions: tuple[AlertAction, ...] = ()

    @property
    def horizon_s(self) -> float:
        """How far back the rule looks: its window for RollingAverage, else its period."""
        return self.window_s if self.window_s is not None else self.period_s


def parse_alert_rule(raw: Raw, meta: ObjectMeta, at: At) -> AlertRule:
    spec_at = at.field("spec")
    spec = get_mapping(raw, "spec", at, required=True)
    if spec is None:  # reported: the fields inside would only repeat it
        return AlertRule(meta.name, AlertMetric.DENIED_FLOWS, AlertType.BREACH, 0.0)
    check_fields(spec, _SPEC_FIELDS, spec_at)
    metric = _choice(spec, "metric", AlertMetric, spec_at, required=True)
    kind = _type(spec, metric, spec_at)
    period = get_duration(spec, "period", spec_at, low=MIN_PERIOD_S, high=MAX_PERIOD_S)
    period = DEFAULT_PERIOD_S if period is None else period
    group_by = _choice(spec, "groupBy", GroupBy, spec_at) or GroupBy.SOURCE
    throttle = get_duration(spec, "throttle", spec_at, low=MIN_PERIOD_S, high=MAX_WINDOW_S)
    return AlertRule(
        meta.name,
        metric or AlertMetric.DENIED_FLOWS,
        kind or AlertType.BREACH,
        _threshold(spec, kind, spec_at),
        period_s=period,
        window_s=_window(spec, kind, period, spec_at),
        throttle_s=period if throttle is None else throttle,
        group_by=group_by,
        scope=parse_scope(spec, spec_at),
        verdict=_verdict(spec, metric, spec_at),
        actions=parse_actions(spec, spec_at, group_by=group_by),
    )


def _type(spec: Raw, metric: AlertMetric | None, at: At) -> AlertType | None:
    """The type, defaulted from the metric; distinct metrics go with UniqueCount only."""
    kind = _choice(spec, "type", AlertType, at)
    if metric is None:
        return kind
    if kind is None:
        return AlertType.UNIQUE_COUNT if metric.distinct else AlertType.BREACH
    if metric.distinct and kind is not AlertType.UNIQUE_COUNT:
        at.field("type").problem(
            f"{metric} counts distinct values: use type UniqueCount (or leave type out)"
        )
    elif not metric.distinct and kind is AlertType.UNIQUE_COUNT:
        at.field("type").problem(
            f"UniqueCount counts distinct values: use it with metric DestinationPorts or "
            f"DestinationAddresses; {metric} goes with Breach or RollingAverage"
        )
    return kind


def _threshold(spec: Raw, kind: AlertType | None, at: At) -> float:
    value = spec.get("threshold")
    field_at = at.field("threshold")
    if value is None:
        field_at.problem("is required: the value above which the alert fires")
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        field_at.problem(f"must be a number, not {type_name(value)}")
        return 0.0
    if value < 0:
        field_at.problem(f"{value} must be 0 or more")
    elif kind is AlertType.UNIQUE_COUNT and not float(value).is_integer():
        field_at.problem(f"{value} must be a whole number: UniqueCount counts distinct values")
    return float(value)


def _window(spec: Raw, kind: AlertType | None, period: float, at: At) -> float | None:
    window = get_duration(spec, "window", at, low=MIN_PERIOD_S, high=MAX_WINDOW_S)
    if kind is not AlertType.ROLLING_AVERAGE:
        if "window" in spec:
            at.field("window").problem(
                "is the span a RollingAverage averages over: remove it, or use type "
                "RollingAverage"
            )
        return None
    if window is None:
        return min(period * DEFAULT_WINDOW_PERIODS, MAX_WINDOW_S)
    if window <= period:
        at.field("window").problem(
            f"{spec['window']} must be longer than the period ({duration_text(period)}): the "
            "average is taken over several periods"
        )
    return window


def _verdict(spec: Raw, metric: AlertMetric | None, at: At) -> VerdictFilter | None:
    verdict = _choice(spec, "verdict", VerdictFilter, at)
    if verdict is not None and metric is not None and not metric.distinct:
        at.field("verdict").problem(
            f"applies to DestinationPorts and DestinationAddresses only: {metric} already "
            "says which flows it counts"
        )
    return verdict


def _choice(
    spec: Raw, key: str, kind: type[E], at: At, *, required: bool = False
) -> E | None:
    text = get_str(spec, key, at, required=required)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(e.value for e in kind)
        at.field(key).problem(f"unsupported value {text!r}: use one of {allowed}")
        return None
