"""The tier order in the rendered chains, case by case: each row is a small cluster, one
connection, and the expected fate; the rendered tables (run by `nftsim`) and the engine must
both give it, with the pods on one node and on two."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kanal.model.objects import AdminAction, AdminPort, Direction, Protocol
from kanal.render import render_node

from .builders import (
    admin_rule,
    allow_from,
    anp,
    cluster,
    deny_all,
    engine_of,
    namespace,
    on_node,
    pod,
    pods_in,
    sel,
)
from .nftsim import Packet, TableSim

ALLOW, DENY, PASS = AdminAction.ALLOW, AdminAction.DENY, AdminAction.PASS
PODS = (
    namespace("x"),
    namespace("y"),
    pod("x", "a", "10.244.1.2", app="a"),
    pod("y", "b", "10.244.1.3", app="b"),
)


@dataclass(frozen=True)
class Case:
    objects: tuple[object, ...]
    allowed: bool
    connection: tuple[str, str] = ("y/b", "x/a")
    port: int = 80


CASES = {
    "an ANP Deny overrides a NetworkPolicy that allows": Case(
        (anp("guard", 1, subject_namespace="x", ingress=[admin_rule(DENY, peer_namespace="y")]),
         allow_from("x", "open", subject=sel())),
        allowed=False,
    ),
    "an ANP Allow overrides a NetworkPolicy default deny": Case(
        (anp("guard", 1, subject_namespace="x", ingress=[admin_rule(ALLOW, peer_namespace="y")]),
         deny_all("x", "deny", Direction.INGRESS)),
        allowed=True,
    ),
    "Pass skips lower-priority ANPs and hands over to the NetworkPolicy tier": Case(
        (anp("first", 1, subject_namespace="x", ingress=[admin_rule(PASS, peer_namespace="y")]),
         anp("second", 2, subject_namespace="x", ingress=[admin_rule(DENY, peer_namespace="y")])),
        allowed=True,
    ),
    "Pass then an isolating NetworkPolicy without a matching rule is a default deny": Case(
        (anp("first", 1, subject_namespace="x", ingress=[admin_rule(PASS, peer_namespace="y")]),
         anp("second", 2, subject_namespace="x", ingress=[admin_rule(ALLOW, peer_namespace="y")]),
         deny_all("x", "deny", Direction.INGRESS)),
        allowed=False,
    ),
    "Pass reaches the BANP when no NetworkPolicy isolates": Case(
        (anp("first", 1, subject_namespace="x", ingress=[admin_rule(PASS, peer_namespace="y")]),
         anp("default", None, subject_namespace="x",
             ingress=[admin_rule(DENY, peer_namespace="y")])),
        allowed=False,
    ),
    "the BANP is ignored when a NetworkPolicy isolates": Case(
        (anp("default", None, subject_namespace="x",
             ingress=[admin_rule(DENY, peer_namespace="y")]),
         allow_from("x", "from-y", subject=sel(), peers=[pods_in("y")])),
        allowed=True,
    ),
    "the lower priority number wins": Case(
        (anp("low", 1, subject_namespace="x", ingress=[admin_rule(ALLOW, peer_namespace="y")]),
         anp("high", 2, subject_namespace="x", ingress=[admin_rule(DENY, peer_namespace="y")])),
        allowed=True,
    ),
    "equal priorities are ordered by name": Case(
        (anp("b-allow", 1, subject_namespace="x", ingress=[admin_rule(ALLOW, peer_namespace="y")]),
         anp("a-deny", 1, subject_namespace="x", ingress=[admin_rule(DENY, peer_namespace="y")])),
        allowed=False,
    ),
    "an ANP rule on other ports does not match": Case(
        (anp("guard", 1, subject_namespace="x", ingress=[admin_rule(
            DENY, peer_namespace="y", ports=[AdminPort(Protocol.TCP, 8000, 9000)])]),),
        allowed=True,
    ),
    "an egress Allow still leaves the destination's ingress to decide": Case(
        (anp("out", 1, subject_namespace="y", egress=[admin_rule(ALLOW, peer_namespace="x")]),
         deny_all("x", "deny", Direction.INGRESS)),
        allowed=False,
    ),
    "an egress Deny is final even when ingress would allow": Case(
        (anp("out", 1, subject_namespace="y", egress=[admin_rule(DENY, peer_namespace="x")]),
         anp("in", 1, subject_namespace="x", ingress=[admin_rule(ALLOW, peer_namespace="y")])),
        allowed=False,
    ),
    "an egress default deny drops before ingress is looked at": Case(
        (deny_all("y", "deny-out", Direction.EGRESS),), allowed=False,
    ),
    "the egress BANP decides when no NetworkPolicy isolates egress": Case(
        (allow_from("x", "in", subject=sel(), peers=[pods_in("y")]),
         anp("default", None, subject_namespace="y",
             egress=[admin_rule(DENY, peer_namespace="x")])),
        allowed=False,
    ),
}


def _fate(objects: tuple[object, ...], case: Case, *, two_nodes: bool) -> tuple[bool, bool]:
    tweaks = [on_node("n2", "x/a")] if two_nodes else []
    engine = engine_of(cluster(*PODS, *objects, tweaks=tweaks))
    src, dst = case.connection
    conn = engine.connection(src, dst, case.port, Protocol.TCP)
    assert conn.source.ip is not None and conn.destination.ip is not None
    packet = Packet(conn.source.ip, conn.destination.ip, "tcp", case.port)
    accepted = True
    for node in dict.fromkeys(p.node_name for p in (conn.source.pod, conn.destination.pod) if p):
        packet.mark = 0
        accepted = accepted and TableSim(render_node(engine, str(node))).forward(packet)
    return accepted, engine.allowed(conn)


@pytest.mark.parametrize("two_nodes", [False, True], ids=["one node", "two nodes"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_rendered_tiers_decide_as_the_engine(case: Case, two_nodes: bool) -> None:
    kernel, engine = _fate(case.objects, case, two_nodes=two_nodes)
    assert engine == case.allowed, "the case's expectation disagrees with the engine"
    assert kernel == case.allowed
