"""AlertEvaluator: each type, metric, scope and key, the throttle, connections counted once,
and bounded memory, with time taken from the records (T0 + seconds)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from kanal.engine import Outcome
from kanal.flows.alerts import Alert, AlertEvaluator
from kanal.flows.alertscope import AlertKey
from kanal.flows.records import FlowRecord, Peer
from kanal.model.alertrule import AlertRule
from kanal.model.objects import Direction, Labels
from kanal.model.parse import parse_documents

from .builders import (
    ANP_DENY,
    CLIENT_B,
    NOT_ISOLATED_EGRESS,
    OTHER,
    T0,
    WEB,
    at,
    denied,
    finished,
    record,
)

EXTERNAL = Peer("192.0.2.9", 443)

Tweak = Callable[[FlowRecord], FlowRecord]


def rule(name: str = "r", **spec: Any) -> AlertRule:
    doc = {"apiVersion": "kanal.io/v1alpha1", "kind": "AlertRule", "metadata": {"name": name},
           "spec": {"metric": "DeniedFlows", "threshold": 3} | spec}
    (parsed,) = parse_documents([("test", doc)]).alert_rules
    return parsed


def sport(port: int) -> Tweak:
    return lambda r: replace(r, src=replace(r.src, port=port))


def dport(port: int, protocol: str = "TCP") -> Tweak:
    return lambda r: replace(r, dst=replace(r.dst, port=port), protocol=protocol)


def to(peer: Peer) -> Tweak:
    return lambda r: replace(r, dst=peer)


def attempts(count: int, *tweaks: Tweak, start: float = 0.0, every: float = 1.0
             ) -> list[FlowRecord]:
    """`count` connections (a new source port each), `every` seconds apart from `start`."""
    return [record(*tweaks, sport(41000 + i), at(start + i * every)) for i in range(count)]


def fire(evaluator: AlertEvaluator, records: list[FlowRecord]) -> list[Alert]:
    return evaluator.on_records(records)


# -- Breach ------------------------------------------------------------------------------------


def test_breach_fires_once_the_period_holds_more_than_the_threshold() -> None:
    evaluator = AlertEvaluator([rule("denied", threshold=3, period="1m")], node="node-0")
    assert fire(evaluator, attempts(3, denied)) == []
    [alert] = fire(evaluator, attempts(1, denied, start=10))
    assert alert == Alert(
        "denied", alert.metric, alert.type, AlertKey("z/other", "z", "other", "10.244.2.3"),
        4.0, 3.0, 60.0, None, T0 + 10, "node-0", "every flow",
        "z/other sent 4 denied flows within 1m: more than 3",
    )
    assert alert.to_json()["pod"] == {"namespace": "z", "name": "other"}


def test_breach_forgets_flows_older_than_the_period() -> None:
    evaluator = AlertEvaluator([rule(threshold=2, period="1m")])
    assert fire(evaluator, attempts(8, denied, every=31)) == []


def test_allowed_flows_do_not_count_as_denied_and_the_reverse() -> None:
    evaluator = AlertEvaluator([rule("d", threshold=1), rule("a", metric="AllowedFlows",
                                                             threshold=1)])
    alerts = fire(evaluator, attempts(2) + attempts(2, denied))
    assert [(a.rule, a.key.text) for a in alerts] == [("a", "y/client-a"), ("d", "z/other")]


def test_keys_are_counted_apart() -> None:
    evaluator = AlertEvaluator([rule(threshold=2)])
    mixed = [record(denied, sport(41000 + i), at(i),
                    *([lambda r: replace(r, src=CLIENT_B)] if i % 2 else []))
             for i in range(4)]
    assert fire(evaluator, mixed) == []


# -- the throttle -------------------------------------------------------------------------------


def test_the_throttle_holds_repeats_for_one_key_then_lets_one_through() -> None:
    evaluator = AlertEvaluator([rule(threshold=1, period="1m", throttle="5m")])
    first = fire(evaluator, attempts(2, denied))
    again = fire(evaluator, attempts(10, denied, start=10, every=20))
    later = fire(evaluator, attempts(2, denied, start=301))
    assert [a.time - T0 for a in first + again + later] == [1, 302]
    assert evaluator.throttled["r"] == 10


def test_the_throttle_is_per_key() -> None:
    evaluator = AlertEvaluator([rule(threshold=1, throttle="5m")])
    alerts = fire(evaluator, attempts(2, denied) + attempts(2, denied, sport(5),
                                                           lambda r: replace(r, src=CLIENT_B)))
    assert [a.key.text for a in alerts] == ["z/other", "y/client-b"]


# -- one connection, counted once -----------------------------------------------------------------


def test_both_directions_of_one_connection_and_retransmissions_count_once() -> None:
    evaluator = AlertEvaluator([rule(metric="AllowedFlows", threshold=1)])
    egress = record(lambda r: replace(r, decision=replace(r.decision, direction=Direction.EGRESS)))
    assert fire(evaluator, [record(), egress, record(at(3))]) == []
    assert len(fire(evaluator, [record(at(20))])) == 1  # the same five-tuple, much later


def test_each_rule_counts_a_connection_once_for_itself() -> None:
    every = rule("every", metric="AllowedFlows", threshold=1)
    ingress = rule("ingress", metric="AllowedFlows", threshold=0,
                   scope={"policy": "x/allow-clients"})
    evaluator = AlertEvaluator([every, ingress])
    egress = record(lambda r: replace(r, decision=replace(
        r.decision, direction=Direction.EGRESS, policy=None, outcome=Outcome.NOT_ISOLATED)))
    assert fire(evaluator, [egress]) == []  # counted by `every` only
    assert [a.rule for a in fire(evaluator, [record()])] == ["ingress"]  # its first sighting
    evaluator.update([every, ingress, rule("new", metric="AllowedFlows", threshold=0)],
                     namespaces={})
    assert [a.rule for a in fire(evaluator, [record(at(1))])] == ["new"]  # a bit of its own


def test_distinct_metrics_count_values_not_connections() -> None:
    evaluator = AlertEvaluator([rule(metric="DestinationPorts", threshold=1)])
    assert fire(evaluator, [record(dport(80)), record(dport(80), at(1))]) == []
    assert len(fire(evaluator, [record(dport(80), at(2)), record(dport(81), at(2))])) == 1


# -- UniqueCount ---------------------------------------------------------------------------------


def test_a_port_scan() -> None:
    evaluator = AlertEvaluator([rule("scan", metric="DestinationPorts", threshold=10,
                                     verdict="Denied", period="30s")])
    ports = [record(denied, dport(1000 + i), at(i)) for i in range(10)]
    allowed = [record(dport(2000 + i), lambda r: replace(r, src=OTHER), at(10)) for i in range(5)]
    assert fire(evaluator, ports + allowed) == []
    [alert] = fire(evaluator, [record(denied, dport(53, "UDP"), at(11))])
    assert alert.value == 11
    assert alert.summary == ("z/other sent denied flows to 11 distinct destination ports within "
                             "30s: more than 10")


def test_ports_of_other_protocols_are_other_ports() -> None:
    evaluator = AlertEvaluator([rule(metric="DestinationPorts", threshold=1)])
    assert len(fire(evaluator, [record(dport(53, "UDP")), record(dport(53, "TCP"))])) == 1


def test_an_address_sweep_older_than_the_period_is_forgotten() -> None:
    evaluator = AlertEvaluator([rule(metric="DestinationAddresses", threshold=2, period="10s")])
    sweep = [record(to(replace(WEB, ip=f"10.244.9.{i}")), at(i * 6)) for i in range(5)]
    assert fire(evaluator, sweep) == []
    burst = [record(to(replace(WEB, ip=f"10.244.8.{i}")), at(40 + i)) for i in range(3)]
    [alert] = fire(evaluator, burst)
    assert alert.summary == ("y/client-a sent flows to 3 distinct destination addresses within "
                             "10s: more than 2")


# -- RollingAverage ------------------------------------------------------------------------------


def test_a_rolling_average_is_the_window_sum_per_period() -> None:
    evaluator = AlertEvaluator([rule("avg", type="RollingAverage", period="1m", window="10m",
                                     threshold=2)])
    assert fire(evaluator, attempts(20, denied, every=25)) == []  # 20 in 8 min: 2.0 per minute
    [alert] = fire(evaluator, attempts(1, denied, start=490))
    assert alert.value == 2.1
    assert alert.summary == ("z/other sent 2.1 denied flows per 1m on average over 10m: more "
                             "than 2")


def test_a_burst_alone_does_not_make_an_average() -> None:
    evaluator = AlertEvaluator([rule(type="RollingAverage", period="1m", window="10m",
                                     threshold=5)])
    assert fire(evaluator, attempts(40, denied, every=0.5)) == []


# -- Bytes ---------------------------------------------------------------------------------------


def test_bytes_of_ended_connections_once_per_connection() -> None:
    evaluator = AlertEvaluator([rule("big", metric="Bytes", threshold=1000, throttle="1h")])
    egress = record(lambda r: replace(r, decision=replace(r.decision, direction=Direction.EGRESS)))
    assert evaluator.on_records([record()]) == []
    assert evaluator.on_completions([(record(), finished(600, 5)), (egress, finished(600, 5))]
                                    ) == []
    [alert] = evaluator.on_completions([(record(sport(5)), finished(600, 5, 2.0))])
    assert (alert.value, alert.time) == (1200, T0 + 2.0)
    assert alert.summary == "y/client-a sent 1200 bytes in ended connections within 1m: more " \
                            "than 1000"


# -- scopes and keys -----------------------------------------------------------------------------


SCOPED = [
    record(denied, sport(1)),                                      # z/other -> x/web, default deny
    record(sport(2)),                                              # y/client-a -> x/web, allowed
    record(sport(3), decision=ANP_DENY, dst=EXTERNAL, src=OTHER),  # ANP guard denies egress
    record(sport(4), src=CLIENT_B, dst=OTHER, decision=NOT_ISOLATED_EGRESS),  # y -> z
]


@pytest.mark.parametrize(("scope", "matched"), [
    pytest.param(None, [1, 2, 3, 4], id="no scope: every flow"),
    pytest.param({"policy": "x/default-deny"}, [1], id="a policy's default deny"),
    pytest.param({"policy": "x/allow-clients"}, [1, 2],
                 id="a policy: its rules and its default deny"),
    pytest.param({"policy": "guard"}, [3], id="an admin policy"),
    pytest.param({"policy": {"kind": "BaselineAdminNetworkPolicy", "name": "guard"}}, [],
                 id="another tier's policy of that name"),
    pytest.param({"namespace": "z"}, [1, 3, 4], id="a namespace: from or to"),
    pytest.param({"podSelector": {"matchLabels": {"app": "web"}}}, [1, 2], id="pods"),
    pytest.param({"namespaceSelector": {"matchLabels": {"team": "apps"}}}, [1, 2, 4],
                 id="namespaces by their labels"),
    pytest.param({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "z"}},
                  "podSelector": {}}, [1, 3, 4],
                 id="a namespace only referenced has its name label"),
])
def test_scopes(scope: dict[str, Any] | None, matched: list[int]) -> None:
    spec = {"metric": "DestinationAddresses", "threshold": 0, "groupBy": "Scope"}
    evaluator = AlertEvaluator(
        [rule(**spec, **({} if scope is None else {"scope": scope}))],
        namespaces={"x": Labels({"team": "apps"}), "y": Labels({"team": "apps"})},
    )
    seen = [i for i, r in enumerate(SCOPED, start=1)
            if fire(evaluator, [replace(r, time=T0 + 100 * i)])]
    assert seen == matched


@pytest.mark.parametrize(("group_by", "key"), [
    ("Source", AlertKey("z/other", "z", "other", "10.244.2.3")),
    ("Destination", AlertKey("192.0.2.9", None, None, "192.0.2.9")),
    ("Scope", AlertKey("namespace z")),
])
def test_keys(group_by: str, key: AlertKey) -> None:
    evaluator = AlertEvaluator([rule(threshold=0, groupBy=group_by, scope={"namespace": "z"})])
    [alert] = fire(evaluator, [SCOPED[2]])
    assert alert.key == key


def test_the_sentence_names_the_scope_and_the_destination() -> None:
    evaluator = AlertEvaluator([rule(threshold=0, groupBy="Destination",
                                     scope={"policy": "x/default-deny"})])
    [alert] = fire(evaluator, [record(denied)])
    assert alert.summary == ("x/web received 1 denied flows within 1m (scope: policy "
                             "x/default-deny): more than 0")


# -- rules change, memory stays bounded ----------------------------------------------------------


def test_an_unchanged_rule_keeps_its_window_across_a_reload_a_changed_one_starts_over() -> None:
    kept, changed = rule("kept", threshold=2), rule("changed", threshold=2)
    evaluator = AlertEvaluator([kept, changed])
    fire(evaluator, attempts(2, denied))
    evaluator.update([kept, rule("changed", threshold=2, period="2m")], namespaces={})
    assert [a.rule for a in fire(evaluator, attempts(1, denied, start=5))] == ["kept"]


def test_keys_are_bounded_and_idle_ones_forgotten() -> None:
    evaluator = AlertEvaluator([rule(threshold=1, period="10s")], max_keys=2)
    sources = [record(denied, sport(1), lambda r, i=i: replace(r, src=replace(
        OTHER, pod=f"p{i}", ip=f"10.244.3.{i}")), at(i)) for i in range(3)]
    fire(evaluator, sources)
    assert (evaluator.evicted["r"], evaluator.tracked("r")) == (1, 2)
    fire(evaluator, [record(at(100))])  # allowed: counted by nothing, but time moves on
    assert evaluator.tracked("r") == 0


def test_time_comes_from_the_records_and_a_late_record_counts_now() -> None:
    evaluator = AlertEvaluator([rule(threshold=1, period="10s")])
    fire(evaluator, attempts(1, denied, start=100))
    [alert] = fire(evaluator, [record(denied, sport(7), at(95))])  # late: counts at T0 + 100
    assert alert.time == T0 + 100
