"""A synthetic cluster of any size for scaling tests and the render benchmark.

Pods fall into `groups` label groups (namespace + app), round-robin, spread over `nodes` nodes;
each policy selects one group, admits another group from a team of namespaces on a numeric and
a named port, and every other policy also limits egress to an ipBlock and to a named UDP port.
Two ANPs and a BANP add the admin tiers. Growing `pods` with the same `groups` and `policies`
changes only memberships, which is what the scaling test relies on.
"""

from __future__ import annotations

import ipaddress

from kanal.model.objects import (
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    ContainerPort,
    Direction,
    IPBlock,
    Labels,
    LabelSelector,
    Manifests,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
)

NS_NAME = "kubernetes.io/metadata.name"
NAMESPACES = 10
TEAMS = 3
PORTS = (
    ContainerPort(80, Protocol.TCP, "http"),
    ContainerPort(9090, Protocol.UDP, "metrics"),
)


def _sel(**labels: str) -> LabelSelector:
    return LabelSelector(Labels(labels))


def _namespaces() -> tuple[Namespace, ...]:
    return tuple(
        Namespace(f"ns{i}", Labels({NS_NAME: f"ns{i}", "team": f"t{i % TEAMS}"}))
        for i in range(NAMESPACES)
    )


def _pod(i: int, groups: int, nodes: int) -> Pod:
    group = i % groups
    return Pod(
        namespace=f"ns{group % NAMESPACES}",
        name=f"p{i}",
        labels=Labels({"app": f"a{group}"}),
        ports=PORTS,
        node_name=f"n{(i // groups) % nodes + 1}",
        ips=(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + i + 1),),
    )


def _policy(i: int, groups: int) -> NetworkPolicy:
    peer = PolicyPeer(
        pod_selector=_sel(app=f"a{(i * 7 + 1) % groups}"),
        namespace_selector=_sel(team=f"t{i % TEAMS}"),
    )
    ports = (PolicyPort(Protocol.TCP, 80 + i % 5), PolicyPort(Protocol.TCP, "http"))
    egress: tuple[PolicyRule, ...] = ()
    if i % 2:
        block = IPBlock(
            ipaddress.IPv4Network(f"172.16.{i % 256}.0/24"),
            (ipaddress.IPv4Network(f"172.16.{i % 256}.128/25"),),
        )
        egress = (
            PolicyRule((PolicyPeer(ip_block=block),), (PolicyPort(Protocol.TCP, 443),)),
            PolicyRule(
                (PolicyPeer(namespace_selector=_sel(team=f"t{(i + 1) % TEAMS}")),),
                (PolicyPort(Protocol.UDP, "metrics"),),
            ),
        )
    return NetworkPolicy(
        namespace=f"ns{i % NAMESPACES}",
        name=f"np{i}",
        pod_selector=_sel(app=f"a{i % groups}"),
        policy_types=frozenset({Direction.INGRESS, Direction.EGRESS} if i % 2 else
                               {Direction.INGRESS}),
        ingress=(PolicyRule((peer,), ports),),
        egress=egress,
    )


def _admin() -> tuple[tuple[AdminNetworkPolicy, ...], AdminNetworkPolicy]:
    team2 = AdminPeer(namespace_selector=_sel(team="t2"))
    guard = AdminNetworkPolicy(
        "guard", AdminSubject(_sel(team="t0")), 10,
        ingress=(AdminRule("deny-t2-ssh", AdminAction.DENY, (team2,),
                           (AdminPort(Protocol.TCP, 22),)),),
        egress=(AdminRule("deny-metadata", AdminAction.DENY,
                          (AdminPeer(networks=(ipaddress.IPv4Network("169.254.169.254/32"),)),)),),
    )
    delegate = AdminNetworkPolicy(
        "delegate", AdminSubject(LabelSelector()), 20,
        ingress=(AdminRule("pass-same-team", AdminAction.PASS, (team2,)),),
    )
    baseline = AdminNetworkPolicy(
        "default", AdminSubject(LabelSelector()), None,
        ingress=(AdminRule("deny-t1", AdminAction.DENY,
                           (AdminPeer(namespace_selector=_sel(team="t1")),)),),
    )
    return (guard, delegate), baseline


def synthetic(*, pods: int, policies: int, groups: int = 10, nodes: int = 1) -> Manifests:
    admin, baseline = _admin()
    return Manifests(
        namespaces=_namespaces(),
        pods=tuple(_pod(i, groups, nodes) for i in range(pods)),
        policies=tuple(_policy(i, groups) for i in range(policies)),
        admin_policies=admin,
        baseline_policy=baseline,
    )
