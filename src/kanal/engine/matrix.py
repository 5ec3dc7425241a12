"""The truth table over all pods for one port and protocol, without pods² evaluations.

A pod's egress verdicts (a row) depend only on its egress chain (which policies apply, in order)
and on the address family it would use; its ingress verdicts (a column) on its ingress chain, its
own container ports (named ports resolve at the destination) and its family. So:

```
pods ──► classes: (chain, family[, ports]) ──► one boolean vector over all peers per class,
                                                built tier by tier from per-rule peer vectors
                                                (selector -> group mask -> pods; ranges -> sorted
                                                addresses; named ports -> group mask)
      ──► allowed = egress[class_of_src] & ingress[class_of_dst].T   (a row gather, then the
                                                transposed ingress classes gathered in blocks
                                                and ANDed in place: see `_combine`)
```

Work grows with distinct classes × rules × pods; only the final gather is pods². Agreement with
`PolicyEngine.explain` for every pair is property-tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kanal.engine.compiled import CompiledPeer, CompiledPort, CompiledRule
from kanal.engine.engine import PolicyEngine
from kanal.engine.evaluate import Chain
from kanal.engine.ipranges import RangeSet, SortedAddresses
from kanal.engine.selectors import EndpointSelector
from kanal.engine.tiers import Mask, evaluate_tiers
from kanal.model.objects import ContainerPort, Direction, IPAddress, Pod, Protocol

Classes = npt.NDArray[np.intp]
Families = frozenset[int]


@dataclass(frozen=True)
class Matrix:
    port: int
    protocol: Protocol
    pods: list[str]
    allowed: Mask
    """allowed[i, j]: pods[i] -> pods[j]."""


def declared_probes(engine: PolicyEngine) -> list[tuple[int, Protocol]]:
    """Every (port, protocol) some pod declares, sorted: the default probes of `kanal matrix`."""
    found = {(p.port, p.protocol) for pod in engine.pods().values() for p in pod.ports}
    return sorted(found, key=lambda pp: (pp[0], pp[1].value))


def compute_matrix(
    engine: PolicyEngine,
    *,
    port: int,
    protocol: Protocol,
    pods: Sequence[str] | None = None,
) -> Matrix:
    keys = sorted(pods) if pods is not None else sorted(engine.pods())
    members = [engine.pod(k) for k in keys]
    table = _PeerTable(engine, members, port, protocol)
    egress = table.direction_classes(Direction.EGRESS)
    ingress = table.direction_classes(Direction.INGRESS)
    allowed = _combine(egress, ingress)
    np.fill_diagonal(allowed, True)  # a pod cannot block access to itself (upstream)
    return Matrix(port, protocol, list(keys), allowed)


_BLOCK = 256
"""Rows per step of the ingress gather: a block of the transposed class table stays in cache."""


def _combine(egress: tuple[Mask, Classes], ingress: tuple[Mask, Classes]) -> Mask:
    """allowed[i, j] = egress_rows[egress_class[i], j] & ingress_rows[ingress_class[j], i].

    The ingress side is needed transposed. ANDing with the transposed pods × pods view walks
    memory with a stride of n (most of the matrix time at 10k pods, and two extra n² arrays);
    instead the small classes × pods table is transposed and gathered along its rows, a block
    of rows at a time, into the egress gather in place."""
    (egress_rows, egress_class), (ingress_rows, ingress_class) = egress, ingress
    allowed = egress_rows[egress_class]
    by_peer = np.ascontiguousarray(ingress_rows.T)
    for start in range(0, len(egress_class), _BLOCK):
        block = by_peer[start : start + _BLOCK]
        allowed[start : start + _BLOCK] &= np.take(block, ingress_class, axis=1)
    return allowed


def _families(pod: Pod) -> Families:
    return frozenset(ip.version for ip in pod.ips)


def _address_seen(peer: Pod, subject_families: Families) -> IPAddress | None:
    """The peer's address on a connection with a subject of these families (IPv4 preferred),
    as `PolicyEngine.connection` chooses it."""
    for version in (4, 6):
        if version in subject_families:
            found = next((ip for ip in peer.ips if ip.version == version), None)
            if found is not None:
                return found
    ordered = sorted(peer.ips, key=lambda ip: ip.version)
    return ordered[0] if ordered else None


@dataclass
class _PeerTable:
    """Per-rule vectors over the pod list, cached for one matrix computation."""

    engine: PolicyEngine
    pods: list[Pod]
    port: int
    protocol: Protocol
    _group_index: dict[int, int] = field(default_factory=dict)
    _group_of_pod: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    _group_ports: list[tuple[ContainerPort, ...]] = field(default_factory=list)
    _selector_masks: dict[EndpointSelector, Mask] = field(default_factory=dict)
    _range_masks: dict[tuple[tuple[RangeSet, ...], Families], Mask] = field(default_factory=dict)
    _addresses: dict[Families, SortedAddresses] = field(default_factory=dict)
    _named_masks: dict[tuple[str, Protocol | None], Mask] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = self.engine.groups()
        ids = [groups.group_of(p.key) for p in self.pods]
        for g in ids:
            if g not in self._group_index:
                self._group_index[g] = len(self._group_index)
                self._group_ports.append(groups.key_of(g).ports)
        self._group_of_pod = np.fromiter(
            (self._group_index[g] for g in ids), dtype=np.intp, count=len(ids)
        )

    @property
    def n(self) -> int:
        return len(self.pods)

    # -- classes ---------------------------------------------------------------------------------

    def direction_classes(self, direction: Direction) -> tuple[Mask, Classes]:
        """(rows, class_of): row `class_of[i]` says which peers pods[i] allows in `direction`
        (as source for egress, as destination for ingress). Pods of one group with the same
        address families always share a class, so the key is built once per such pair."""
        classes: dict[tuple[object, ...], int] = {}
        by_group: dict[tuple[int, Families], int] = {}
        rows: list[Mask] = []
        class_of = np.zeros(self.n, dtype=np.intp)
        groups = self.engine.groups()
        for i, pod in enumerate(self.pods):
            group = groups.group_of(pod.key)
            families = _families(pod)
            found = by_group.get((group, families))
            if found is None:
                chain = self.engine.chain(group, direction)
                key = _class_key(chain, families, pod if direction is Direction.INGRESS else None)
                found = classes.get(key)
                if found is None:
                    found = classes[key] = len(rows)
                    rows.append(self._evaluate(chain, direction, families, pod))
                by_group[(group, families)] = found
            class_of[i] = found
        if not rows:
            return np.zeros((0, 0), dtype=np.bool_), class_of
        return np.stack(rows), class_of

    def _evaluate(
        self, chain: Chain, direction: Direction, families: Families, subject: Pod
    ) -> Mask:
        def rule_mask(rule: CompiledRule) -> Mask:
            return self._rule_mask(rule, direction, families, subject)

        return evaluate_tiers(chain, direction, rule_mask, self.n)

    # -- per-rule vectors ------------------------------------------------------------------------

    def _rule_mask(
        self, rule: CompiledRule, direction: Direction, families: Families, subject: Pod
    ) -> Mask:
        mask = np.ones(self.n, dtype=np.bool_)
        if rule.ports is not None:
            mask &= self._ports_mask(rule.ports, direction, subject)
        if rule.peers is not None and mask.any():
            peers = np.zeros(self.n, dtype=np.bool_)
            for peer in rule.peers:
                peers |= self._peer_mask(peer, families)
            mask &= peers
        return mask

    def _ports_mask(
        self, ports: tuple[CompiledPort, ...], direction: Direction, subject: Pod
    ) -> Mask:
        if direction is Direction.INGRESS:
            ok = any(p.matches(self.port, self.protocol, subject) for p in ports)
            return np.full(self.n, ok, dtype=np.bool_)
        mask = np.zeros(self.n, dtype=np.bool_)
        for p in ports:
            if p.name is None:
                if p.matches(self.port, self.protocol, None):
                    return np.ones(self.n, dtype=np.bool_)
            else:
                mask |= self._named_mask(p)
        return mask

    def _named_mask(self, port: CompiledPort) -> Mask:
        key = (port.name or "", port.protocol)
        found = self._named_masks.get(key)
        if found is None:
            per_group = np.fromiter(
                (
                    port.protocol in (None, self.protocol)
                    and any(
                        c.name == port.name and c.protocol == self.protocol and c.port == self.port
                        for c in ports
                    )
                    for ports in self._group_ports
                ),
                dtype=np.bool_,
                count=len(self._group_ports),
            )
            found = self._named_masks[key] = per_group[self._group_of_pod]
        return found

    def _peer_mask(self, peer: CompiledPeer, families: Families) -> Mask:
        if peer.selector is not None:
            return self._selector_mask(peer.selector)
        if peer.ranges:
            return self._ranges_mask(peer.ranges, families)
        return np.zeros(self.n, dtype=np.bool_)  # node peers never match a pod

    def _selector_mask(self, selector: EndpointSelector) -> Mask:
        found = self._selector_masks.get(selector)
        if found is None:
            per_group = np.zeros(len(self._group_index), dtype=np.bool_)
            for g in self.engine.index().items_matching(selector):
                local = self._group_index.get(g)
                if local is not None:
                    per_group[local] = True
            found = self._selector_masks[selector] = per_group[self._group_of_pod]
        return found

    def _ranges_mask(self, ranges: tuple[RangeSet, ...], families: Families) -> Mask:
        key = (ranges, families)
        found = self._range_masks.get(key)
        if found is None:
            addresses = self._addresses.get(families)
            if addresses is None:
                addresses = self._addresses[families] = SortedAddresses(
                    [_address_seen(p, families) for p in self.pods]
                )
            found = self._range_masks[key] = addresses.mask(ranges)
        return found


def _class_key(chain: Chain, families: Families, ports_of: Pod | None) -> tuple[object, ...]:
    return (
        tuple(p.key for p in chain.admin),
        tuple(p.key for p in chain.network),
        chain.baseline.key if chain.baseline is not None else None,
        families,
        ports_of.ports if ports_of is not None else None,
    )
