"""The five-tuple of the bytes NFLOG copies: IPv4 (with options, fragments), IPv6 (with
extension headers), TCP/UDP/SCTP ports, and nothing invented for anything else."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from kanal.flows.packets import FiveTuple, parse_ip_packet, protocol_name

from .messages import ipv4, ipv6, ports

V4 = ("10.244.1.3", "10.244.2.2")
V6 = ("fd00::3", "fd00:1::2")


def _tuple(src: str, dst: str, protocol: int, sport: int | None = None,
           dport: int | None = None) -> FiveTuple:
    return FiveTuple(ipaddress.ip_address(src), ipaddress.ip_address(dst), protocol, sport, dport)


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(ipv4(*V4, 6, ports(40000, 80)), _tuple(*V4, 6, 40000, 80), id="IPv4 TCP"),
    pytest.param(ipv4(*V4, 17, ports(5353, 53)), _tuple(*V4, 17, 5353, 53), id="IPv4 UDP"),
    pytest.param(ipv4(*V4, 132, ports(7, 3868)), _tuple(*V4, 132, 7, 3868), id="IPv4 SCTP"),
    pytest.param(ipv4(*V4, 1, b"\x08\0\0\0"), _tuple(*V4, 1), id="ICMP has no ports"),
    pytest.param(ipv4(*V4, 6, ports(1, 2), options=b"\x01" * 8), _tuple(*V4, 6, 1, 2),
                 id="IPv4 options move the ports"),
    pytest.param(ipv4(*V4, 17, ports(1, 2), fragment_offset=185), _tuple(*V4, 17),
                 id="a later IPv4 fragment has no transport header"),
    pytest.param(ipv4(*V4, 6, b"\x9c"), _tuple(*V4, 6), id="ports cut off by copy range"),
    pytest.param(ipv6(*V6, 6, ports(40000, 443)), _tuple(*V6, 6, 40000, 443), id="IPv6 TCP"),
    pytest.param(ipv6(*V6, 17, ports(1, 53), [(0, b"\0" + b"\0" * 6), (60, b"\0" + b"\0" * 6)]),
                 _tuple(*V6, 17, 1, 53), id="IPv6 hop-by-hop and destination options"),
    pytest.param(ipv6(*V6, 6, ports(1, 80), [(44, b"\0" + struct.pack(">HI", 0, 9))]),
                 _tuple(*V6, 6, 1, 80), id="IPv6 first fragment keeps its ports"),
    pytest.param(ipv6(*V6, 6, ports(1, 80), [(44, b"\0" + struct.pack(">HI", 8 << 3, 9))]),
                 _tuple(*V6, 6), id="IPv6 later fragment has none"),
])
def test_five_tuple_of_packet(data: bytes, expected: FiveTuple) -> None:
    assert parse_ip_packet(data) == expected


@pytest.mark.parametrize("data", [b"", b"\x45\0\0", b"\x20" * 40, b"\x60" + b"\0" * 10],
                         ids=["empty", "short IPv4", "version 2", "short IPv6"])
def test_bytes_that_are_not_an_ip_header_give_none(data: bytes) -> None:
    assert parse_ip_packet(data) is None


def test_protocol_names_are_the_engines_and_numbers_otherwise() -> None:
    assert [protocol_name(n) for n in (6, 17, 132, 1, 58, 47)] == [
        "TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "47"]
