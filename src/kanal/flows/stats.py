"""Policy and traffic statistics from the store's cumulative counters. Pure.

Per rule: hits (records it decided: connections, per direction), denies, bytes and packets of
the connections it admitted once they ended. Per policy: the sum of its rules, plus the default
denies it took part in (it isolated the pod and no rule admitted the connection). A rule with no
hit is reported as such: `never hit` when some node's table has it (dead or shadowed, or simply
no such traffic yet), `not rendered` when no node's table has it (its policy selects no pod on
any node with a collector), `pass` for admin Pass rules (not an end of a decision, not logged).

Prometheus exposition (`prometheus_text`), bounded labels only (no pod names):

```
kanal_flows_total{node,direction,verdict}                         records
kanal_flow_bytes_total / kanal_flow_packets_total{node,direction,verdict}   of ended connections
kanal_policy_rule_hits_total{tier,policy,direction,rule,action}  records a rule decided
kanal_policy_rule_bytes_total{...same}                            bytes of those connections
kanal_flow_collector_events_lost_total{node,source}               kernel could not deliver
kanal_flow_collector_unknown_log_ids_total{node}                  `k:` ids not in the log table
kanal_flow_collector_disagreements_total{node}                    kernel rule != engine's answer
kanal_flow_collector_reloads_total{node}                          manifests reloaded
kanal_flow_collector_forgotten_connections_total{node}            no room to wait for the end
kanal_alerts_fired_total{node,rule}                               alerts (kanal.flows.alerting)
kanal_alerts_throttled_total{node,rule}                           held back by the throttle
kanal_alert_keys_evicted_total{node,rule}                         keys forgotten for lack of room
kanal_alert_webhooks_total{node,rule,outcome}                     delivered | failed | dropped
kanal_alert_webhook_retries_total{node,rule}                      attempts after the first
kanal_alert_quarantines_total{node,rule,outcome}                  labelled | failed
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kanal.engine import Outcome
from kanal.flows.records import CounterValue, Decision, RuleRef

HEALTH_COUNTERS = {
    "events_lost": "kanal_flow_collector_events_lost_total",
    "unknown_log_ids": "kanal_flow_collector_unknown_log_ids_total",
    "disagreements": "kanal_flow_collector_disagreements_total",
    "reloads": "kanal_flow_collector_reloads_total",
    "forgotten": "kanal_flow_collector_forgotten_connections_total",
}
ALERT_COUNTERS = {
    "alerts_fired": ("kanal_alerts_fired_total", "Alerts fired, per rule."),
    "alerts_throttled": ("kanal_alerts_throttled_total",
                         "Threshold crossings held back by the rule's throttle."),
    "alert_keys_evicted": ("kanal_alert_keys_evicted_total",
                           "Alert keys forgotten for lack of room."),
    "alert_webhooks": ("kanal_alert_webhooks_total",
                       "Alert webhook POSTs: delivered, failed (every attempt), dropped "
                       "(queue full)."),
    "alert_webhook_retries": ("kanal_alert_webhook_retries_total",
                              "Alert webhook attempts after the first."),
    "alert_quarantines": ("kanal_alert_quarantines_total",
                          "Quarantine labels: labelled, failed."),
}


@dataclass(frozen=True, slots=True)
class FlowTotals:
    """Everything statistics are computed from, read in one transaction."""

    counters: Sequence[CounterValue]
    decisions: Mapping[str, Decision]
    rules: Sequence[RuleRef]
    node_logs: Mapping[str, set[str]]


@dataclass(slots=True)
class Tally:
    hits: int = 0
    denies: int = 0
    bytes: int = 0
    packets: int = 0

    def add(self, other: Tally) -> None:
        self.hits += other.hits
        self.denies += other.denies
        self.bytes += other.bytes
        self.packets += other.packets

    def to_json(self) -> dict[str, int]:
        return {"hits": self.hits, "denies": self.denies, "bytes": self.bytes,
                "packets": self.packets}


@dataclass(frozen=True, slots=True)
class RuleStats:
    tier: str
    policy: str
    direction: str
    rule_index: int
    rule_name: str
    action: str
    tally: Tally
    status: str
    """`hit`, `never hit`, `not rendered` or `pass`."""

    def label(self) -> str:
        return f"{self.rule_name!r}" if self.rule_name else f"#{self.rule_index}"

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "rule": self.rule_index,
                "rule_name": self.rule_name, "action": self.action, "status": self.status,
                **self.tally.to_json()}


@dataclass(slots=True)
class PolicyStats:
    tier: str
    policy: str
    rules: list[RuleStats] = field(default_factory=list)
    default_denies: int = 0

    @property
    def tally(self) -> Tally:
        total = Tally()
        for rule in self.rules:
            total.add(rule.tally)
        return total

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "policy": self.policy, **self.tally.to_json(),
                "default_denies": self.default_denies,
                "rules": [r.to_json() for r in self.rules]}


@dataclass(frozen=True, slots=True)
class Stats:
    flows: Mapping[tuple[str, str], Tally]
    """(direction, verdict) -> records (hits), bytes, packets."""
    policies: Sequence[PolicyStats]
    defaults: Sequence[tuple[Decision, Tally]]
    """Default denies (per isolating set), not-isolated ends and decisions naming a policy but
    no rule (imported), with their tallies."""
    health: Mapping[str, int]

    def never_hit(self) -> list[tuple[PolicyStats, RuleStats]]:
        return [(p, r) for p in self.policies for r in p.rules if r.status != "hit"]

    def to_json(self) -> dict[str, Any]:
        return {
            "flows": [{"direction": d, "verdict": v, "flows": t.hits, "bytes": t.bytes,
                       "packets": t.packets} for (d, v), t in sorted(self.flows.items())],
            "policies": [p.to_json() for p in self.policies],
            "defaults": [{"decision": d.describe(), "direction": d.direction.value.lower(),
                          "outcome": d.outcome.value, "isolated_by": list(d.isolating),
                          **t.to_json()} for d, t in self.defaults],
            "never_hit": [{"tier": p.tier, "policy": p.policy, "direction": r.direction,
                           "rule": r.rule_index, "rule_name": r.rule_name,
                           "status": r.status} for p, r in self.never_hit()],
            "collector": dict(self.health),
        }


def decision_tallies(totals: FlowTotals) -> dict[str, Tally]:
    """Decision key -> its tally, from the `decision_*` counters."""
    found: dict[str, Tally] = {}
    fields = {"decision_hits": "hits", "decision_denies": "denies",
              "decision_bytes": "bytes", "decision_packets": "packets"}
    for counter in totals.counters:
        name = fields.get(counter.name)
        if name is not None:
            tally = found.setdefault(counter.labels["decision"], Tally())
            setattr(tally, name, getattr(tally, name) + counter.value)
    return found


def compute_stats(totals: FlowTotals) -> Stats:
    tallies = decision_tallies(totals)
    by_rule: dict[tuple[str, str, str, int], Tally] = {}
    defaults: dict[str, tuple[Decision, Tally]] = {}
    for key, tally in tallies.items():
        decision = totals.decisions.get(key)
        if decision is None:
            continue
        if decision.policy is not None and decision.rule_index is not None:
            rule_key = (_tier(decision), decision.policy, _direction(decision),
                        decision.rule_index)
            by_rule.setdefault(rule_key, Tally()).add(tally)
        else:
            merged = defaults.setdefault(_default_key(decision), (decision, Tally()))
            merged[1].add(tally)
    rendered = _rendered_rules(totals)
    policies = _policy_stats(totals.rules, by_rule, rendered)
    _count_default_denies(policies, defaults.values())
    return Stats(
        flows=_flow_tallies(totals.counters),
        policies=policies,
        defaults=sorted(defaults.values(), key=lambda dt: _default_key(dt[0])),
        health=_health(totals.counters),
    )


def _tier(decision: Decision) -> str:
    return decision.tier.value if decision.tier else ""


def _direction(decision: Decision) -> str:
    return decision.direction.value.lower()


def _default_key(decision: Decision) -> str:
    """One row per direction and outcome (and isolating set, or policy: an imported decision
    names the policy but not its rule)."""
    return (f"{_direction(decision)}|{decision.outcome.value}|{','.join(decision.isolating)}|"
            f"{decision.policy or ''}")


def _rendered_rules(totals: FlowTotals) -> set[tuple[str, str, str, int]]:
    found: set[tuple[str, str, str, int]] = set()
    for keys in totals.node_logs.values():
        for key in keys:
            d = totals.decisions.get(key)
            if d is not None and d.policy is not None and d.rule_index is not None:
                found.add((_tier(d), d.policy, _direction(d), d.rule_index))
    return found


def _policy_stats(
    rules: Iterable[RuleRef], by_rule: Mapping[tuple[str, str, str, int], Tally],
    rendered: set[tuple[str, str, str, int]],
) -> list[PolicyStats]:
    policies: dict[tuple[str, str], PolicyStats] = {}
    for ref in rules:
        key = (ref.tier, ref.policy, ref.direction, ref.rule_index)
        tally = by_rule.get(key, Tally())
        status = _status(ref, tally, rendered=key in rendered)
        stats = policies.setdefault((ref.tier, ref.policy), PolicyStats(ref.tier, ref.policy))
        stats.rules.append(RuleStats(ref.tier, ref.policy, ref.direction, ref.rule_index,
                                     ref.rule_name, ref.action, tally, status))
    return [policies[k] for k in sorted(policies, key=_tier_order)]


def _tier_order(key: tuple[str, str]) -> tuple[int, str]:
    order = {"AdminNetworkPolicy": 0, "NetworkPolicy": 1, "BaselineAdminNetworkPolicy": 2}
    return order.get(key[0], 3), key[1]


def _status(ref: RuleRef, tally: Tally, *, rendered: bool) -> str:
    if tally.hits:
        return "hit"
    if ref.action == Outcome.PASS.value:
        return "pass"
    return "never hit" if rendered else "not rendered"


def _count_default_denies(
    policies: Sequence[PolicyStats], defaults: Iterable[tuple[Decision, Tally]]
) -> None:
    by_key = {p.policy: p for p in policies if p.tier == "NetworkPolicy"}
    for decision, tally in defaults:
        if decision.outcome is Outcome.DEFAULT_DENY:
            for key in decision.isolating:
                if key in by_key:
                    by_key[key].default_denies += tally.hits


def _flow_tallies(counters: Iterable[CounterValue]) -> dict[tuple[str, str], Tally]:
    found: dict[tuple[str, str], Tally] = {}
    fields = {"flows": "hits", "flow_bytes": "bytes", "flow_packets": "packets"}
    for counter in counters:
        name = fields.get(counter.name)
        if name is not None:
            key = (counter.labels["direction"], counter.labels["verdict"])
            tally = found.setdefault(key, Tally())
            setattr(tally, name, getattr(tally, name) + counter.value)
    return found


def _health(counters: Iterable[CounterValue]) -> dict[str, int]:
    found = dict.fromkeys(HEALTH_COUNTERS, 0)
    for counter in counters:
        if counter.name in found:
            found[counter.name] += counter.value
    return found


# -- Prometheus ----------------------------------------------------------------------------------


def prometheus_text(totals: FlowTotals) -> str:
    """The text exposition format (version 0.0.4) of every counter, bounded labels only."""
    lines: list[str] = []
    flows = {"flows": ("kanal_flows_total", "Flow records (one per direction judged)."),
             "flow_bytes": ("kanal_flow_bytes_total", "Bytes of ended connections."),
             "flow_packets": ("kanal_flow_packets_total", "Packets of ended connections.")}
    for name, (metric, help_text) in flows.items():
        samples = [(c.labels, c.value) for c in totals.counters if c.name == name]
        lines.extend(_family(metric, help_text, samples))
    rule_samples = _rule_samples(totals)
    lines.extend(_family("kanal_policy_rule_hits_total",
                         "Flow records decided by each rule (or default).",
                         [(labels, t.hits) for labels, t in rule_samples]))
    lines.extend(_family("kanal_policy_rule_bytes_total",
                         "Bytes of ended connections each rule (or default) admitted.",
                         [(labels, t.bytes) for labels, t in rule_samples]))
    for name, metric in HEALTH_COUNTERS.items():
        samples = [(c.labels, c.value) for c in totals.counters if c.name == name]
        lines.extend(_family(metric, f"Flow collector: {name.replace('_', ' ')}.", samples))
    for name, (metric, help_text) in ALERT_COUNTERS.items():
        samples = [(c.labels, c.value) for c in totals.counters if c.name == name]
        lines.extend(_family(metric, help_text, samples))
    return "\n".join(lines) + "\n"


def _rule_samples(totals: FlowTotals) -> list[tuple[dict[str, str], Tally]]:
    merged: dict[tuple[tuple[str, str], ...], Tally] = {}
    for key, tally in decision_tallies(totals).items():
        decision = totals.decisions.get(key)
        if decision is not None:
            labels = tuple(sorted(rule_labels(decision).items()))
            merged.setdefault(labels, Tally()).add(tally)
    return [(dict(labels), tally) for labels, tally in sorted(merged.items())]


def rule_labels(decision: Decision) -> dict[str, str]:
    """`policy` is the policy key (the isolating policies, comma-separated, for a default
    deny); `rule` the rule's name or index (`default-deny`, `not-isolated`)."""
    if decision.outcome is Outcome.DEFAULT_DENY:
        policy, rule = ",".join(decision.isolating), "default-deny"
    elif decision.policy is None:
        policy, rule = "", decision.outcome.value
    else:
        policy = decision.policy
        rule = decision.rule_name or str(decision.rule_index)
    return {"tier": _tier(decision), "policy": policy, "direction": _direction(decision),
            "rule": rule, "action": decision.outcome.value}


def _family(
    metric: str, help_text: str, samples: Sequence[tuple[Mapping[str, str], int]]
) -> list[str]:
    lines = [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
    lines.extend(f"{metric}{_labels(labels)} {value}" for labels, value in samples)
    return lines


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + ",".join(escaped) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


__all__ = [
    "FlowTotals",
    "PolicyStats",
    "RuleStats",
    "Stats",
    "Tally",
    "compute_stats",
    "prometheus_text",
    "rule_labels",
]
