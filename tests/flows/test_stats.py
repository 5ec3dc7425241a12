"""Statistics from the store's counters and rule catalog: hits, denies and bytes per rule and
policy, default denies per isolating policy, rules never hit (and why), Prometheus text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kanal.engine import Outcome, Tier
from kanal.flows.records import Decision, RuleRef
from kanal.flows.stats import compute_stats, prometheus_text
from kanal.flows.store import FlowStore
from kanal.model.objects import Direction, PolicyKey

from .builders import (
    ALLOW_WEB,
    ANP_DENY,
    DEFAULT_DENY_WEB,
    EGRESS_DENY_OTHER,
    NOT_ISOLATED_EGRESS,
    denied,
    finished,
    record,
)

RULES = [
    RuleRef("NetworkPolicy", "x/allow-clients", "ingress", 0, "", "Allow"),
    RuleRef("NetworkPolicy", "x/allow-clients", "ingress", 1, "", "Allow"),
    RuleRef("NetworkPolicy", "z/egress-only", "egress", 0, "", "Allow"),
    RuleRef("NetworkPolicy", "q/unused", "ingress", 0, "", "Allow"),
    RuleRef("AdminNetworkPolicy", "guard", "egress", 0, "to-x", "Pass"),
    RuleRef("AdminNetworkPolicy", "guard", "egress", 1, "no-db", "Deny"),
]
Z_ALLOW = Decision(Direction.EGRESS, Outcome.ALLOW, Tier.NETWORK, PolicyKey("z/egress-only"), 0,
                   log_id="k:eeeeeeeeeeee")
X_RULE_1 = replace(ALLOW_WEB, rule_index=1, log_id="k:ffffffffffff")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlowStore]:
    opened = FlowStore(tmp_path / "flows.db")
    opened.write_catalog("node-0", RULES, [ALLOW_WEB, X_RULE_1, DEFAULT_DENY_WEB])
    opened.write_catalog("node-1", RULES, [Z_ALLOW, EGRESS_DENY_OTHER, ANP_DENY])
    ids = opened.insert([record(), record(), record(denied), record(denied), record(denied),
                         record(decision=ANP_DENY, node="node-1"),
                         record(decision=NOT_ISOLATED_EGRESS)])
    opened.complete([(record(id=ids[0]), finished(1000, 8)), (record(id=ids[1]),
                                                               finished(500, 6))])
    yield opened
    opened.close()


def test_per_rule_hits_denies_bytes_and_why_a_rule_was_never_hit(store: FlowStore) -> None:
    stats = compute_stats(store.totals())
    table = [(p.policy, r.label(), r.status, r.tally.hits, r.tally.denies, r.tally.bytes)
             for p in stats.policies for r in p.rules]
    assert table == [
        ("guard", "'to-x'", "pass", 0, 0, 0),
        ("guard", "'no-db'", "hit", 1, 1, 0),
        ("q/unused", "#0", "not rendered", 0, 0, 0),
        ("x/allow-clients", "#0", "hit", 2, 0, 1500),
        ("x/allow-clients", "#1", "never hit", 0, 0, 0),
        ("z/egress-only", "#0", "never hit", 0, 0, 0),
    ]
    by_policy = {p.policy: (p.tally.hits, p.default_denies) for p in stats.policies}
    assert by_policy == {"guard": (1, 0), "q/unused": (0, 0), "x/allow-clients": (2, 3),
                         "z/egress-only": (0, 0)}
    assert [(d.describe(), t.hits, t.denies) for d, t in stats.defaults] == [
        ("not isolated", 1, 0),
        ("default deny (isolated by x/allow-clients, x/default-deny)", 3, 3)]
    flows = {k: (t.hits, t.bytes) for k, t in stats.flows.items()}
    assert flows == {("ingress", "allowed"): (2, 1500), ("ingress", "denied"): (3, 0),
                     ("egress", "denied"): (1, 0), ("egress", "allowed"): (1, 0)}


def test_json_lists_never_hit_rules(store: FlowStore) -> None:
    found = compute_stats(store.totals()).to_json()
    assert [(n["policy"], n["rule"], n["status"]) for n in found["never_hit"]] == [
        ("guard", 0, "pass"), ("q/unused", 0, "not rendered"), ("x/allow-clients", 1, "never hit"),
        ("z/egress-only", 0, "never hit")]
    assert found["collector"] == {"events_lost": 0, "unknown_log_ids": 0, "disagreements": 0,
                                  "reloads": 0, "forgotten": 0}


def test_prometheus_text_has_bounded_labels_only(store: FlowStore) -> None:
    store.add_counters({("events_lost", '{"node":"node-0","source":"nflog"}'): 2})
    text = prometheus_text(store.totals())
    assert "client-a" not in text
    assert "web" not in text.replace("allow-clients", "").replace("webhook", "")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        'kanal_flows_total{direction="egress",node="node-0",verdict="allowed"} 1',
        'kanal_flows_total{direction="egress",node="node-1",verdict="denied"} 1',
        'kanal_flows_total{direction="ingress",node="node-0",verdict="allowed"} 2',
        'kanal_flows_total{direction="ingress",node="node-0",verdict="denied"} 3',
        'kanal_flow_bytes_total{direction="ingress",node="node-0",verdict="allowed"} 1500',
        'kanal_flow_packets_total{direction="ingress",node="node-0",verdict="allowed"} 14',
        'kanal_policy_rule_hits_total{action="Allow",direction="ingress",'
        'policy="x/allow-clients",rule="0",tier="NetworkPolicy"} 2',
        'kanal_policy_rule_hits_total{action="DefaultDeny",direction="ingress",'
        'policy="x/allow-clients,x/default-deny",rule="default-deny",tier="NetworkPolicy"} 3',
        'kanal_policy_rule_hits_total{action="Deny",direction="egress",policy="guard",'
        'rule="no-db",tier="AdminNetworkPolicy"} 1',
        'kanal_policy_rule_hits_total{action="NotIsolated",direction="egress",policy="",'
        'rule="NotIsolated",tier=""} 1',
        'kanal_policy_rule_bytes_total{action="Allow",direction="ingress",'
        'policy="x/allow-clients",rule="0",tier="NetworkPolicy"} 1500',
        'kanal_policy_rule_bytes_total{action="DefaultDeny",direction="ingress",'
        'policy="x/allow-clients,x/default-deny",rule="default-deny",tier="NetworkPolicy"} 0',
        'kanal_policy_rule_bytes_total{action="Deny",direction="egress",policy="guard",'
        'rule="no-db",tier="AdminNetworkPolicy"} 0',
        'kanal_policy_rule_bytes_total{action="NotIsolated",direction="egress",policy="",'
        'rule="NotIsolated",tier=""} 0',
        'kanal_flow_collector_events_lost_total{node="node-0",source="nflog"} 2',
    ]
    assert "# TYPE kanal_flows_total counter" in text
