"""Policies of every tier compiled to one form: a subject selector and ordered rules with an
action, peers and ports.

A NetworkPolicy rule is an `Allow` rule; the tier decides what "no rule matched" means. Peers are
endpoint selectors (shared, indexed), address ranges (ipBlock, networks) or node selectors. This
module is pure data and matching of a single value; the engine decides which pods a selector
matches.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kanal.engine.ipranges import RangeSet, block_ranges, networks_ranges
from kanal.engine.selectors import EndpointSelector, endpoint_selector
from kanal.model.objects import (
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    ContainerPort,
    Direction,
    LabelSelector,
    NetworkPolicy,
    Pod,
    PolicyKey,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
)


class Tier(enum.StrEnum):
    ADMIN = "AdminNetworkPolicy"
    NETWORK = "NetworkPolicy"
    BASELINE = "BaselineAdminNetworkPolicy"

    @property
    def short(self) -> str:
        return {"AdminNetworkPolicy": "ANP", "NetworkPolicy": "NetworkPolicy"}.get(self, "BANP")


Action = AdminAction


@dataclass(frozen=True, slots=True)
class CompiledPeer:
    """Exactly one of: a pod selector, address ranges, a node selector."""

    index: int
    selector: EndpointSelector | None = None
    ranges: tuple[RangeSet, ...] = ()
    node_selector: LabelSelector | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class CompiledPort:
    """`protocol` None: any protocol (an admin `namedPort`); `name` set: resolved against the
    destination pod's container ports; else `port`..`end` (both None: every port)."""

    index: int
    protocol: Protocol | None
    port: int | None = None
    end: int | None = None
    name: str | None = None

    def matches(self, port: int, protocol: Protocol, destination: Pod | None) -> bool:
        ports = destination.ports if destination is not None else None
        return self.matches_ports(port, protocol, ports)

    def matches_ports(
        self, port: int, protocol: Protocol, ports: tuple[ContainerPort, ...] | None
    ) -> bool:
        """`matches`, with the destination given by its container ports (None: not a pod)."""
        if self.protocol is not None and protocol != self.protocol:
            return False
        if self.name is not None:
            return ports is not None and any(
                c.name == self.name and c.protocol == protocol and c.port == port for c in ports
            )
        if self.port is None:
            return True
        return self.port <= port <= (self.end if self.end is not None else self.port)

    def describe(self) -> str:
        proto = self.protocol or "any"
        if self.name is not None:
            return f"{self.name}/{proto}"
        if self.port is None:
            return f"any port/{proto}"
        if self.end is not None:
            return f"{self.port}-{self.end}/{proto}"
        return f"{self.port}/{proto}"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """`peers`/`ports` None: every peer / every port."""

    index: int
    name: str
    action: Action
    peers: tuple[CompiledPeer, ...] | None
    ports: tuple[CompiledPort, ...] | None

    def label(self) -> str:
        return f"{self.name!r}" if self.name else f"#{self.index}"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    key: PolicyKey
    tier: Tier
    priority: int
    subject: EndpointSelector
    directions: frozenset[Direction]
    ingress: tuple[CompiledRule, ...]
    egress: tuple[CompiledRule, ...]

    def rules(self, direction: Direction) -> tuple[CompiledRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def selectors(self) -> set[EndpointSelector]:
        found = {self.subject}
        for rule in (*self.ingress, *self.egress):
            found.update(p.selector for p in rule.peers or () if p.selector is not None)
        return found

    def sort_key(self) -> tuple[int, str]:
        return (self.priority, self.key)


# -- NetworkPolicy -----------------------------------------------------------------------------


def _np_peer(index: int, peer: PolicyPeer, namespace: str) -> CompiledPeer:
    if peer.ip_block is not None:
        return CompiledPeer(
            index, ranges=(block_ranges(peer.ip_block),), text=f"ipBlock {peer.ip_block.describe()}"
        )
    if peer.namespace_selector is None:
        selector = endpoint_selector(namespace=namespace, pod_selector=peer.pod_selector)
        text = f"pods {_sel(peer.pod_selector)} in namespace {namespace}"
    else:
        selector = endpoint_selector(
            namespace_selector=peer.namespace_selector, pod_selector=peer.pod_selector
        )
        pods = "pods" if peer.pod_selector is None else f"pods {_sel(peer.pod_selector)}"
        text = f"{pods} in namespaces {_sel(peer.namespace_selector)}"
    return CompiledPeer(index, selector=selector, text=text)


def _sel(selector: LabelSelector | None) -> str:
    return "{}" if selector is None else selector.describe()


def _np_port(index: int, port: PolicyPort) -> CompiledPort:
    if isinstance(port.port, str):
        return CompiledPort(index, port.protocol, name=port.port)
    return CompiledPort(index, port.protocol, port.port, port.end_port)


def _np_rule(index: int, rule: PolicyRule, namespace: str) -> CompiledRule:
    return CompiledRule(
        index=index,
        name="",
        action=Action.ALLOW,
        peers=tuple(_np_peer(i, p, namespace) for i, p in enumerate(rule.peers)) or None,
        ports=tuple(_np_port(i, p) for i, p in enumerate(rule.ports)) or None,
    )


def compile_network_policy(policy: NetworkPolicy) -> CompiledPolicy:
    ns = policy.namespace
    return CompiledPolicy(
        key=policy.key,
        tier=Tier.NETWORK,
        priority=0,
        subject=endpoint_selector(namespace=ns, pod_selector=policy.pod_selector),
        directions=policy.policy_types,
        ingress=tuple(_np_rule(i, r, ns) for i, r in enumerate(policy.ingress)),
        egress=tuple(_np_rule(i, r, ns) for i, r in enumerate(policy.egress)),
    )


# -- AdminNetworkPolicy / BaselineAdminNetworkPolicy -------------------------------------------


def _admin_peer(index: int, peer: AdminPeer) -> CompiledPeer:
    if peer.networks:
        nets = ", ".join(str(n) for n in peer.networks)
        return CompiledPeer(index, ranges=networks_ranges(peer.networks), text=f"networks {nets}")
    if peer.node_selector is not None:
        return CompiledPeer(
            index, node_selector=peer.node_selector, text=f"nodes {peer.node_selector.describe()}"
        )
    selector = endpoint_selector(
        namespace_selector=peer.namespace_selector or LabelSelector(),
        pod_selector=peer.pod_selector,
    )
    ns_text = _sel(peer.namespace_selector)
    if peer.pod_selector is None:
        return CompiledPeer(index, selector=selector, text=f"namespaces {ns_text}")
    return CompiledPeer(
        index, selector=selector, text=f"pods {_sel(peer.pod_selector)} in namespaces {ns_text}"
    )


def _admin_port(index: int, port: AdminPort) -> CompiledPort:
    if isinstance(port.port, str):
        return CompiledPort(index, port.protocol, name=port.port)
    return CompiledPort(index, port.protocol, port.port, port.end_port)


def compile_admin_policy(policy: AdminNetworkPolicy) -> CompiledPolicy:
    def rules(direction: Direction) -> tuple[CompiledRule, ...]:
        return tuple(
            CompiledRule(
                index=i,
                name=r.name,
                action=r.action,
                peers=tuple(_admin_peer(j, p) for j, p in enumerate(r.peers)),
                ports=None
                if r.ports is None
                else tuple(_admin_port(j, p) for j, p in enumerate(r.ports)),
            )
            for i, r in enumerate(policy.rules(direction))
        )

    subject = policy.subject
    return CompiledPolicy(
        key=policy.key,
        tier=Tier.BASELINE if policy.is_baseline else Tier.ADMIN,
        priority=policy.priority if policy.priority is not None else 0,
        subject=endpoint_selector(
            namespace_selector=subject.namespace_selector, pod_selector=subject.pod_selector
        ),
        directions=frozenset(Direction),
        ingress=rules(Direction.INGRESS),
        egress=rules(Direction.EGRESS),
    )
