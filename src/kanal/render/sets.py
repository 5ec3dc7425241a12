"""Named sets: which sets the rules ask for (`SetCatalog`), and their elements from the engine.

Rules are rendered first and *demand* sets by content (a selector and a family, a named port,
a range list, a port list); the catalog names each demand deterministically, shares it between
every rule that asks for the same content, and at the end materialises only the demanded sets,
with elements computed from the engine's current pods and nodes:

```
selector + family        -> pods_<slug>_<hash>_v4   ipv4_addr                     pod addresses
node selector + family   -> nodes_<slug>_<hash>_v4  ipv4_addr                     node addresses
ipBlock / networks       -> cidrs_<slug>_<hash>_v4  ipv4_addr, interval           a.b.c.d/n, a-b
named port + family      -> port_<name>_v4          ipv4_addr . inet_proto . inet_service
                                                                                  ip . proto . port
several numeric ports    -> ports_<slug>_<hash>     inet_proto . inet_service, interval
```

Selector, node and named-port sets change with pods (element deltas); range and port-list sets
are named after their exact content, so they never change: different content, different set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from kanal.engine import PolicyEngine
from kanal.engine.ipranges import RangeSet
from kanal.engine.selectors import EndpointSelector
from kanal.model.objects import IPAddress, LabelSelector, Pod, PodKey, Protocol
from kanal.render import names
from kanal.render.ir import NamedSet
from kanal.render.names import SetName

ADDRESS_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
PROTOCOLS = {Protocol.TCP: "tcp", Protocol.UDP: "udp", Protocol.SCTP: "sctp"}
PortSpan = tuple[Protocol, int, int]


@dataclass(frozen=True, slots=True)
class SelectorSpec:
    selector: EndpointSelector
    family: int


@dataclass(frozen=True, slots=True)
class NodeSpec:
    node_selector: LabelSelector
    family: int


@dataclass(frozen=True, slots=True)
class RangeSpec:
    ranges: RangeSet


@dataclass(frozen=True, slots=True)
class NamedPortSpec:
    port_name: str
    family: int


@dataclass(frozen=True, slots=True)
class PortListSpec:
    spans: tuple[PortSpan, ...]


SetSpec = SelectorSpec | NodeSpec | RangeSpec | NamedPortSpec | PortListSpec


def address(version: int, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def interval_text(version: int, lo: int, hi: int) -> str:
    """One address interval as nft element text: a prefix when it is one, else `a-b`."""
    first, last = address(version, lo), address(version, hi)
    if lo == hi:
        return str(first)
    nets = list(ipaddress.summarize_address_range(first, last))
    return str(nets[0]) if len(nets) == 1 else f"{first}-{last}"


def span_text(span: PortSpan) -> str:
    proto, lo, hi = span
    ports = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{PROTOCOLS[proto]} . {ports}"


def _range_readable(ranges: RangeSet) -> str:
    lo, hi = ranges.starts[0], ranges.ends[0]
    more = f" +{len(ranges.starts) - 1}" if len(ranges.starts) > 1 else ""
    return interval_text(ranges.version, lo, hi) + more


def _range_exact(ranges: RangeSet) -> str:
    return f"v{ranges.version} " + " ".join(f"{a}-{b}" for a, b in ranges.intervals())


def _name_of(spec: SetSpec) -> SetName:
    match spec:
        case SelectorSpec(selector, family):
            return names.selector_set(selector.describe(), family)
        case NodeSpec(node_selector, family):
            return names.node_set(node_selector.describe(), family)
        case RangeSpec(ranges):
            return names.range_set(_range_readable(ranges), _range_exact(ranges), ranges.version)
        case NamedPortSpec(port_name, family):
            return names.named_port_set(port_name, family)
        case PortListSpec(spans):
            return names.port_list_set(" ".join(span_text(s) for s in spans))


class SetCatalog:
    """The sets demanded so far, by name. Same content, same name; a name reused for different
    content is a hash collision and a broken invariant (it raises)."""

    def __init__(self) -> None:
        self._specs: dict[SetName, SetSpec] = {}
        self._names: dict[SetSpec, SetName] = {}

    def selector(self, selector: EndpointSelector, family: int) -> SetName:
        return self._put(SelectorSpec(selector, family))

    def nodes(self, node_selector: LabelSelector, family: int) -> SetName:
        return self._put(NodeSpec(node_selector, family))

    def ranges(self, ranges: RangeSet) -> SetName:
        return self._put(RangeSpec(ranges))

    def named_port(self, port_name: str, family: int) -> SetName:
        return self._put(NamedPortSpec(port_name, family))

    def port_list(self, spans: tuple[PortSpan, ...]) -> SetName:
        return self._put(PortListSpec(spans))

    def _put(self, spec: SetSpec) -> SetName:
        name = self._names.get(spec)
        if name is None:
            name = self._names[spec] = _name_of(spec)
            existing = self._specs.setdefault(name, spec)
            if existing != spec:
                raise RuntimeError(f"set name `{name}` collides for {existing} and {spec}")
        return name

    def names(self) -> tuple[SetName, ...]:
        """The names demanded so far, sorted (the sets `materialize` would build)."""
        return tuple(sorted(self._specs))

    def materialize(
        self, engine: PolicyEngine, *, only: Collection[SetName] | None = None,
        declaring: PortNames | None = None,
    ) -> tuple[NamedSet, ...]:
        """The demanded sets (`only`: those of them named there) with their elements now
        (`declaring`: see `ElementSource`)."""
        source = ElementSource(engine, declaring=declaring)
        return tuple(source.named_set(name, self._specs[name]) for name in sorted(self._specs)
                     if only is None or name in only)


PortNames = Mapping[str, Mapping[PodKey, Pod]]
"""Port name -> the engine's pods that declare it (a caller that keeps this index current
spares `ElementSource` a pass over every pod)."""


class ElementSource:
    """Computes set elements from the engine's pods and nodes, cluster-wide. `declaring`:
    the pods declaring each port name, if the caller has them (else indexed on first use)."""

    def __init__(self, engine: PolicyEngine, *, declaring: PortNames | None = None) -> None:
        self._engine = engine
        self._by_port_name: PortNames | None = declaring

    def named_set(self, name: SetName, spec: SetSpec) -> NamedSet:
        match spec:
            case SelectorSpec(selector, family):
                return NamedSet(
                    name, ADDRESS_TYPE[family], comment=selector.describe(),
                    elements=_addresses(self._selector_ips(selector), family),
                )
            case NodeSpec(node_selector, family):
                return NamedSet(
                    name, ADDRESS_TYPE[family], comment=f"nodes {node_selector.describe()}",
                    elements=_addresses(self._node_ips(node_selector), family),
                )
            case RangeSpec(ranges):
                return NamedSet(
                    name, ADDRESS_TYPE[ranges.version], interval=True,
                    elements=tuple(interval_text(ranges.version, a, b) for a, b in
                                   ranges.intervals()),
                )
            case NamedPortSpec(port_name, family):
                return NamedSet(
                    name, f"{ADDRESS_TYPE[family]} . inet_proto . inet_service",
                    comment=f"named port {port_name}",
                    elements=self._named_port_elements(port_name, family),
                )
            case PortListSpec(spans):
                return NamedSet(
                    name, "inet_proto . inet_service", interval=True,
                    elements=tuple(span_text(s) for s in spans),
                )

    def _selector_ips(self, selector: EndpointSelector) -> Iterable[IPAddress]:
        groups = self._engine.groups()
        pods = self._engine.pods()
        for group in self._engine.index().items_matching(selector):
            for key in groups.members(group):
                yield from pods[key].ips

    def _node_ips(self, node_selector: LabelSelector) -> Iterable[IPAddress]:
        for node in self._engine.nodes().values():
            if node_selector.matches(node.labels):
                yield from node.ips

    def _named_port_elements(self, port_name: str, family: int) -> tuple[str, ...]:
        """`address . proto . port` of every pod declaring `port_name`, ordered by address
        value, protocol and port (each address formatted once)."""
        found: dict[tuple[int, str, int], str] = {}
        for pod in self._pods_declaring(port_name):
            ips = [ip for ip in pod.ips if ip.version == family]
            if not ips:
                continue
            numbers: dict[Protocol, int] = {}
            for port in pod.ports:  # the first of a name per protocol, as `Pod.named_port`
                if port.name == port_name:
                    numbers.setdefault(port.protocol, port.port)
            for ip in ips:
                value, shown = int(ip), str(ip)
                found.update(((value, PROTOCOLS[proto], number), shown)
                             for proto, number in numbers.items())
        return tuple(f"{found[key]} . {key[1]} . {key[2]}" for key in sorted(found))

    def _pods_declaring(self, port_name: str) -> list[Pod]:
        if self._by_port_name is None:
            self._by_port_name = port_name_index(self._engine.pods())
        return list(self._by_port_name.get(port_name, {}).values())


def port_name_index(pods: Mapping[PodKey, Pod]) -> dict[str, dict[PodKey, Pod]]:
    """Port name -> the pods of `pods` that declare it."""
    index: dict[str, dict[PodKey, Pod]] = {}
    for key, pod in pods.items():
        for port in pod.ports:
            if port.name:
                index.setdefault(port.name, {})[key] = pod
    return index


def _addresses(ips: Iterable[IPAddress], family: int) -> tuple[str, ...]:
    """By value, once each (sorting integers, not address objects, whose order is Python)."""
    found = {int(ip): ip for ip in ips if ip.version == family}
    return tuple(str(found[value]) for value in sorted(found))
