"""The NetworkPolicy tier dispatched on (protocol, port): classes, sharing, named ports, order."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from kanal.engine import Outcome
from kanal.model.objects import (
    ContainerPort,
    Direction,
    NetworkPolicy,
    PolicyPort,
    PolicyRule,
    Protocol,
)
from kanal.render import Ruleset, render_node
from kanal.render.network import PortClass, port_classes

from .builders import allow_from, cluster, engine_of, namespace, pod, pods_in, sel, tcp
from .nftsim import Packet, TableSim

TCP, UDP, SCTP = Protocol.TCP, Protocol.UDP, Protocol.SCTP


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        pytest.param([[(TCP, 80, 80)]], [(TCP, 80, 80, (0,))], id="one port is one class"),
        pytest.param(
            [[(TCP, 80, 90)], [(TCP, 85, 100)]],
            [(TCP, 80, 84, (0,)), (TCP, 85, 90, (0, 1)), (TCP, 91, 100, (1,))],
            id="overlapping ranges split where the cover changes",
        ),
        pytest.param(
            [[(UDP, 53, 53)], [(TCP, 53, 53)]],
            [(TCP, 53, 53, (1,)), (UDP, 53, 53, (0,))],
            id="protocols are separate spaces, tcp first",
        ),
        pytest.param(
            [[(TCP, 80, 80), (TCP, 80, 81)]], [(TCP, 80, 80, (0,)), (TCP, 81, 81, (0,))],
            id="a part covering a port twice is listed once",
        ),
        pytest.param(
            [[(SCTP, 0, 65535)], [(SCTP, 65535, 65535)]],
            [(SCTP, 0, 65534, (0,)), (SCTP, 65535, 65535, (0, 1))],
            id="the whole port space, up to its last port",
        ),
        pytest.param([[(TCP, 1, 2)], [(TCP, 5, 6)]],
                     [(TCP, 1, 2, (0,)), (TCP, 5, 6, (1,))], id="gaps are not classes"),
        pytest.param([[]], [], id="no spans, no classes"),
    ],
)
def test_port_classes_are_the_elementary_intervals_with_their_covering_parts(
    spans: list[list[tuple[Protocol, int, int]]], expected: list[PortClass]
) -> None:
    assert port_classes(spans) == expected


def _port_map(ruleset: Ruleset, chain_prefix: str) -> str:
    (chain,) = [c for c in ruleset.chains if c.name.startswith(chain_prefix)]
    (vmap,) = [r.verdict for r in chain.rules if "th dport vmap" in r.verdict]
    return vmap


def test_a_policy_on_two_ports_is_one_class_chain_behind_two_map_entries() -> None:
    m = cluster(namespace("x"), namespace("y"), pod("x", "web", "10.244.1.2", app="web"),
                allow_from("x", "web", subject=sel(app="web"), peers=[pods_in("y")],
                           ports=[tcp(80), tcp(443)]))
    ruleset = render_node(engine_of(m), "n1")
    vmap = _port_map(ruleset, "ingress_")
    (target,) = {e.split(" : jump ")[1] for e in vmap.split("{ ")[1].rstrip(" }").split(", ")}
    entries = f"tcp . 80 : jump {target}, tcp . 443 : jump {target}"
    assert vmap == f"meta l4proto . th dport vmap {{ {entries} }}"
    chains = {c.name: c for c in ruleset.chains if c.name.startswith("np")}
    assert sorted(chains) == ["np_x_web_in", target]
    assert [r.verdict for r in chains[target].rules] == ["jump np_x_web_in"]


def test_a_class_chain_jumps_every_covering_policy_in_order_egress_only_while_none_allowed(
) -> None:
    def out(name: str, *ports: PolicyPort) -> NetworkPolicy:
        return NetworkPolicy("x", name, sel(app="web"), frozenset({Direction.EGRESS}),
                             egress=(PolicyRule((pods_in("y"),), ports),))

    m = cluster(namespace("x"), namespace("y"), pod("x", "web", "10.244.1.2", app="web"),
                out("a", tcp(80, 90)), out("b", tcp(85)), out("c", tcp(443)))
    ruleset = render_node(engine_of(m), "n1")
    chains = {c.name: c for c in ruleset.chains}
    vmap = _port_map(ruleset, "egress_")
    targets = dict(e.split(" : jump ") for e in vmap.split("{ ")[1].rstrip(" }").split(", "))
    assert list(targets) == ["tcp . 80-84", "tcp . 85", "tcp . 86-90", "tcp . 443"]
    assert targets["tcp . 80-84"] == targets["tcp . 86-90"]
    both = chains[targets["tcp . 85"]].rules
    assert [(r.matches, r.verdict) for r in both] == [
        ((), "jump np_x_a_eg"), (("meta mark & 0x10000 == 0",), "jump np_x_b_eg")]


def test_ingress_named_ports_resolve_at_the_protected_pod_so_groups_get_their_own_numbers() -> None:
    http = PolicyPort(TCP, "http")
    m = cluster(
        namespace("x"),
        pod("x", "old", "10.244.1.2", ports=[ContainerPort(8080, TCP, "http")], app="web"),
        pod("x", "new", "10.244.1.3", ports=[ContainerPort(9090, TCP, "http")], app="web"),
        pod("x", "none", "10.244.1.4", app="web"),
        allow_from("x", "web", subject=sel(app="web"), ports=[http]),
    )
    ruleset = render_node(engine_of(m), "n1")
    ingress = dict(ruleset.maps[1].elements)
    chains = {c.name: c for c in ruleset.chains}
    old, new, none = (chains[ingress[ip].removeprefix("goto ")] for ip in
                      ("10.244.1.2", "10.244.1.3", "10.244.1.4"))
    assert "tcp . 8080 : jump npport_in_" in old.rules[0].verdict
    assert "tcp . 9090 : jump npport_in_" in new.rules[0].verdict
    assert [r.verdict for r in none.rules] == ["drop"]  # it has no `http`: only default deny
    (policy,) = [c for c in ruleset.chains if c.name == "np_x_web_in"]  # one for both groups
    assert policy.rules[0].matches == (
        "meta l4proto tcp", "ip daddr . meta l4proto . th dport @port_http_v4")


def test_egress_named_ports_cover_every_number_the_cluster_gives_them_and_keep_their_set() -> None:
    metrics = PolicyPort(TCP, "metrics")
    policy = NetworkPolicy("x", "out", sel(app="web"), frozenset({Direction.EGRESS}),
                           egress=(PolicyRule((pods_in("y"),), (tcp(80), metrics)),))
    m = cluster(namespace("x"), namespace("y"), pod("x", "web", "10.244.1.2", app="web"),
                pod("y", "mon", "10.244.2.2", node="n2",
                    ports=[ContainerPort(9102, TCP, "metrics")]),
                pod("y", "mon-2", "10.244.2.3", node="n2",
                    ports=[ContainerPort(9125, TCP, "metrics")]), policy)
    ruleset = render_node(engine_of(m), "n1")
    vmap = _port_map(ruleset, "egress_")
    assert [e.split(" : ")[0] for e in vmap.split("{ ")[1].rstrip(" }").split(", ")] == [
        "tcp . 80", "tcp . 9102", "tcp . 9125"]
    (chain,) = [c for c in ruleset.chains if c.name == "np_x_out_eg"]
    assert [r.matches[1:] for r in chain.rules] == [
        ("tcp dport 80",),
        ("meta l4proto tcp", "ip daddr . meta l4proto . th dport @port_metrics_v4"),
    ]
    assert chain.rules[0].log == chain.rules[1].log  # one rule, one identity


def test_a_rule_with_ports_is_met_before_an_earlier_one_without_and_the_engine_names_it() -> None:
    any_port = allow_from("x", "a-any", subject=sel(app="web"), peers=[pods_in("y")])
    on_80 = allow_from("x", "b-on-80", subject=sel(app="web"), peers=[pods_in("y")],
                       ports=[tcp(80)])
    m = cluster(namespace("x"), namespace("y"), pod("x", "web", "10.244.1.2", app="web"),
                pod("y", "client", "10.244.2.2", node="n2"), any_port, on_80)
    engine = engine_of(m)
    ruleset = render_node(engine, "n1")
    logs = ruleset.log_table()
    for port, named in ((80, "x/b-on-80"), (81, "x/a-any")):
        (step,) = engine.explain("y/client", "x/web", port).ingress.steps
        assert (step.outcome, step.policy) == (Outcome.ALLOW, named)
        packet = Packet(ip_address("10.244.2.2"), ip_address("10.244.1.2"), "tcp", port)
        assert TableSim(ruleset).forward(packet)
        assert [logs[i].policy for i in packet.logged] == [named]
