"""The rendered rulesets decide every connection as the engine does, through all three tiers.

Random clusters (the engine's own strategies) are spread over two nodes and rendered per node;
a NEW packet for every pair of endpoints and probe port is run through the source node's table
and then the destination node's (once when they share a node; never on a node that sends or
receives it itself, as that traffic does not cross the forward hook), with the IR interpreter
of `nftsim`. Its fate must equal `engine.allowed`, and the NFLOG ids it met must name the engine's
deciding step for each direction that was judged.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.strategies import EXTERNAL, PROBE_PORTS, clusters
from kanal.engine import Outcome, PolicyEngine
from kanal.engine.verdict import Step
from kanal.model.objects import Direction, Manifests, Protocol
from kanal.render import LogEntry, RenderOptions, render_node

from .nftsim import Packet, TableSim

CASES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NODES = ("n1", "n2")
PROTO = {Protocol.TCP: "tcp", Protocol.UDP: "udp", Protocol.SCTP: "sctp"}


def _spread(m: Manifests, data: st.DataObject) -> Manifests:
    pods = tuple(replace(p, node_name=data.draw(st.sampled_from(NODES))) for p in m.pods)
    return replace(m, pods=pods)


def _same_decision(entry: LogEntry, step: Step) -> bool:
    return (entry.outcome, entry.tier, entry.policy, entry.rule_index, entry.isolating) == (
        step.outcome, step.tier, step.policy, step.rule_index, step.isolating
    )


@CASES
@given(clusters(), st.data())
def test_the_rendered_tables_agree_with_the_engine_on_every_connection(
    m: Manifests, data: st.DataObject
) -> None:
    m = _spread(m, data)
    engine = PolicyEngine.from_manifests(m)
    rulesets = {n: render_node(engine, n, RenderOptions(log_group=1)) for n in NODES}
    assert all(not r.problems for r in rulesets.values()), [r.problems for r in rulesets.values()]
    sims = {n: TableSim(r) for n, r in rulesets.items()}
    logs = {i: e for r in rulesets.values() for i, e in r.log_table().items()}
    ends = sorted(engine.pods()) + [str(ip) for ip in EXTERNAL]
    for src in ends:
        for dst in ends:
            for port, proto in PROBE_PORTS:
                _check_pair(engine, sims, logs, src, dst, port, proto)


def _check_pair(
    engine: PolicyEngine, sims: dict[str, TableSim], logs: dict[str, LogEntry],
    src: str, dst: str, port: int, proto: Protocol,
) -> None:
    conn = engine.connection(src, dst, port, proto)
    s, d = conn.source, conn.destination
    if src == dst or s.ip is None or d.ip is None or s.ip.version != d.ip.version:
        return
    # A node's own traffic to or from its pods is local (output / input), never forwarded.
    own = {e.node.name for e in (s, d) if e.node is not None}
    hops = [n for n in dict.fromkeys(e.pod.node_name for e in (s, d) if e.pod and e.pod.node_name)
            if n not in own]
    if not hops:
        return
    packet = Packet(s.ip, d.ip, PROTO[proto], port)
    accepted = True
    for node in hops:
        packet.mark = 0  # crossing into another netns scrubs the mark
        if not sims[node].forward(packet):
            accepted = False
            break
    verdict = engine.judge(conn)
    where = (src, dst, port, proto, hops, verdict.to_json(), packet.logged)
    assert accepted == verdict.allowed, where
    _check_logs(verdict.egress.steps[-1], verdict.ingress.steps[-1], packet, logs, where)


def _check_logs(
    egress: Step, ingress: Step, packet: Packet, logs: dict[str, LogEntry], where: object
) -> None:
    by_direction = {logs[i].direction: logs[i] for i in packet.logged}
    assert len(by_direction) == len(packet.logged), where
    for direction, step in ((Direction.EGRESS, egress), (Direction.INGRESS, ingress)):
        entry = by_direction.get(direction)
        if entry is not None:
            assert _same_decision(entry, step), (direction, entry, step, where)
        elif step.outcome not in (Outcome.NOT_ISOLATED, Outcome.NOT_A_POD):
            # a decision by a policy is always logged, unless egress already dropped the packet
            assert direction is Direction.INGRESS and not egress.outcome.allows, (step, where)
