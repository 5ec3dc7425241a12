"""Builders for small clusters in render tests: model objects with defaults, tweaked by keyword."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import replace

from kanal.engine import PolicyEngine
from kanal.model.objects import (
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    ContainerPort,
    Direction,
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


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(Labels(labels))


def pod(
    namespace: str, name: str, ip: str, *, node: str = "n1", ports: Sequence[ContainerPort] = (),
    **labels: str,
) -> Pod:
    return Pod(namespace, name, Labels(labels), tuple(ports), node,
               (ipaddress.ip_address(ip),) if ip else ())


def namespace(name: str, **labels: str) -> Namespace:
    return Namespace(name, Labels({NS_NAME: name, **labels}))


def allow_from(
    namespace: str, name: str, *, subject: LabelSelector, peers: Sequence[PolicyPeer] = (),
    ports: Sequence[PolicyPort] = (),
) -> NetworkPolicy:
    """An ingress NetworkPolicy with one rule (no peers: everyone; no ports: every port)."""
    return NetworkPolicy(namespace, name, subject, frozenset({Direction.INGRESS}),
                         ingress=(PolicyRule(tuple(peers), tuple(ports)),))


def deny_all(namespace: str, name: str, *directions: Direction) -> NetworkPolicy:
    return NetworkPolicy(namespace, name, LabelSelector(), frozenset(directions))


def pods_in(namespace: str) -> PolicyPeer:
    return PolicyPeer(namespace_selector=sel(**{NS_NAME: namespace}))


def tcp(port: int | str, end: int | None = None) -> PolicyPort:
    return PolicyPort(Protocol.TCP, port, end)


def admin_rule(
    action: AdminAction, *, peer_namespace: str, name: str = "",
    ports: Sequence[AdminPort] | None = None,
) -> AdminRule:
    peer = AdminPeer(namespace_selector=sel(**{NS_NAME: peer_namespace}))
    return AdminRule(name or action.value.lower(), action, (peer,),
                     None if ports is None else tuple(ports))


def anp(
    name: str, priority: int | None, *, subject_namespace: str,
    ingress: Sequence[AdminRule] = (), egress: Sequence[AdminRule] = (),
) -> AdminNetworkPolicy:
    """An ANP (or with priority None the BANP, which must be named `default`)."""
    return AdminNetworkPolicy(
        name, AdminSubject(sel(**{NS_NAME: subject_namespace})), priority,
        tuple(ingress), tuple(egress),
    )


Tweak = Callable[[Manifests], Manifests]


def cluster(*objects: object, tweaks: Sequence[Tweak] = ()) -> Manifests:
    """Manifests from a flat list of model objects (a BANP goes to `baseline_policy`)."""
    m = Manifests(
        namespaces=tuple(o for o in objects if isinstance(o, Namespace)),
        pods=tuple(o for o in objects if isinstance(o, Pod)),
        policies=tuple(o for o in objects if isinstance(o, NetworkPolicy)),
        admin_policies=tuple(
            o for o in objects if isinstance(o, AdminNetworkPolicy) and not o.is_baseline
        ),
        baseline_policy=next(
            (o for o in objects if isinstance(o, AdminNetworkPolicy) and o.is_baseline), None
        ),
    )
    for tweak in tweaks:
        m = tweak(m)
    return m


def engine_of(m: Manifests) -> PolicyEngine:
    return PolicyEngine.from_manifests(m)


def on_node(node: str, *names: str) -> Tweak:
    """Move the named pods (`ns/name`) to `node`."""
    def tweak(m: Manifests) -> Manifests:
        pods = tuple(replace(p, node_name=node) if p.key in names else p for p in m.pods)
        return replace(m, pods=pods)
    return tweak
