"""Hypothesis strategies: small random clusters whose labels, ports and addresses collide often, so
that selectors, named ports and ipBlocks actually match and miss."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    ContainerPort,
    Direction,
    IPAddress,
    IPBlock,
    Labels,
    LabelSelector,
    Manifests,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
    Requirement,
)

NAMESPACES = ["x", "y", "z"]
POD_LABELS = {"app": ["a", "b", "c"], "tier": ["fe", "be"]}
NS_LABELS = {"team": ["red", "blue"], "env": ["prod", "dev"]}
PORTS = [
    ContainerPort(80, Protocol.TCP, "http"),
    ContainerPort(81, Protocol.TCP, "web"),
    ContainerPort(81, Protocol.UDP, "http"),
    ContainerPort(82, Protocol.UDP, "dns"),
    ContainerPort(82, Protocol.SCTP, "web"),
]
V4 = [ipaddress.ip_address(f"10.0.0.{i}") for i in range(1, 16)]
V6 = [ipaddress.ip_address(f"fd00::{i:x}") for i in range(1, 16)]
EXTERNAL = [ipaddress.ip_address("10.0.1.7"), ipaddress.ip_address("192.168.0.1")]
NODE_IP = ipaddress.ip_address("192.168.0.1")
PROBE_PORTS = [
    (80, Protocol.TCP),
    (81, Protocol.TCP),
    (81, Protocol.UDP),
    (82, Protocol.UDP),
    (82, Protocol.SCTP),
]


def labels(universe: dict[str, list[str]]) -> st.SearchStrategy[Labels]:
    pairs = st.dictionaries(st.sampled_from(sorted(universe)), st.just(""), max_size=len(universe))
    return pairs.flatmap(
        lambda keys: st.fixed_dictionaries({k: st.sampled_from(universe[k]) for k in keys})
    ).map(Labels)


def requirement(universe: dict[str, list[str]]) -> st.SearchStrategy[Requirement]:
    key = st.sampled_from(sorted(universe))

    def build(k: str) -> st.SearchStrategy[Requirement]:
        values = st.frozensets(st.sampled_from(universe[k]), min_size=1)
        return st.one_of(
            st.builds(
                Requirement, st.just(k), st.sampled_from([Operator.IN, Operator.NOT_IN]), values
            ),
            st.builds(
                Requirement,
                st.just(k),
                st.sampled_from([Operator.EXISTS, Operator.DOES_NOT_EXIST]),
            ),
        )

    return key.flatmap(build)


def selector(universe: dict[str, list[str]]) -> st.SearchStrategy[LabelSelector]:
    return st.builds(
        LabelSelector,
        match_labels=labels(universe),
        match_expressions=st.lists(requirement(universe), max_size=2).map(tuple),
    )


ns_selector_with_name = selector(NS_LABELS | {NAMESPACE_NAME_LABEL: NAMESPACES})


@st.composite
def pods(draw: st.DrawFn) -> list[Pod]:
    count = draw(st.integers(1, 7))
    v4 = draw(st.permutations(V4))
    v6 = draw(st.permutations(V6))
    found = []
    for i in range(count):
        family = draw(st.sampled_from(["4", "6", "46", "none"]))
        ips: tuple[IPAddress, ...] = ()
        if "4" in family:
            ips += (v4[i],)
        if "6" in family:
            ips += (v6[i],)
        found.append(
            Pod(
                namespace=draw(st.sampled_from(NAMESPACES)),
                name=f"p{i}",
                labels=draw(labels(POD_LABELS)),
                ports=tuple(draw(st.lists(st.sampled_from(PORTS), max_size=3, unique=True))),
                node_name=draw(st.sampled_from([None, "n1", "n2"])),
                ips=ips,
            )
        )
    return found


def cidr() -> st.SearchStrategy[IPBlock]:
    def v4block(prefix: int) -> st.SearchStrategy[IPBlock]:
        net = ipaddress.ip_network(f"10.0.0.0/{prefix}")
        subnets = list(net.subnets(new_prefix=min(prefix + 2, 32))) if prefix < 32 else []
        return st.builds(
            IPBlock,
            st.just(net),
            st.lists(st.sampled_from(subnets), max_size=2, unique=True).map(tuple)
            if subnets
            else st.just(()),
        )

    v6 = st.builds(IPBlock, st.just(ipaddress.ip_network("fd00::/124")))
    return st.one_of(st.sampled_from([28, 29, 30, 16]).flatmap(v4block), v6)


peer = st.one_of(
    st.builds(PolicyPeer, pod_selector=selector(POD_LABELS)),
    st.builds(PolicyPeer, namespace_selector=ns_selector_with_name),
    st.builds(
        PolicyPeer, pod_selector=selector(POD_LABELS), namespace_selector=ns_selector_with_name
    ),
    st.builds(PolicyPeer, ip_block=cidr()),
)

policy_port = st.one_of(
    st.builds(PolicyPort, st.sampled_from(list(Protocol))),
    st.builds(PolicyPort, st.sampled_from(list(Protocol)), st.sampled_from([80, 81, 82])),
    st.builds(PolicyPort, st.sampled_from(list(Protocol)), st.just(80), st.sampled_from([81, 82])),
    st.builds(PolicyPort, st.sampled_from(list(Protocol)), st.sampled_from(["http", "web", "dns"])),
)

rule = st.builds(
    PolicyRule,
    peers=st.lists(peer, max_size=2).map(tuple),
    ports=st.lists(policy_port, max_size=2).map(tuple),
)


@st.composite
def network_policy(draw: st.DrawFn, index: int) -> NetworkPolicy:
    types = draw(st.sampled_from([{Direction.INGRESS}, {Direction.EGRESS}, set(Direction)]))
    return NetworkPolicy(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=f"np{index}",
        pod_selector=draw(selector(POD_LABELS)),
        policy_types=frozenset(types),
        ingress=tuple(draw(st.lists(rule, max_size=2))) if Direction.INGRESS in types else (),
        egress=tuple(draw(st.lists(rule, max_size=2))) if Direction.EGRESS in types else (),
    )


admin_peer_ingress = st.one_of(
    st.builds(AdminPeer, namespace_selector=ns_selector_with_name),
    st.builds(
        AdminPeer, namespace_selector=ns_selector_with_name, pod_selector=selector(POD_LABELS)
    ),
)
admin_peer_egress = st.one_of(
    admin_peer_ingress,
    st.builds(AdminPeer, node_selector=st.just(LabelSelector(Labels({"role": "node"})))),
    st.builds(
        AdminPeer,
        networks=st.lists(
            st.sampled_from(
                [ipaddress.ip_network(n) for n in ("10.0.0.0/29", "10.0.1.0/24", "fd00::/126")]
            ),
            min_size=1,
            max_size=2,
            unique=True,
        ).map(tuple),
    ),
)
admin_port = st.one_of(
    st.builds(AdminPort, st.sampled_from(list(Protocol)), st.sampled_from([80, 81, 82])),
    st.builds(AdminPort, st.sampled_from(list(Protocol)), st.just(80), st.sampled_from([81, 82])),
    st.builds(AdminPort, st.none(), st.sampled_from(["http", "web", "dns"])),
)


def admin_rules(
    actions: list[AdminAction], peers: st.SearchStrategy[AdminPeer]
) -> st.SearchStrategy[tuple[AdminRule, ...]]:
    one = st.builds(
        AdminRule,
        name=st.sampled_from(["r1", "r2", ""]),
        action=st.sampled_from(actions),
        peers=st.lists(peers, min_size=1, max_size=2).map(tuple),
        ports=st.one_of(st.none(), st.lists(admin_port, min_size=1, max_size=2).map(tuple)),
    )
    return st.lists(one, max_size=3).map(tuple)


subject = st.one_of(
    st.builds(AdminSubject, namespace_selector=ns_selector_with_name),
    st.builds(
        AdminSubject, namespace_selector=ns_selector_with_name, pod_selector=selector(POD_LABELS)
    ),
)


@st.composite
def admin_policy(draw: st.DrawFn, index: int, *, baseline: bool = False) -> AdminNetworkPolicy:
    actions = [AdminAction.ALLOW, AdminAction.DENY] + ([] if baseline else [AdminAction.PASS])
    return AdminNetworkPolicy(
        name="default" if baseline else f"anp{index}",
        subject=draw(subject),
        priority=None if baseline else draw(st.integers(0, 3)),
        ingress=draw(admin_rules(actions, admin_peer_ingress)),
        egress=draw(admin_rules(actions, admin_peer_egress)),
    )


@st.composite
def clusters(draw: st.DrawFn, *, admin: bool = True) -> Manifests:
    declared = draw(st.lists(st.sampled_from(NAMESPACES), unique=True))
    namespaces = tuple(
        Namespace(n, draw(labels(NS_LABELS)).with_changes({NAMESPACE_NAME_LABEL: n}))
        for n in sorted(declared)
    )
    n_policies = draw(st.integers(0, 4))
    n_admin = draw(st.integers(0, 3)) if admin else 0
    return Manifests(
        namespaces=namespaces,
        pods=tuple(draw(pods())),
        policies=tuple(draw(network_policy(i)) for i in range(n_policies)),
        admin_policies=tuple(draw(admin_policy(i)) for i in range(n_admin)),
        baseline_policy=draw(st.one_of(st.none(), admin_policy(0, baseline=True)))
        if admin
        else None,
        nodes=(Node("n1", Labels({"role": "node"}), (NODE_IP,)),),
    )
