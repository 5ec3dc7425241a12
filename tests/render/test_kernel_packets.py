"""Real packets through rendered tables: on a 2-node, 4-pod `minilab` (both backends), with the
tables of `render_node` loaded in each node netns, every TCP probe between two pods connects
exactly when the engine allows it: same node and cross node, all three tiers, named ports,
port ranges, default deny in each direction.

    n0: x/web (http=80)   y/client-a          n1: y/client-b   z/db
    NetworkPolicy x/web         ingress from namespace y on `http`
    NetworkPolicy y/client-out  egress isolation of clients: to z on 80-81, to x on anything
    ANP guard (priority 1)      clients: Deny egress to z on 81, Pass egress to x
    BANP default                pods in z: Deny ingress from x
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator

import pytest

import minilab
from kanal.dataplane.nft import Nft, load_table_atomically
from kanal.engine import PolicyEngine
from kanal.lab.prober import Probe, probe_many
from kanal.lab.servers import PodServers, ServedPod
from kanal.model.objects import (
    AdminAction,
    AdminPort,
    ContainerPort,
    Direction,
    NetworkPolicy,
    Pod,
    PolicyRule,
    Protocol,
)
from kanal.render import render_node, table_text

from .builders import admin_rule, allow_from, anp, cluster, namespace, pods_in, sel, tcp

pytestmark = pytest.mark.kernel

TIMEOUT_S = 0.5
PORTS = (80, 81)
ROLES = (  # minilab order: n0-p0, n0-p1, n1-p0, n1-p1
    ("x", "web", (ContainerPort(80, Protocol.TCP, "http"),)),
    ("y", "client", ()),
    ("y", "client", ()),
    ("z", "db", ()),
)


def _policies() -> tuple[object, ...]:
    client_out = NetworkPolicy(
        "y", "client-out", sel(app="client"), frozenset({Direction.EGRESS}),
        egress=(PolicyRule((pods_in("z"),), (tcp(80, 81),)), PolicyRule((pods_in("x"),))),
    )
    guard = anp("guard", 1, subject_namespace="y", egress=[
        admin_rule(AdminAction.DENY, peer_namespace="z", ports=[AdminPort(Protocol.TCP, 81)]),
        admin_rule(AdminAction.PASS, peer_namespace="x"),
    ])
    baseline = anp("default", None, subject_namespace="z",
                   ingress=[admin_rule(AdminAction.DENY, peer_namespace="x")])
    web = allow_from("x", "web", subject=sel(app="web"), peers=[pods_in("y")], ports=[tcp("http")])
    return (namespace("x"), namespace("y"), namespace("z"), web, client_out, guard, baseline)


def _engine(lab: minilab.MiniLab) -> PolicyEngine:
    pods = [
        Pod(ns, p.name, sel(app=app).match_labels, ports, p.node, (ipaddress.ip_address(p.ip),))
        for p, (ns, app, ports) in zip(lab.pods, ROLES, strict=True)
    ]
    return PolicyEngine.from_manifests(cluster(*pods, *_policies()))


@pytest.fixture(params=["vxlan", "host-gw"])
def lab(request: pytest.FixtureRequest, netns_prefix: str) -> Iterator[minilab.MiniLab]:
    built = minilab.build(netns_prefix, backend=request.param)
    try:
        yield built
    finally:
        minilab.teardown(built)


@pytest.fixture
def servers(lab: minilab.MiniLab) -> Iterator[None]:
    served = PodServers([
        ServedPod(p.name, p.netns, p.ip, tuple((port, Protocol.TCP) for port in PORTS))
        for p in lab.pods
    ])
    served.bind()
    thread = threading.Thread(target=served.serve)
    thread.start()
    try:
        yield
    finally:
        served.stop()
        thread.join(timeout=5)
        served.close()


def test_every_probe_connects_exactly_when_the_engine_allows_it(
    lab: minilab.MiniLab, servers: None
) -> None:
    engine = _engine(lab)
    for node in lab.nodes:
        ruleset = render_node(engine, node)
        assert ruleset.problems == ()
        with Nft(node) as nft:
            load_table_atomically(nft, table_text(ruleset))
    by_name = {p.name: f"{ns}/{p.name}" for p, (ns, _, _) in zip(lab.pods, ROLES, strict=True)}
    cases = [(s, d, port) for s in lab.pods for d in lab.pods if s != d for port in PORTS]
    results = probe_many(
        [Probe(s.netns, d.ip, port, Protocol.TCP) for s, d, port in cases], timeout_s=TIMEOUT_S
    )
    expected = [engine.explain(by_name[s.name], by_name[d.name], port).allowed
                for s, d, port in cases]
    measured = [r.connected for r in results]
    mismatches = [
        (by_name[s.name], by_name[d.name], port, m, e)
        for (s, d, port), m, e in zip(cases, measured, expected, strict=True) if m != e
    ]
    assert mismatches == []
    assert True in expected and False in expected  # the policies decide both ways
    same = {e for (s, d, _), e in zip(cases, expected, strict=True) if s.node == d.node}
    cross = {e for (s, d, _), e in zip(cases, expected, strict=True) if s.node != d.node}
    assert same == cross == {True, False}

