"""Netlink messages built by hand, byte by byte, as the kernel sends them (independent of the
encoders in `kanal.flows.netlink`): NFLOG packets, ctnetlink events, and the IP packets inside.

Layouts: include/uapi/linux/netlink.h (nlmsghdr, nlattr), netfilter/nfnetlink.h (nfgenmsg),
netfilter/nfnetlink_log.h, netfilter/nfnetlink_conntrack.h.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

NESTED = 0x8000


def attr(kind: int, payload: bytes, *, nested: bool = False) -> bytes:
    length = 4 + len(payload)
    pad = (4 - length % 4) % 4
    return struct.pack("=HH", length, kind | (NESTED if nested else 0)) + payload + b"\0" * pad


def netlink(kind: int, payload: bytes, *, flags: int = 0, seq: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload


def nfgen(family: int, res_id: int) -> bytes:
    return struct.pack("=BB", family, 0) + struct.pack(">H", res_id)


# -- IP packets ----------------------------------------------------------------------------------


def ports(sport: int, dport: int) -> bytes:
    return struct.pack(">HH", sport, dport) + b"\0" * 16


def ipv4(
    src: str, dst: str, protocol: int, l4: bytes = b"", *, options: bytes = b"",
    fragment_offset: int = 0,
) -> bytes:
    ihl = (20 + len(options)) // 4
    header = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(l4), 1,
                         fragment_offset, 64, protocol, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header + options + l4


def ipv6(src: str, dst: str, protocol: int, l4: bytes = b"",
         extensions: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """`extensions`: (header type, its bytes after the next-header byte) in order."""
    types = [t for t, _ in extensions]
    body = b""
    for i, (_, rest) in enumerate(extensions):
        following = types[i + 1] if i + 1 < len(types) else protocol
        body += bytes([following]) + rest
    first = types[0] if types else protocol
    header = struct.pack(">IHBB16s16s", 0x60000000, len(body) + len(l4), first, 64,
                         ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return header + body + l4


# -- NFLOG ---------------------------------------------------------------------------------------

NFLOG_PACKET = (4 << 8) | 0


def nflog_packet(
    prefix: str, payload: bytes, *, group: int = 7, family: int = 2,
    timestamp: tuple[int, int] | None = None, indev: int | None = None,
    outdev: int | None = None, seq: int | None = None,
) -> bytes:
    attrs = attr(1, struct.pack(">HBB", 0x0800, 2, 0))  # NFULA_PACKET_HDR: IPv4, FORWARD
    if timestamp is not None:
        attrs += attr(3, struct.pack(">QQ", *timestamp))
    if indev is not None:
        attrs += attr(4, struct.pack(">I", indev))
    if outdev is not None:
        attrs += attr(5, struct.pack(">I", outdev))
    attrs += attr(9, payload) + attr(10, prefix.encode() + b"\0")
    if seq is not None:
        attrs += attr(12, struct.pack(">I", seq))
    return netlink(NFLOG_PACKET, nfgen(family, group) + attrs)


# -- ctnetlink -----------------------------------------------------------------------------------

CT_NEW = (1 << 8) | 0
CT_DELETE = (1 << 8) | 2
NLM_F_CREATE_EXCL = 0x400 | 0x200


def ct_tuple(kind: int, src: str, dst: str, protocol: int, sport: int = 0,
             dport: int = 0) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    src_type, dst_type = (1, 2) if s.version == 4 else (3, 4)
    ip = attr(1, attr(src_type, s.packed) + attr(dst_type, d.packed), nested=True)
    proto = attr(1, bytes([protocol]))
    if protocol in (6, 17, 132):
        proto += attr(2, struct.pack(">H", sport)) + attr(3, struct.pack(">H", dport))
    return attr(kind, ip + attr(2, proto, nested=True), nested=True)


def counters(kind: int, packets: int, nbytes: int) -> bytes:
    return attr(kind, attr(1, struct.pack(">Q", packets)) + attr(2, struct.pack(">Q", nbytes)),
                nested=True)


def ct_event(
    *, destroy: bool, src: str, dst: str, protocol: int, sport: int = 0, dport: int = 0,
    orig: tuple[int, int] | None = None, reply: tuple[int, int] | None = None,
    start_ns: int | None = None, stop_ns: int | None = None, status: int = 0,
    tcp_state: int | None = None, ident: int = 42,
) -> bytes:
    body = (ct_tuple(1, src, dst, protocol, sport, dport)
            + ct_tuple(2, dst, src, protocol, dport, sport)
            + attr(3, struct.pack(">I", status)))
    if tcp_state is not None:
        tcp = attr(1, bytes([tcp_state])) + attr(2, bytes([7]))
        body += attr(4, attr(1, tcp, nested=True), nested=True)
    if orig is not None:
        body += counters(9, *orig)
    if reply is not None:
        body += counters(10, *reply)
    body += attr(12, struct.pack(">I", ident))
    if start_ns is not None:
        stamps = attr(1, struct.pack(">Q", start_ns))
        if stop_ns is not None:
            stamps += attr(2, struct.pack(">Q", stop_ns))
        body += attr(20, stamps, nested=True)
    kind, flags = (CT_DELETE, 0) if destroy else (CT_NEW, NLM_F_CREATE_EXCL)
    return netlink(kind, nfgen(2, 0) + body, flags=flags)
