"""The benchmark's cluster generator makes valid, deterministic clusters, and the benchmark's
measuring functions run end to end on a tiny one (no time is asserted: this is not a timed test)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from bench_engine import markdown_table, measure, parse_size  # noqa: E402
from generate import ClusterSpec, generate  # noqa: E402
from kanal.engine import PolicyEngine  # noqa: E402
from kanal.model.objects import (  # noqa: E402
    NAMESPACE_NAME_LABEL,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    IPBlock,
    LabelSelector,
    Manifests,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)
from kanal.model.parse import parse_documents  # noqa: E402

SMALL = ClusterSpec(pods=600, policies=80, admin_policies=20, baseline=True, seed=7)

# -- manifests as the API would serve them (for the round trip through the parser) -------------


def _selector(s: LabelSelector) -> dict[str, Any]:
    return {
        "matchLabels": dict(s.match_labels),
        "matchExpressions": [
            {"key": r.key, "operator": r.operator.value, "values": sorted(r.values)}
            for r in s.match_expressions
        ],
    }


def _np_peer(p: PolicyPeer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.pod_selector is not None:
        out["podSelector"] = _selector(p.pod_selector)
    if p.namespace_selector is not None:
        out["namespaceSelector"] = _selector(p.namespace_selector)
    if p.ip_block is not None:
        out["ipBlock"] = _ip_block(p.ip_block)
    return out


def _ip_block(b: IPBlock) -> dict[str, Any]:
    return {"cidr": str(b.cidr), "except": [str(e) for e in b.excepts]}


def _np_port(p: PolicyPort) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": p.protocol.value, "port": p.port}
    if p.end_port is not None:
        out["endPort"] = p.end_port
    return out


def _np_rules(rules: tuple[PolicyRule, ...], peers_key: str) -> list[dict[str, Any]]:
    return [
        {peers_key: [_np_peer(p) for p in r.peers], "ports": [_np_port(p) for p in r.ports]}
        for r in rules
    ]


def _network_policy(p: NetworkPolicy) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"namespace": p.namespace, "name": p.name},
        "spec": {
            "podSelector": _selector(p.pod_selector),
            "policyTypes": sorted(d.value for d in p.policy_types),
            "ingress": _np_rules(p.ingress, "from"),
            "egress": _np_rules(p.egress, "to"),
        },
    }


def _admin_peer(p: AdminPeer) -> dict[str, Any]:
    if p.networks:
        return {"networks": [str(n) for n in p.networks]}
    assert p.namespace_selector is not None
    if p.pod_selector is None:
        return {"namespaces": _selector(p.namespace_selector)}
    return {"pods": {"namespaceSelector": _selector(p.namespace_selector),
                     "podSelector": _selector(p.pod_selector)}}


def _admin_port(p: AdminPort) -> dict[str, Any]:
    if isinstance(p.port, str):
        return {"namedPort": p.port}
    assert p.protocol is not None
    if p.end_port is None:
        return {"portNumber": {"protocol": p.protocol.value, "port": p.port}}
    return {"portRange": {"protocol": p.protocol.value, "start": p.port, "end": p.end_port}}


def _admin_rules(rules: tuple[AdminRule, ...], peers_key: str) -> list[dict[str, Any]]:
    out = []
    for r in rules:
        rule: dict[str, Any] = {"name": r.name, "action": r.action.value,
                                peers_key: [_admin_peer(p) for p in r.peers]}
        if r.ports is not None:
            rule["ports"] = [_admin_port(p) for p in r.ports]
        out.append(rule)
    return out


def _admin_policy(p: AdminNetworkPolicy) -> dict[str, Any]:
    subject = p.subject
    spec: dict[str, Any] = {
        "subject": {"namespaces": _selector(subject.namespace_selector)}
        if subject.pod_selector is None
        else {"pods": {"namespaceSelector": _selector(subject.namespace_selector),
                       "podSelector": _selector(subject.pod_selector)}},
        "ingress": _admin_rules(p.ingress, "from"),
        "egress": _admin_rules(p.egress, "to"),
    }
    if p.priority is not None:
        spec["priority"] = p.priority
    kind = "BaselineAdminNetworkPolicy" if p.is_baseline else "AdminNetworkPolicy"
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": kind,
            "metadata": {"name": p.name}, "spec": spec}


def documents(m: Manifests) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns.name, "labels": dict(ns.labels)}}
        for ns in m.namespaces
    ]
    docs += [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name, "labels": dict(n.labels)},
         "status": {"addresses": [{"type": "InternalIP", "address": str(ip)} for ip in n.ips]}}
        for n in m.nodes
    ]
    docs += [
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"namespace": p.namespace, "name": p.name, "labels": dict(p.labels)},
         "spec": {"nodeName": p.node_name, "containers": [{"name": "main", "ports": [
             {"name": c.name, "containerPort": c.port, "protocol": c.protocol.value}
             for c in p.ports]}]},
         "status": {"podIPs": [{"ip": str(ip)} for ip in p.ips]}}
        for p in m.pods
    ]
    docs += [_network_policy(p) for p in m.policies]
    admin = [*m.admin_policies, *([m.baseline_policy] if m.baseline_policy else [])]
    return docs + [_admin_policy(p) for p in admin]


def digest(m: Manifests) -> str:
    return hashlib.sha256(json.dumps(documents(m), sort_keys=True).encode()).hexdigest()


# -- the generator -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Manifests:
    return generate(SMALL)


def test_the_same_seed_gives_the_same_cluster_in_another_process(small: Manifests) -> None:
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); "
            "from generate import ClusterSpec, generate; "
            "from test_generate import digest; "
            f"print(digest(generate(ClusterSpec({SMALL.pods}, {SMALL.policies}, "
            f"admin_policies={SMALL.admin_policies}, baseline=True, seed={SMALL.seed}))))")
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == digest(small)
    assert generate(SMALL) == small


def test_another_seed_gives_another_cluster(small: Manifests) -> None:
    other = generate(ClusterSpec(SMALL.pods, SMALL.policies, admin_policies=20, seed=8))
    assert digest(other) != digest(small)


def test_the_cluster_has_the_requested_size(small: Manifests) -> None:
    assert len(small.pods) == SMALL.pods
    assert len(small.policies) == SMALL.policies
    assert len(small.admin_policies) == SMALL.admin_policies
    assert small.baseline_policy is not None
    assert len(small.namespaces) == SMALL.app_namespaces + 3
    assert len({p.priority for p in small.admin_policies}) == SMALL.admin_policies


def test_the_parser_accepts_every_object_and_reads_back_the_same(small: Manifests) -> None:
    parsed = parse_documents((f"doc {i}", d) for i, d in enumerate(documents(small)))
    assert sorted(parsed.namespaces, key=lambda n: n.name) == sorted(
        small.namespaces, key=lambda n: n.name)
    assert sorted(parsed.pods, key=lambda p: p.key) == sorted(small.pods, key=lambda p: p.key)
    assert sorted(parsed.policies, key=lambda p: p.key) == sorted(
        small.policies, key=lambda p: p.key)
    assert parsed.admin_policies == small.admin_policies
    assert parsed.baseline_policy == small.baseline_policy
    assert parsed.nodes == small.nodes


def test_names_and_addresses_are_unique_and_in_the_pod_ranges(small: Manifests) -> None:
    ips = [ip for p in small.pods for ip in p.ips]
    assert len(ips) == len(set(ips))
    assert len({p.key for p in small.pods}) == len(small.pods)
    assert len({p.key for p in small.policies}) == len(small.policies)
    v4, v6 = ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/64")
    assert all(p.ips[0] in v4 for p in small.pods)
    assert all(ip in v6 for p in small.pods for ip in p.ips[1:])
    nodes = {n.name for n in small.nodes}
    assert {p.node_name for p in small.pods} <= nodes


def _named_namespaces(s: LabelSelector | None) -> set[str]:
    if s is None:
        return set()
    named = {v for k, v in s.match_labels.items() if k == NAMESPACE_NAME_LABEL}
    for r in s.match_expressions:
        if r.key == NAMESPACE_NAME_LABEL and r.operator is Operator.IN:
            named |= r.values
    return named


def test_policies_refer_to_namespaces_that_exist(small: Manifests) -> None:
    names = {ns.name for ns in small.namespaces}
    assert {p.namespace for p in small.policies} <= names
    referenced = {
        n
        for p in small.policies
        for r in (*p.ingress, *p.egress)
        for peer in r.peers
        for n in _named_namespaces(peer.namespace_selector)
    }
    assert referenced <= names


def test_every_pod_has_a_group_and_replicas_share_one(small: Manifests) -> None:
    engine = PolicyEngine.from_manifests(small)
    groups = {engine.groups().group_of(p.key) for p in small.pods}
    assert groups == set(engine.groups().groups())
    assert len(groups) < len(small.pods) / 2


def test_the_policies_have_every_shape_the_benchmark_promises(small: Manifests) -> None:
    rules = [r for p in small.policies for r in (*p.ingress, *p.egress)]
    ports = [port for r in rules for port in r.ports]
    peers = [peer for r in rules for peer in r.peers]
    assert any(isinstance(port.port, str) for port in ports)
    assert any(port.end_port is not None for port in ports)
    assert any(peer.ip_block is not None and peer.ip_block.excepts for peer in peers)
    assert any(peer.namespace_selector is not None and peer.pod_selector is not None
               for peer in peers)
    operators = {r.operator for p in small.policies for r in p.pod_selector.match_expressions}
    operators |= {r.operator for peer in peers if peer.pod_selector
                  for r in peer.pod_selector.match_expressions}
    assert {Operator.IN, Operator.NOT_IN, Operator.EXISTS} <= operators
    assert any(p.name == "default-deny-ingress" for p in small.policies)
    actions = {r.action for p in small.admin_policies for r in (*p.ingress, *p.egress)}
    assert len(actions) == 3
    assert any(peer.networks for p in small.admin_policies for r in p.egress for peer in r.peers)


# -- the benchmark script ----------------------------------------------------------------------


def test_sizes_are_read_with_k_suffixes() -> None:
    assert parse_size("10k/1k") == (10_000, 1_000)
    assert parse_size("100k/10k") == (100_000, 10_000)
    assert parse_size("500/50") == (500, 50)


def test_the_benchmark_measures_a_tiny_cluster_and_prints_a_row() -> None:
    spec = ClusterSpec(pods=200, policies=20, admin_policies=5, seed=3)
    result = measure(spec, repeat=1, verdicts=100, explains=10)
    assert (result["pods"], result["policies"], result["admin_policies"]) == (200, 20, 5)
    assert 0 < result["groups"] < 200
    assert len(result["compile_s"]["wall"]) == len(result["matrix_s"]["cpu"]) == 1
    assert 0 <= result["allowed_fraction"] <= 1
    assert result["rss_peak_mib"] > 0
    table = markdown_table([result]).splitlines()
    assert len(table) == 3
    assert table[2].startswith("| 200 | 20 | 5 |")
