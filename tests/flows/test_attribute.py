"""Attribution: a logged packet becomes a record whose decision is the kernel rule's, always
equal to `kanal explain`'s deciding step for that direction, with pod names and groups.

The property test runs random clusters (the engine's strategies, all tiers) through the
rendered tables with the IR interpreter (`render.nftsim`), builds the NFLOG message each log
rule would send, byte by byte, and attributes it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.strategies import EXTERNAL, PROBE_PORTS, clusters
from kanal.engine import Outcome, PolicyEngine, Verdict
from kanal.engine.wording import explain_lines
from kanal.flows.attribute import Attributor, UnknownLogIdError, completion, same_decision
from kanal.flows.conntrack import parse_event
from kanal.flows.netlink import split_messages
from kanal.flows.nflog import LogEvent, parse_packet
from kanal.flows.packets import FiveTuple
from kanal.flows.records import Source
from kanal.model.objects import Direction, Manifests, Protocol
from kanal.render import RenderOptions, render_node
from render.nftsim import Packet, TableSim

from . import cluster
from .messages import ct_event, ipv4, ipv6, nflog_packet, ports

CASES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NODES = ("n1", "n2")
PROTO_NAME = {Protocol.TCP: "tcp", Protocol.UDP: "udp", Protocol.SCTP: "sctp"}
PROTO_NUMBER = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}


def _message(prefix: str, src: str, dst: str, dport: int, proto: Protocol) -> LogEvent:
    ip = ipaddress.ip_address(src)
    build = ipv4 if ip.version == 4 else ipv6
    data = nflog_packet(prefix, build(src, dst, PROTO_NUMBER[proto], ports(43210, dport)))
    [msg] = split_messages(data)
    event = parse_packet(msg, received=1000.0)
    assert event is not None
    return event


def _spread(m: Manifests, data: st.DataObject) -> Manifests:
    pods = tuple(replace(p, node_name=data.draw(st.sampled_from(NODES))) for p in m.pods)
    return replace(m, pods=pods)


@CASES
@given(clusters(), st.data())
def test_every_logged_packet_is_attributed_as_explain_decides_that_direction(
    m: Manifests, data: st.DataObject
) -> None:
    engine = PolicyEngine.from_manifests(_spread(m, data))
    rulesets = {n: render_node(engine, n, RenderOptions(log_group=1)) for n in NODES}
    attributors = {n: Attributor(engine, r.log_table(), node=n) for n, r in rulesets.items()}
    sims = {n: TableSim(r) for n, r in rulesets.items()}
    ends = sorted(engine.pods()) + [str(ip) for ip in EXTERNAL]
    for src in ends:
        for dst in ends:
            for port, proto in PROBE_PORTS:
                _check(engine, sims, attributors, src, dst, port, proto)


def _check(
    engine: PolicyEngine, sims: dict[str, TableSim], attributors: dict[str, Attributor],
    src: str, dst: str, port: int, proto: Protocol,
) -> None:
    conn = engine.connection(src, dst, port, proto)
    s, d = conn.source, conn.destination
    if src == dst or s.ip is None or d.ip is None or s.ip.version != d.ip.version:
        return
    own = {e.node.name for e in (s, d) if e.node is not None}
    hops = [n for n in dict.fromkeys(e.pod.node_name for e in (s, d) if e.pod and e.pod.node_name)
            if n not in own]
    verdict = engine.judge(conn)
    for node in hops:
        packet = Packet(s.ip, d.ip, PROTO_NAME[proto], port)
        accepted = sims[node].forward(packet)
        for prefix in packet.logged:
            record = attributors[node].on_log(_message(prefix, str(s.ip), str(d.ip), port, proto))
            assert record is not None
            decision = verdict.egress if record.direction is Direction.EGRESS else verdict.ingress
            assert same_decision(record.decision, decision.deciding), (record, verdict)
            assert record.summary == _explained(verdict, record.direction)
            assert (record.src.describe(), record.dst.describe()) == (
                verdict.source, verdict.destination)
            assert record.src.port == 43210 and record.dst.port == port
            assert record.node == node and record.source is Source.NFLOG
            assert attributors[node].disagreements == 0
        if not accepted:
            return


def _explained(verdict: Verdict, direction: Direction) -> str:
    """The last step line `kanal explain` prints under `direction`'s heading."""
    lines = explain_lines(verdict)
    start = next(i for i, line in enumerate(lines)
                 if line.startswith(f"{direction.value.lower()} at "))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block[-1]


# -- the test cluster, by example ------------------------------------------------------------


def _attributor(node: str = "node-0") -> Attributor:
    engine = cluster.engine()
    table = render_node(engine, node, RenderOptions(log_group=7)).log_table()
    return Attributor(engine, table, node=node)


def _prefix(attributor: Attributor, outcome: Outcome) -> str:
    return next(i for i, e in attributor.log_table.items() if e.outcome is outcome)


def test_a_denied_attempt_names_the_pods_and_the_isolating_policies() -> None:
    attributor = _attributor()
    event = _message(_prefix(attributor, Outcome.DEFAULT_DENY), "10.244.2.3", "10.244.1.2", 81,
                     Protocol.TCP)
    record = attributor.on_log(event)
    assert record is not None
    assert record.to_json() == {
        "time": "1970-01-01T00:16:40.000000Z", "node": "node-0", "verdict": "denied",
        "direction": "ingress", "protocol": "TCP",
        "src": {"namespace": "z", "pod": "other", "labels": {"app": "other"},
                "ip": "10.244.2.3", "port": 43210},
        "dst": {"namespace": "x", "pod": "web", "labels": {"app": "web"},
                "ip": "10.244.1.2", "port": 81},
        "default_deny": {"tier": "NetworkPolicy", "isolated_by": [
            {"namespace": "x", "name": "allow-clients"},
            {"namespace": "x", "name": "default-deny"}]},
        "summary": "x/web is isolated for ingress by policies `x/allow-clients`, "
                   "`x/default-deny`; no rule admits z/other on 81/TCP",
        "source": "nflog", "log_id": event.prefix,
        "src_group": "z (z/egress-only)",
        "dst_group": "x (x/allow-clients, x/default-deny)",
    }


def test_an_admitted_connection_names_the_rule_in_explains_words() -> None:
    attributor = _attributor()
    record = attributor.on_log(_message(_prefix(attributor, Outcome.ALLOW), "10.244.1.3",
                                        "10.244.1.2", 80, Protocol.TCP))
    assert record is not None
    assert record.to_json()["policy"] == {
        "tier": "NetworkPolicy", "namespace": "x", "name": "allow-clients", "rule": 0,
        "rule_name": "", "action": "Allow"}
    assert record.summary == ("[NetworkPolicy x/allow-clients] rule #0 allows from pods in "
                              "namespaces kubernetes.io/metadata.name=y on http/TCP")
    assert record.verdict.value == "allowed" and record.src_group == "y"


def test_an_unknown_log_id_is_reported_and_foreign_prefixes_are_ignored() -> None:
    attributor = _attributor()
    with pytest.raises(UnknownLogIdError, match="k:000000000000"):
        attributor.on_log(_message("k:000000000000", "10.244.1.3", "10.244.1.2", 80,
                                   Protocol.TCP))
    assert attributor.on_log(_message("IN=eth0 ", "10.244.1.3", "10.244.1.2", 80,
                                      Protocol.TCP)) is None


def test_a_kernel_rule_the_manifests_no_longer_have_is_recorded_as_the_kernel_ran_it() -> None:
    stale = _attributor()
    docs = [d for d in cluster.documents() if d["metadata"]["name"] != "allow-clients"]
    attributor = Attributor(cluster.engine(docs), stale.log_table, node="node-0")
    record = attributor.on_log(_message(_prefix(stale, Outcome.ALLOW), "10.244.1.3",
                                        "10.244.1.2", 80, Protocol.TCP))
    assert record is not None and record.verdict.value == "allowed"
    assert record.decision.policy == "x/allow-clients"
    assert "the table in the kernel and the collector's manifests differ" in record.summary
    assert attributor.disagreements == 1


def test_groups_of_nodes_and_external_addresses() -> None:
    attributor = _attributor()
    node = attributor.engine.endpoint(ipaddress.ip_address("10.250.0.1"))
    assert attributor.group(node) == "world"
    assert attributor.group(node, "ipBlock 10.250.0.0/16") == "ipBlock 10.250.0.0/16"


def _ct(**fields: object):  # type: ignore[no-untyped-def]
    [msg] = split_messages(ct_event(**fields))  # type: ignore[arg-type]
    return parse_event(msg, received=2000.0)


def test_a_connection_no_log_rule_judged_is_recorded_for_its_local_unlogged_directions() -> None:
    attributor = _attributor()
    new = _ct(destroy=False, src="10.244.1.3", dst="10.244.1.2", protocol=6, sport=5, dport=80)
    records = attributor.on_unlogged(new, logged=frozenset({Direction.INGRESS}))
    assert [(r.direction, r.decision.describe(), r.source) for r in records] == [
        (Direction.EGRESS, "not isolated", Source.CONNTRACK)]
    assert records[0].summary == "not isolated for egress: allowed"
    assert records[0].to_json()["not_isolated"] is True
    remote = _ct(destroy=False, src="10.244.2.2", dst="10.244.2.3", protocol=6, sport=5,
                 dport=80)
    assert attributor.on_unlogged(remote) == []  # neither end runs on node-0


def test_completion_counts_both_directions_up_to_the_last_packet() -> None:
    destroy = _ct(destroy=True, src="10.244.1.3", dst="10.244.1.2", protocol=6, sport=5,
                  dport=80, orig=(5, 400), reply=(4, 600), start_ns=100_000_000_000,
                  stop_ns=221_500_000_000, tcp_state=7)
    done = completion(destroy, started=99.0, timeouts={"tcp_timeout_time_wait": 120.0})
    assert (done.bytes, done.packets, done.duration, done.end) == (1000, 9, 1.5, 101.5)
    no_stamps = replace(destroy, start=None, stop=None)
    done = completion(no_stamps, started=1990.0, timeouts={})
    assert (done.duration, done.end) == (10.0, 2000.0)


def test_records_without_ports_are_attributed_from_the_log_table_alone() -> None:
    attributor = _attributor()
    prefix = _prefix(attributor, Outcome.DEFAULT_DENY)
    [msg] = split_messages(nflog_packet(prefix, ipv4("10.244.1.3", "10.244.1.2", 1, b"\x08")))
    event = parse_packet(msg, received=0.0)
    assert event is not None and event.packet == FiveTuple(
        ipaddress.ip_address("10.244.1.3"), ipaddress.ip_address("10.244.1.2"), 1)
    record = attributor.on_log(event)
    assert record is not None and record.protocol == "ICMP"
    assert record.summary == "default deny (isolated by x/allow-clients, x/default-deny)"
