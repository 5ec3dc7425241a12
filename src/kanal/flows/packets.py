"""The addresses, protocol and ports of a packet's first bytes (IPv4 or IPv6, then TCP, UDP or
SCTP), as NFLOG copies them: just enough to name a connection. Pure.

A fragment other than the first has no transport header, and ICMP has no ports: both give a
`FiveTuple` with ports None. Bytes that are not a plausible IP header give None, never a guess.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from kanal.model.objects import IPAddress

TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
PORTED = frozenset({TCP, UDP, SCTP})
PROTOCOL_NAMES = {TCP: "TCP", UDP: "UDP", SCTP: "SCTP", ICMP: "ICMP", ICMPV6: "ICMPv6"}

_IPV6_EXTENSIONS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_PORTS = struct.Struct(">HH")


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, str(number))


@dataclass(frozen=True, slots=True)
class FiveTuple:
    """One direction of a connection, as the packet that opened it carries it."""

    src: IPAddress
    dst: IPAddress
    protocol: int
    sport: int | None = None
    dport: int | None = None

    @property
    def key(self) -> tuple[int, IPAddress, int | None, IPAddress, int | None]:
        """What a conntrack original tuple is matched on."""
        return (self.protocol, self.src, self.sport, self.dst, self.dport)


def parse_ip_packet(data: bytes) -> FiveTuple | None:
    """The five-tuple of an IPv4 or IPv6 packet (by its version nibble), or None."""
    if not data:
        return None
    version = data[0] >> 4
    if version == 4:
        return _ipv4(data)
    if version == 6:
        return _ipv6(data)
    return None


class _Address4(ipaddress.IPv4Address):
    """An IPv4 address whose hash is computed once. Attribution keys several dicts by the
    packet's addresses per event, and `IPv4Address.__hash__` (`hash(hex(int(...)))`, in
    Python) was a tenth of ingesting a flow. Equal to, and hashing like, `IPv4Address`."""

    __slots__ = ("_hash",)

    def __init__(self, address: bytes) -> None:
        super().__init__(address)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__mro__[1].__name__}('{self}')"


class _Address6(ipaddress.IPv6Address):
    """`_Address4` for IPv6."""

    __slots__ = ("_hash",)

    def __init__(self, address: bytes) -> None:
        super().__init__(address)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__mro__[1].__name__}('{self}')"


_ADDRESSES: dict[bytes, IPAddress] = {}
"""Packed address -> address object: the same few thousand addresses recur in every packet,
and building the object is most of the cost of a parse. Bounded (cleared when full)."""


def _address(packed: bytes) -> IPAddress:
    found = _ADDRESSES.get(packed)
    if found is None:
        if len(_ADDRESSES) >= 65_536:
            _ADDRESSES.clear()
        found = _ADDRESSES[packed] = (_Address4 if len(packed) == 4 else _Address6)(packed)
    return found


def _ipv4(data: bytes) -> FiveTuple | None:
    header = (data[0] & 0x0F) * 4
    if header < 20 or len(data) < header:
        return None
    protocol = data[9]
    src = _address(data[12:16])
    dst = _address(data[16:20])
    fragment_offset = struct.unpack_from(">H", data, 6)[0] & 0x1FFF
    if fragment_offset:
        return FiveTuple(src, dst, protocol)
    return _with_ports(src, dst, protocol, data, header)


def _ipv6(data: bytes) -> FiveTuple | None:
    if len(data) < 40:
        return None
    src = _address(data[8:24])
    dst = _address(data[24:40])
    protocol, offset = data[6], 40
    while protocol in _IPV6_EXTENSIONS or protocol in (_IPV6_FRAGMENT, _IPV6_AH):
        if offset + 8 > len(data):
            return FiveTuple(src, dst, protocol)
        following = data[offset]
        if protocol == _IPV6_FRAGMENT:
            if struct.unpack_from(">H", data, offset + 2)[0] & 0xFFF8:
                return FiveTuple(src, dst, following)  # not the first fragment: no ports
            length = 8
        elif protocol == _IPV6_AH:
            length = (data[offset + 1] + 2) * 4
        else:
            length = (data[offset + 1] + 1) * 8
        protocol, offset = following, offset + length
    return _with_ports(src, dst, protocol, data, offset)


def _with_ports(
    src: IPAddress, dst: IPAddress, protocol: int, data: bytes, offset: int
) -> FiveTuple:
    if protocol not in PORTED or offset + 4 > len(data):
        return FiveTuple(src, dst, protocol)
    sport, dport = _PORTS.unpack_from(data, offset)
    return FiveTuple(src, dst, protocol, sport, dport)


__all__ = ["PORTED", "SCTP", "TCP", "UDP", "FiveTuple", "parse_ip_packet", "protocol_name"]
