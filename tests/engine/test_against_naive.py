"""The optimized engine agrees with the naive evaluator on random clusters, for every pair of
endpoints (pods and outside addresses) and every probe port, through all three tiers."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from kanal.engine import PolicyEngine
from kanal.engine.matrix import compute_matrix
from kanal.model.objects import Manifests

from .naive import End, Naive
from .strategies import EXTERNAL, PROBE_PORTS, clusters

CASES = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ends(m: Manifests, naive: Naive) -> list[tuple[str, End]]:
    ends: list[tuple[str, End]] = [(p.key, End(p, None)) for p in m.pods]
    node_by_ip = {ip: n for n in m.nodes for ip in n.ips}
    pod_ips = {ip for p in m.pods for ip in p.ips}
    ends += [(str(ip), End(None, ip, node_by_ip.get(ip))) for ip in EXTERNAL if ip not in pod_ips]
    return ends


def _pair(src: End, dst: End) -> tuple[End, End]:
    """Give both ends the addresses a packet would carry (IPv4 preferred), as the engine does."""
    s_ips = src.pod.ips if src.pod else (src.ip,)
    d_ips = dst.pod.ips if dst.pod else (dst.ip,)
    for v in (4, 6):
        s = next((ip for ip in s_ips if ip and ip.version == v), None)
        d = next((ip for ip in d_ips if ip and ip.version == v), None)
        if s and d:
            return End(src.pod, s, src.node), End(dst.pod, d, dst.node)
    s0 = sorted((ip for ip in s_ips if ip), key=lambda ip: ip.version)
    d0 = sorted((ip for ip in d_ips if ip), key=lambda ip: ip.version)
    return End(src.pod, s0[0] if s0 else None, src.node), End(
        dst.pod, d0[0] if d0 else None, dst.node
    )


@CASES
@given(clusters())
def test_engine_verdicts_equal_the_naive_evaluator(m: Manifests) -> None:
    engine = PolicyEngine.from_manifests(m)
    naive = Naive(m)
    ends = _ends(m, naive)
    for s_name, s in ends:
        for d_name, d in ends:
            for port, proto in PROBE_PORTS:
                expected = naive.allowed(*_pair(s, d), port, proto)
                verdict = engine.explain(s_name, d_name, port, proto)
                assert verdict.allowed == expected, (s_name, d_name, port, proto, verdict)
                fast = engine.allowed(engine.connection(s_name, d_name, port, proto))
                assert fast == expected, ("allowed()", s_name, d_name, port, proto)


@CASES
@given(clusters())
def test_matrix_equals_explain_for_every_pair_and_probe(m: Manifests) -> None:
    engine = PolicyEngine.from_manifests(m)
    keys = sorted(engine.pods())
    for port, proto in PROBE_PORTS:
        matrix = compute_matrix(engine, port=port, protocol=proto)
        assert matrix.pods == keys
        for i, src in enumerate(keys):
            for j, dst in enumerate(keys):
                expected = engine.explain(src, dst, port, proto).allowed
                assert bool(matrix.allowed[i, j]) == expected, (src, dst, port, proto)
