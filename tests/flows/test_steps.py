"""DecidingSteps: one walk over the rules per kind of connection, and every answer explain's.

    namespace a: c1, c2, c3 (app=c, one group)      namespace b: s1, s2 (app=s, http=80, one group)
                 d1 (app=d), e1 (app=e)                          t1 (app=t, http=8080)
    NetworkPolicy b/from-c   app=s: ingress from app=c pods in a, on 80
    NetworkPolicy b/block    app=s: ingress from ipBlock 10.0.0.1/32, on 81 (only c1's address)
    NetworkPolicy a/named    app=c: egress to anyone on the named port http (the peer's)
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kanal.engine import Outcome, PolicyEngine, Step
from kanal.flows.steps import DecidingSteps
from kanal.model.objects import Direction, Protocol
from kanal.model.parse import parse_documents

IPS = {"a/c1": "10.0.0.1", "a/c2": "10.0.0.2", "a/c3": "10.0.0.3", "a/d1": "10.0.0.4",
       "a/e1": "10.0.0.5", "b/s1": "10.0.1.1", "b/s2": "10.0.1.2", "b/t1": "10.0.1.3"}
HTTP = {"s": 80, "t": 8080}


def _pod(key: str) -> dict[str, Any]:
    namespace, name = key.split("/")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app": name[0]}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": HTTP[name[0]]}] if name[0] in HTTP else []}]},
            "status": {"podIPs": [{"ip": IPS[key]}]}}


def _policy(name: str, peer: dict[str, Any], port: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "b"},
            "spec": {"podSelector": {"matchLabels": {"app": "s"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [peer], "ports": [{"port": port}]}]}}


NAMED = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "named", "namespace": "a"},
         "spec": {"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"port": "http"}]}]}}


def _engine() -> PolicyEngine:
    pods = [_pod(k) for k in IPS]
    from_c = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}},
              "podSelector": {"matchLabels": {"app": "c"}}}
    policies = [_policy("from-c", from_c, 80),
                _policy("block", {"ipBlock": {"cidr": "10.0.0.1/32"}}, 81), NAMED]
    return PolicyEngine.from_manifests(
        parse_documents(("steps.py", d) for d in [*pods, *policies]))


def _step(steps: DecidingSteps, src: str, dst: str, port: int,
          direction: Direction = Direction.INGRESS) -> Step:
    return steps.deciding(direction, steps.endpoint(ipaddress.ip_address(IPS[src])),
                          steps.endpoint(ipaddress.ip_address(IPS[dst])), port=port,
                          protocol=Protocol.TCP)


def _explained(engine: PolicyEngine, src: str, dst: str, port: int,
               direction: Direction = Direction.INGRESS) -> Step:
    verdict = engine.explain(src, dst, port, Protocol.TCP)
    return (verdict.ingress if direction is Direction.INGRESS else verdict.egress).deciding


@pytest.mark.parametrize("port", [80, 81, 82, 8080], ids=lambda p: f"port {p}")
def test_every_pair_gets_explains_step(port: int) -> None:
    engine = _engine()
    steps = DecidingSteps(engine)
    for src in IPS:
        for dst in IPS:
            for direction in Direction:
                assert _step(steps, src, dst, port, direction) == _explained(
                    engine, src, dst, port, direction), (src, dst, direction)


def test_a_new_pair_of_known_groups_costs_no_walk() -> None:
    steps = DecidingSteps(_engine())
    assert _step(steps, "a/c2", "b/s1", 80).outcome is Outcome.ALLOW
    assert steps.walks == 1
    assert _step(steps, "a/c3", "b/s2", 80).outcome is Outcome.ALLOW
    assert steps.walks == 1


def test_a_peer_of_another_group_that_the_chain_sees_the_same_way_costs_no_walk() -> None:
    steps = DecidingSteps(_engine())
    assert _step(steps, "a/d1", "b/s1", 80).outcome is Outcome.DEFAULT_DENY
    assert _step(steps, "a/e1", "b/s1", 80).outcome is Outcome.DEFAULT_DENY
    assert steps.walks == 1


def test_a_named_port_at_egress_tells_peers_apart_by_their_ports() -> None:
    steps = DecidingSteps(_engine())
    assert _step(steps, "a/c1", "b/s1", 80, Direction.EGRESS).outcome is Outcome.ALLOW
    assert _step(steps, "a/c2", "b/t1", 80, Direction.EGRESS).outcome is Outcome.DEFAULT_DENY
    assert _step(steps, "a/c2", "b/t1", 8080, Direction.EGRESS).outcome is Outcome.ALLOW
    assert steps.walks == 3


def test_an_address_peer_splits_a_group_by_what_contains_the_address() -> None:
    steps = DecidingSteps(_engine())
    assert _step(steps, "a/c1", "b/s1", 81).policy == "b/block"
    assert _step(steps, "a/c2", "b/s1", 81).outcome is Outcome.DEFAULT_DENY
    assert _step(steps, "a/c3", "b/s2", 81).outcome is Outcome.DEFAULT_DENY
    assert steps.walks == 2


def test_a_pod_to_itself_is_judged_by_its_addresses() -> None:
    steps = DecidingSteps(_engine())
    assert _step(steps, "b/s1", "b/s1", 82).outcome is Outcome.SELF
    assert _step(steps, "b/s2", "b/s1", 82).outcome is Outcome.DEFAULT_DENY
