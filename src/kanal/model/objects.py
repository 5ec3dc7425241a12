"""Kubernetes objects as Kanal sees them: frozen, hashable, validated before they get here.

These types carry no behaviour beyond label matching; parsing and validation live in
`kanal.model.parse`, and every semantic decision lives in `kanal.engine`.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NewType

if TYPE_CHECKING:
    from kanal.model.alertrule import AlertRule
    from kanal.model.lab import LabSpec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PodKey = NewType("PodKey", str)
"""`namespace/name` of a pod."""

PolicyKey = NewType("PolicyKey", str)
"""`namespace/name` of a NetworkPolicy, or `name` of a cluster-scoped admin policy."""


def pod_key(namespace: str, name: str) -> PodKey:
    return PodKey(f"{namespace}/{name}")


class Protocol(enum.StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Direction(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class Labels(Mapping[str, str]):
    """An immutable, hashable label map (key order never matters)."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = dict(sorted((items or {}).items()))
        self._hash = hash(tuple(self._items.items()))

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels):
            return self._hash == other._hash and self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"Labels({self._items!r})"

    def with_changes(self, changes: Mapping[str, str | None]) -> Labels:
        """A copy with `changes` applied; a value of None removes the key."""
        merged = dict(self._items)
        for key, value in changes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return Labels(merged)


NO_LABELS = Labels()


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `matchExpressions` entry (a `matchLabels` pair is `In` with one value)."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case Operator.IN:
                return labels.get(self.key) in self.values
            case Operator.NOT_IN:
                return labels.get(self.key) not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A Kubernetes label selector; the empty selector selects everything."""

    match_labels: Labels = NO_LABELS
    match_expressions: tuple[Requirement, ...] = ()

    def requirements(self) -> tuple[Requirement, ...]:
        pairs = tuple(
            Requirement(k, Operator.IN, frozenset((v,))) for k, v in self.match_labels.items()
        )
        return pairs + self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements())

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def describe(self) -> str:
        """kubectl's selector syntax: `app=web,tier in (a,b),!legacy`; `{}` for the empty one."""
        parts = [f"{k}={v}" for k, v in self.match_labels.items()]
        for r in self.match_expressions:
            values = ",".join(sorted(r.values))
            parts.append(
                {
                    Operator.IN: f"{r.key} in ({values})",
                    Operator.NOT_IN: f"{r.key} notin ({values})",
                    Operator.EXISTS: r.key,
                    Operator.DOES_NOT_EXIST: f"!{r.key}",
                }[r.operator]
            )
        return ",".join(parts) if parts else "{}"


EVERYTHING = LabelSelector()

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Labels = NO_LABELS
    declared: bool = True
    """False for a namespace only referenced by other objects (it gets the name label only)."""


@dataclass(frozen=True, slots=True)
class ContainerPort:
    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    labels: Labels = NO_LABELS
    ports: tuple[ContainerPort, ...] = ()
    node_name: str | None = None
    ips: tuple[IPAddress, ...] = ()

    @property
    def key(self) -> PodKey:
        return pod_key(self.namespace, self.name)

    def named_port(self, name: str, protocol: Protocol) -> int | None:
        """The number of the container port called `name` for `protocol`, if declared."""
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        return (
            ip.version == self.cidr.version
            and ip in self.cidr
            and not any(ip in e for e in self.excepts)
        )

    def describe(self) -> str:
        if not self.excepts:
            return str(self.cidr)
        return f"{self.cidr} except {', '.join(str(e) for e in self.excepts)}"


@dataclass(frozen=True, slots=True)
class PolicyPeer:
    """A `from`/`to` entry: selectors (either or both) or an ipBlock, never both kinds."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class PolicyPort:
    """A `ports` entry; `port` None means every port of `protocol`; a str is a named port."""

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None

    def describe(self) -> str:
        if self.port is None:
            return f"any/{self.protocol}"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{self.protocol}"
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One ingress or egress rule; empty `peers` matches every peer, empty `ports` every port."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector = EVERYTHING
    policy_types: frozenset[Direction] = frozenset({Direction.INGRESS})
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()

    @property
    def key(self) -> PolicyKey:
        return PolicyKey(f"{self.namespace}/{self.name}")

    def rules(self, direction: Direction) -> tuple[PolicyRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


class AdminAction(enum.StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"
    PASS = "Pass"


@dataclass(frozen=True, slots=True)
class Node:
    """A node, for admin-policy `nodes` peers (matched by node labels, by the node's IPs)."""

    name: str
    labels: Labels = NO_LABELS
    ips: tuple[IPAddress, ...] = ()


@dataclass(frozen=True, slots=True)
class AdminSubject:
    """ANP/BANP `subject`: `namespaces` (pod_selector None: every pod there) or `pods`."""

    namespace_selector: LabelSelector = EVERYTHING
    pod_selector: LabelSelector | None = None


@dataclass(frozen=True, slots=True)
class AdminPeer:
    """One admin-policy peer; exactly one of the four forms is set, as upstream requires.

    `namespaces`: namespace_selector only; `pods`: namespace_selector + pod_selector;
    `nodes`: node_selector; `networks`: CIDRs (egress only)."""

    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    node_selector: LabelSelector | None = None
    networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class AdminPort:
    """`portNumber` (port int), `portRange` (port..end_port) or `namedPort` (port str, protocol
    None: the named container port decides the protocol)."""

    protocol: Protocol | None
    port: int | str
    end_port: int | None = None

    def describe(self) -> str:
        proto = self.protocol or "any"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{proto}"
        return f"{self.port}/{proto}"


@dataclass(frozen=True, slots=True)
class AdminRule:
    """`ports` None means every port (the field was absent)."""

    name: str
    action: AdminAction
    peers: tuple[AdminPeer, ...]
    ports: tuple[AdminPort, ...] | None = None


@dataclass(frozen=True, slots=True)
class AdminNetworkPolicy:
    """AdminNetworkPolicy (cluster-scoped); BaselineAdminNetworkPolicy has `priority` None."""

    name: str
    subject: AdminSubject
    priority: int | None = None
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()

    @property
    def is_baseline(self) -> bool:
        return self.priority is None

    @property
    def key(self) -> PolicyKey:
        return PolicyKey(self.name)

    def rules(self, direction: Direction) -> tuple[AdminRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


@dataclass(frozen=True, slots=True)
class Manifests:
    """Everything loaded from a set of manifests, validated; `notes` are one-line remarks
    (skipped kinds) for the user."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    admin_policies: tuple[AdminNetworkPolicy, ...] = ()
    baseline_policy: AdminNetworkPolicy | None = None
    nodes: tuple[Node, ...] = ()
    lab: LabSpec | None = None
    alert_rules: tuple[AlertRule, ...] = ()
    """Read by the flow collectors; the engine ignores them."""
    notes: tuple[str, ...] = field(default=())
