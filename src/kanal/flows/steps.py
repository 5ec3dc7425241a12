"""DecidingSteps: the engine's deciding step for one direction of a packet's connection, walked
once per kind of connection the engine cannot tell apart. Pure: no sockets, no clock.

Between two different pods, `kanal.engine.evaluate.decide` reads nothing of the peer but

    which pod selectors of the subject's chain match the peer's group
    which address peers (ipBlock, networks) of that chain contain the peer's address
    for egress, when the chain names ports: the peer's container ports (its group)

besides the subject's chain (its group), the port and the protocol (a pod is never a node, and
`Self` needs the same pod). Steps are kept per

    (direction, subject group, selector bits, address bits, [peer group], port, protocol)

so a new pod pair costs a few dict lookups as soon as a peer the chain sees the same way was
judged: at 1k pods the walk over every rule was most of ingesting flows between new pairs.
Anything else (an end that is not a pod, a pod to itself) is kept per addresses. The bits are
cached per the chain's selectors (or ranges), which many chains share, and group (or address).

What this does not do: word the step (`kanal.engine.wording`), or compare it with the rule the
kernel logged (`kanal.flows.attribute`). One instance serves one engine state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from kanal.engine import Connection, Endpoint, PolicyEngine, Step
from kanal.engine.evaluate import decide
from kanal.engine.ipranges import RangeSet
from kanal.engine.selectors import EndpointSelector
from kanal.model.objects import Direction, IPAddress, Protocol

CACHE_LIMIT = 100_000

StepKey = tuple[object, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Profile:
    """What of a peer one chain (group and direction) can see."""

    selectors: int
    """Id (in `DecidingSteps._selectors`) of the pod selectors its rules name."""
    ranges: int
    """Id (in `DecidingSteps._ranges`) of its address peers."""
    peer_ports: bool
    """Egress rules with a named port: it resolves at the peer, so the peer's group counts."""


class _Interned(Generic[T]):
    """Equal tuples get one small id (0 for the empty tuple), so bits are cached per id."""

    def __init__(self) -> None:
        self.ids: dict[tuple[T, ...], int] = {(): 0}
        self.values: list[tuple[T, ...]] = [()]

    def id(self, value: tuple[T, ...]) -> int:
        found = self.ids.get(value)
        if found is None:
            found = self.ids[value] = len(self.values)
            self.values.append(value)
        return found


class DecidingSteps:
    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine
        self.walks = 0
        """How many steps were computed by walking the rules (the rest came from the cache)."""
        self._steps: dict[StepKey, Step] = {}
        self._endpoints: dict[IPAddress, Endpoint] = {}
        self._profiles: dict[tuple[int, Direction], _Profile] = {}
        self._selectors: _Interned[EndpointSelector] = _Interned()
        self._ranges: _Interned[tuple[RangeSet, ...]] = _Interned()
        self._bits: dict[tuple[object, ...], int] = {}

    def endpoint(self, ip: IPAddress) -> Endpoint:
        """The engine's endpoint for an address (a pod's, a node's, or outside)."""
        found = self._endpoints.get(ip)
        if found is None:
            if len(self._endpoints) >= CACHE_LIMIT:
                self._endpoints.clear()
            found = self._endpoints[ip] = self.engine.endpoint(ip)
        return found

    def deciding(
        self, direction: Direction, src: Endpoint, dst: Endpoint, *, port: int,
        protocol: Protocol,
    ) -> Step:
        """Explain's deciding step of `direction` for `src` -> `dst` on `port`/`protocol`."""
        key = self._key(direction, src, dst, port, protocol)
        found = self._steps.get(key)
        if found is None:
            self.walks += 1
            found = decide(self.engine, direction, Connection(src, dst, port, protocol)).deciding
            if len(self._steps) >= CACHE_LIMIT:
                self._steps.clear()
            self._steps[key] = found
        return found

    def _key(
        self, direction: Direction, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol
    ) -> StepKey:
        if src.pod is None or dst.pod is None or src.pod is dst.pod:
            return (direction, src.ip, dst.ip, port, protocol)
        subject, peer = (src, dst) if direction is Direction.EGRESS else (dst, src)
        assert subject.group is not None and peer.group is not None, "a pod has a group"
        profile = self._profile(subject.group, direction)
        return (
            direction, subject.group,
            self._selector_bits(profile.selectors, peer.group),
            self._range_bits(profile.ranges, peer.ip),
            peer.group if profile.peer_ports else None,
            port, protocol,
        )

    def _profile(self, group: int, direction: Direction) -> _Profile:
        found = self._profiles.get((group, direction))
        if found is None:
            chain = self.engine.chain(group, direction)
            policies = (*chain.admin, *chain.network,
                        *((chain.baseline,) if chain.baseline is not None else ()))
            rules = [rule for policy in policies for rule in policy.rules(direction)]
            peers = [peer for rule in rules for peer in rule.peers or ()]
            selectors = tuple(dict.fromkeys(p.selector for p in peers if p.selector is not None))
            found = _Profile(
                selectors=self._selectors.id(selectors),
                ranges=self._ranges.id(tuple(p.ranges for p in peers if p.ranges)),
                peer_ports=direction is Direction.EGRESS and any(
                    port.name is not None for rule in rules for port in rule.ports or ()),
            )
            self._profiles[group, direction] = found
        return found

    def _selector_bits(self, selectors: int, group: int) -> int:
        """Which selectors (an id of `_selectors`) match the group, as bits."""
        if not selectors:
            return 0
        key = ("selectors", selectors, group)
        found = self._bits.get(key)
        if found is None:
            matches = self.engine.selector_matches
            found = sum(1 << i for i, selector in enumerate(self._selectors.values[selectors])
                        if matches(selector, group))
            self._remember(key, found)
        return found

    def _range_bits(self, ranges: int, ip: IPAddress | None) -> int:
        """Which address peers (an id of `_ranges`) contain the address, as bits."""
        if not ranges or ip is None:
            return 0
        key = ("ranges", ranges, ip)
        found = self._bits.get(key)
        if found is None:
            found = sum(1 << i for i, peer in enumerate(self._ranges.values[ranges])
                        if any(r.contains(ip) for r in peer))
            self._remember(key, found)
        return found

    def _remember(self, key: tuple[object, ...], bits: int) -> None:
        if len(self._bits) >= CACHE_LIMIT:
            self._bits.clear()
        self._bits[key] = bits


__all__ = ["DecidingSteps"]
