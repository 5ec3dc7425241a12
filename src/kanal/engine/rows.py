"""VerdictRows: single pod-to-pod verdicts answered from rows over pod groups.

When no rule of a chain has an address peer (ipBlock, networks), a direction's decision between
two pods depends only on the chain, the peer's group (its labels, namespace and named ports) and
the probe, never on addresses. One boolean row over all groups per

    (direction, the chain's policies, [the subject's own ports, for ingress], port, protocol)

then answers every pair whose subject has that chain: a verdict is two array reads instead of a
walk over every rule. Rows are built on first use with the tier evaluation the truth table uses
(`kanal.engine.tiers`) and dropped whenever the engine changes (`PolicyEngine.generation`).

What this does not answer (the caller walks the rules instead): endpoints that are not pods, a
pod to itself, and chains with address peers.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

import numpy as np

from kanal.engine.compiled import CompiledPort, CompiledRule
from kanal.engine.evaluate import Chain
from kanal.engine.groups import GroupId, PodGroups
from kanal.engine.labelindex import SelectorIndex
from kanal.engine.selectors import EndpointSelector
from kanal.engine.tiers import Mask, evaluate_tiers
from kanal.model.objects import ContainerPort, Direction, Protocol

RowKey = tuple[object, ...]
_ChainEntry = tuple[RowKey, Chain, tuple[ContainerPort, ...]]


class RowSource(TypingProtocol):
    generation: int

    def chain(self, group: int, direction: Direction) -> Chain: ...

    def groups(self) -> PodGroups: ...

    def index(self) -> SelectorIndex[GroupId]: ...


def _has_address_peers(chain: Chain, direction: Direction) -> bool:
    policies = (*chain.admin, *chain.network, *((chain.baseline,) if chain.baseline else ()))
    return any(
        peer.ranges
        for policy in policies
        for rule in policy.rules(direction)
        for peer in rule.peers or ()
    )


class VerdictRows:
    def __init__(self, source: RowSource) -> None:
        self._source = source
        self._generation = -1
        self._chains: dict[tuple[int, Direction], _ChainEntry | None] = {}
        self._rows: dict[tuple[RowKey, int, Protocol], Mask] = {}
        self._selector_masks: dict[EndpointSelector, Mask] = {}
        self._named_masks: dict[tuple[str, Protocol | None, int, Protocol], Mask] = {}
        self._size = 0

    def decide(
        self, direction: Direction, subject: int, peer: int, port: int, protocol: Protocol
    ) -> bool | None:
        """Whether `subject`'s group admits `peer`'s group in `direction`, or None when rows
        cannot say (the chain has address peers)."""
        if self._generation != self._source.generation:
            self._reset()
        at = (subject, direction)
        if at not in self._chains:
            self._chains[at] = self._chain_of(subject, direction)
        found = self._chains[at]
        if found is None:
            return None
        key, chain, ports = found
        row = self._rows.get((key, port, protocol))
        if row is None:
            row = self._rows[(key, port, protocol)] = self._build(
                chain, direction, ports, port, protocol
            )
        return bool(row[peer])

    def _chain_of(self, subject: int, direction: Direction) -> _ChainEntry | None:
        chain = self._source.chain(subject, direction)
        if _has_address_peers(chain, direction):
            return None
        ports = self._source.groups().key_of(GroupId(subject)).ports
        return _chain_key(chain, direction, ports), chain, ports

    def _reset(self) -> None:
        self._generation = self._source.generation
        self._chains.clear()
        self._rows.clear()
        self._selector_masks.clear()
        self._named_masks.clear()
        groups = self._source.groups().groups()
        self._size = max(groups, default=-1) + 1

    def _build(
        self,
        chain: Chain,
        direction: Direction,
        ports: tuple[ContainerPort, ...],
        port: int,
        protocol: Protocol,
    ) -> Mask:
        def rule_mask(rule: CompiledRule) -> Mask:
            mask = np.ones(self._size, dtype=np.bool_)
            if rule.ports is not None:
                mask &= self._ports_mask(rule.ports, direction, ports, port, protocol)
            if rule.peers is not None:
                peers = np.zeros(self._size, dtype=np.bool_)
                for peer in rule.peers:
                    if peer.selector is not None:  # node peers never match a pod
                        peers |= self._selector_mask(peer.selector)
                mask &= peers
            return mask

        return evaluate_tiers(chain, direction, rule_mask, self._size)

    def _ports_mask(
        self,
        entries: tuple[CompiledPort, ...],
        direction: Direction,
        subject_ports: tuple[ContainerPort, ...],
        port: int,
        protocol: Protocol,
    ) -> Mask:
        """Ingress: named ports resolve at the subject itself (a scalar for the whole row);
        egress: at each peer group."""
        mask = np.zeros(self._size, dtype=np.bool_)
        for entry in entries:
            if entry.name is None or direction is Direction.INGRESS:
                if entry.matches_ports(port, protocol, subject_ports):
                    return np.ones(self._size, dtype=np.bool_)
            else:
                mask |= self._named_mask(entry, port, protocol)
        return mask

    def _named_mask(self, entry: CompiledPort, port: int, protocol: Protocol) -> Mask:
        key = (entry.name or "", entry.protocol, port, protocol)
        found = self._named_masks.get(key)
        if found is None:
            found = np.zeros(self._size, dtype=np.bool_)
            groups = self._source.groups()
            for group in groups.groups():
                found[group] = entry.matches_ports(port, protocol, groups.key_of(group).ports)
            self._named_masks[key] = found
        return found

    def _selector_mask(self, selector: EndpointSelector) -> Mask:
        found = self._selector_masks.get(selector)
        if found is None:
            found = np.zeros(self._size, dtype=np.bool_)
            matching = list(self._source.index().items_matching(selector))
            found[matching] = True
            self._selector_masks[selector] = found
        return found


def _chain_key(chain: Chain, direction: Direction, ports: tuple[ContainerPort, ...]) -> RowKey:
    """Groups with equal keys have equal rows for every probe."""
    return (
        direction,
        tuple(p.key for p in chain.admin),
        tuple(p.key for p in chain.network),
        chain.baseline.key if chain.baseline is not None else None,
        ports if direction is Direction.INGRESS else None,
    )
