"""Just enough SCTP (RFC 9260) to test SCTP policy on a kernel that has no SCTP sockets.

The lab's prober sends a hand-built INIT on a raw IPPROTO_SCTP socket and the pod servers answer
with a hand-built INIT-ACK, which is all conntrack and nftables need to see an SCTP connection
attempt succeed (ct state new, then established on the reply). There is no association: no
COOKIE-ECHO, no data, no retransmission. Checksums are CRC32c, stored little-endian, as Linux
does (`sctp_compute_cksum`); conntrack drops packets with a wrong one as invalid.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

IPPROTO_SCTP = 132
CHUNK_INIT = 1
CHUNK_INIT_ACK = 2
CHUNK_ABORT = 6
PARAM_STATE_COOKIE = 7

_COMMON = struct.Struct("!HHII")  # src port, dst port, verification tag, checksum
_CHUNK = struct.Struct("!BBH")  # type, flags, length
_INIT = struct.Struct("!IIHHI")  # initiate tag, a_rwnd, outbound streams, inbound streams, TSN
_PARAM = struct.Struct("!HH")  # type, length


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table driven.

    Pure Python, about 1 µs per byte: fine for 50-byte control packets, not for bulk data.
    """
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _with_checksum(packet: bytes) -> bytes:
    """Fill in the checksum field (bytes 8-11, zero while computing), little-endian."""
    return packet[:8] + struct.pack("<I", crc32c(packet)) + packet[12:]


def checksum_ok(packet: bytes) -> bool:
    """Whether an SCTP packet's CRC32c matches its content."""
    if len(packet) < _COMMON.size:
        return False
    stored = struct.unpack_from("<I", packet, 8)[0]
    return bool(stored == crc32c(packet[:8] + b"\0\0\0\0" + packet[12:]))


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


@dataclass(frozen=True, slots=True)
class InitFields:
    """The fixed part of an INIT or INIT-ACK chunk."""

    initiate_tag: int
    a_rwnd: int = 65535
    outbound_streams: int = 10
    inbound_streams: int = 10
    initial_tsn: int = 1


def build_init(*, src_port: int, dst_port: int, fields: InitFields) -> bytes:
    """An SCTP packet holding one INIT chunk (verification tag 0, as RFC 9260 requires)."""
    body = _INIT.pack(
        fields.initiate_tag,
        fields.a_rwnd,
        fields.outbound_streams,
        fields.inbound_streams,
        fields.initial_tsn,
    )
    chunk = _CHUNK.pack(CHUNK_INIT, 0, _CHUNK.size + len(body)) + body
    return _with_checksum(_COMMON.pack(src_port, dst_port, 0, 0) + chunk)


def build_init_ack(init: SctpPacket, *, fields: InitFields, cookie: bytes) -> bytes:
    """The INIT-ACK answering `init`: ports swapped, verification tag = the INIT's initiate
    tag, streams capped at what the INIT offered, and a State Cookie parameter holding `cookie`
    (the servers put the pod's name there, so a prober can say who answered)."""
    offered = parse_init(init)
    body = _INIT.pack(
        fields.initiate_tag,
        fields.a_rwnd,
        min(fields.outbound_streams, offered.inbound_streams),
        min(fields.inbound_streams, offered.outbound_streams),
        fields.initial_tsn,
    )
    param = _PARAM.pack(PARAM_STATE_COOKIE, _PARAM.size + len(cookie)) + cookie
    chunk = _CHUNK.pack(CHUNK_INIT_ACK, 0, _CHUNK.size + len(body) + len(param)) + body + param
    header = _COMMON.pack(init.dst_port, init.src_port, offered.initiate_tag, 0)
    return _with_checksum(header + _pad4(chunk))


def build_abort(init: SctpPacket) -> bytes:
    """The ABORT a real SCTP stack sends for an INIT to a port nobody listens on (RFC 9260
    8.4): verification tag = the INIT's initiate tag, T bit clear, no error causes."""
    header = _COMMON.pack(init.dst_port, init.src_port, parse_init(init).initiate_tag, 0)
    return _with_checksum(header + _CHUNK.pack(CHUNK_ABORT, 0, _CHUNK.size))


@dataclass(frozen=True, slots=True)
class SctpPacket:
    """An SCTP packet's common header and its first chunk (the only one the lab looks at)."""

    src_port: int
    dst_port: int
    verification_tag: int
    chunk_type: int
    chunk_value: bytes  # the chunk after its 4-byte header, without padding


def parse_packet(packet: bytes) -> SctpPacket | None:
    """Decode an SCTP packet; None if it is truncated or its checksum is wrong."""
    if len(packet) < _COMMON.size + _CHUNK.size or not checksum_ok(packet):
        return None
    src_port, dst_port, vtag, _ = _COMMON.unpack_from(packet)
    chunk_type, _, length = _CHUNK.unpack_from(packet, _COMMON.size)
    end = _COMMON.size + length
    if length < _CHUNK.size or end > len(packet):
        return None
    value = packet[_COMMON.size + _CHUNK.size : end]
    return SctpPacket(src_port, dst_port, vtag, chunk_type, value)


def parse_init(packet: SctpPacket) -> InitFields:
    """The fixed fields of an INIT or INIT-ACK chunk (ValueError if too short)."""
    if len(packet.chunk_value) < _INIT.size:
        raise ValueError("INIT chunk too short")
    return InitFields(*_INIT.unpack_from(packet.chunk_value))


def state_cookie(packet: SctpPacket) -> bytes | None:
    """The State Cookie parameter of an INIT-ACK, if present."""
    offset = _INIT.size
    value = packet.chunk_value
    while offset + _PARAM.size <= len(value):
        kind, length = _PARAM.unpack_from(value, offset)
        if length < _PARAM.size:
            return None
        if kind == PARAM_STATE_COOKIE:
            return value[offset + _PARAM.size : offset + length]
        offset += length + (-length % 4)
    return None


@dataclass(frozen=True, slots=True)
class Ipv4Datagram:
    """What a raw IPv4 socket hands us: the addresses and the payload after the IP header."""

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    payload: bytes


def parse_ipv4(datagram: bytes) -> Ipv4Datagram | None:
    """Split a raw-socket datagram (IPv4 header included) into addresses and payload."""
    if len(datagram) < 20 or datagram[0] >> 4 != 4:
        return None
    header_len = (datagram[0] & 0x0F) * 4
    total_len = struct.unpack_from("!H", datagram, 2)[0]
    if header_len < 20 or total_len < header_len or len(datagram) < total_len:
        return None
    return Ipv4Datagram(
        src=IPv4Address(datagram[12:16]),
        dst=IPv4Address(datagram[16:20]),
        protocol=datagram[9],
        payload=datagram[header_len:total_len],
    )


__all__ = [
    "CHUNK_ABORT",
    "CHUNK_INIT",
    "CHUNK_INIT_ACK",
    "IPPROTO_SCTP",
    "InitFields",
    "Ipv4Datagram",
    "SctpPacket",
    "build_abort",
    "build_init",
    "build_init_ack",
    "checksum_ok",
    "crc32c",
    "parse_init",
    "parse_ipv4",
    "parse_packet",
    "state_cookie",
]
