"""One compiled rule -> the nft match lists that together say "this rule matches".

A compiled rule matches when any of its peers matches AND any of its ports matches. nft rules
are conjunctions, so a rule becomes the product of its peer alternatives and its port
alternatives, per address family (a peer set and a named-port set must be of the same family),
with duplicates removed (a rule with no address match is one nft rule for every family):

```
peer:   None (any)                      -> (nothing)
        selector                        -> ip saddr @pods_…_v4   (ingress: saddr, egress: daddr)
        ipBlock / networks              -> ip saddr @cidrs_…_v4       (only families it has)
        nodes                           -> ip daddr @nodes_…_v4
port:   None (any)                      -> (nothing)
        one numeric port                -> tcp dport 80 | tcp dport 80-90 | meta l4proto tcp
        several numeric ports           -> meta l4proto . th dport @ports_…   (one set per list)
        named port (at the destination) -> [meta l4proto tcp] ip daddr . meta l4proto . th dport
                                           @port_<name>_v4   (pods declaring it: ip . proto . port)
```

Every alternative carries the same verdict, so expanding keeps first-match order between rules.
Named ports are matched against the destination address in both directions, so the policy's
chain does not depend on which pod it protects (ingress: the local pod is the destination).
Shapes the engine should never produce raise `UnrenderableError`; the caller fails closed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from kanal.engine.compiled import CompiledPeer, CompiledPort, CompiledRule
from kanal.model.objects import Direction, Protocol
from kanal.render.sets import PROTOCOLS, PortSpan, SetCatalog

MatchList = tuple[str, ...]
NumericSpan = tuple[Protocol | None, int, int]
FAMILY_KEYWORD = {4: "ip", 6: "ip6"}
MAX_PORT = 65535


class UnrenderableError(Exception):
    """A compiled rule the renderer cannot express; the caller drops instead and reports it."""


def rule_matches(
    rule: CompiledRule,
    direction: Direction,
    *,
    families: Sequence[int],
    catalog: SetCatalog,
) -> list[MatchList]:
    """The match lists of `rule`, each one nft rule with the rule's verdict."""
    out: dict[MatchList, None] = {}
    for family in families:
        peers = _peer_alternatives(rule.peers, direction, family=family, catalog=catalog)
        ports = _port_alternatives(rule.ports, family=family, catalog=catalog)
        for peer, port in itertools.product(peers, ports):
            out.setdefault(peer + port)
    return list(out)


def _peer_alternatives(
    peers: tuple[CompiledPeer, ...] | None, direction: Direction, *, family: int,
    catalog: SetCatalog,
) -> list[MatchList]:
    if peers is None:
        return [()]
    field = "saddr" if direction is Direction.INGRESS else "daddr"
    prefix = f"{FAMILY_KEYWORD[family]} {field}"
    found: list[MatchList] = []
    for peer in peers:
        found.extend((f"{prefix} @{name}",) for name in _peer_sets(peer, family, catalog))
    return found


def _peer_sets(peer: CompiledPeer, family: int, catalog: SetCatalog) -> list[str]:
    kinds = sum((peer.selector is not None, bool(peer.ranges), peer.node_selector is not None))
    if kinds != 1:
        what = peer.text or "empty"
        raise UnrenderableError(f"peer #{peer.index} ({what}) is not exactly one kind")
    if peer.selector is not None:
        return [catalog.selector(peer.selector, family)]
    if peer.node_selector is not None:
        return [catalog.nodes(peer.node_selector, family)]
    for ranges in peer.ranges:
        if ranges.version not in FAMILY_KEYWORD:
            raise UnrenderableError(f"peer #{peer.index} has address family {ranges.version}")
    return [catalog.ranges(r) for r in peer.ranges if r.version == family and r.starts]


def _port_alternatives(
    ports: tuple[CompiledPort, ...] | None, *, family: int, catalog: SetCatalog
) -> list[MatchList]:
    if ports is None:
        return [()]
    numeric = [numeric_span(p) for p in ports if p.name is None]
    found: list[MatchList] = []
    if len(numeric) == 1 and (protocol := numeric[0][0]) is not None:
        found.append((_inline_port(protocol, numeric[0][1], numeric[0][2]),))
    elif numeric:
        spans = _merge_spans(s for p, lo, hi in numeric for s in expand_protocol(p, lo, hi))
        found.append((f"meta l4proto . th dport @{catalog.port_list(spans)}",))
    for port in ports:
        if port.name is not None:
            found.append(_named_port_match(port, port.name, family=family, catalog=catalog))
    return list(dict.fromkeys(found))


def numeric_span(port: CompiledPort) -> NumericSpan:
    if port.port is None:
        if port.end is not None:
            raise UnrenderableError(f"port #{port.index} has an end port but no start")
        return (port.protocol, 0, MAX_PORT)
    end = port.end if port.end is not None else port.port
    if not 0 <= port.port <= end <= MAX_PORT:
        raise UnrenderableError(f"port #{port.index} range {port.port}-{end} is not a port range")
    return (port.protocol, port.port, end)


def expand_protocol(protocol: Protocol | None, lo: int, hi: int) -> list[PortSpan]:
    """A port without a protocol (never produced today) means every protocol with ports."""
    protocols = [protocol] if protocol is not None else list(PROTOCOLS)
    return [(p, lo, hi) for p in protocols]


def _merge_spans(spans: Iterable[PortSpan]) -> tuple[PortSpan, ...]:
    """Sorted, with overlapping or adjacent spans of one protocol merged: an interval set
    refuses overlapping elements."""
    merged: list[PortSpan] = []
    for proto, lo, hi in sorted(spans):
        if merged and merged[-1][0] == proto and lo <= merged[-1][2] + 1:
            merged[-1] = (proto, merged[-1][1], max(merged[-1][2], hi))
        else:
            merged.append((proto, lo, hi))
    return tuple(merged)


def _inline_port(protocol: Protocol, lo: int, hi: int) -> str:
    name = PROTOCOLS[protocol]
    if (lo, hi) == (0, MAX_PORT):
        return f"meta l4proto {name}"
    return f"{name} dport {lo}" if lo == hi else f"{name} dport {lo}-{hi}"


def _named_port_match(
    port: CompiledPort, name: str, *, family: int, catalog: SetCatalog
) -> MatchList:
    lookup = (
        f"{FAMILY_KEYWORD[family]} daddr . meta l4proto . th dport "
        f"@{catalog.named_port(name, family)}"
    )
    if port.protocol is None:
        return (lookup,)
    return (f"meta l4proto {PROTOCOLS[port.protocol]}", lookup)
