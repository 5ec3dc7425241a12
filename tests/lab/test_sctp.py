"""The hand-built SCTP of the lab: CRC32c against published vectors, INIT/INIT-ACK/ABORT."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from kanal.lab import sctp
from kanal.lab.servers import ServedPod, init_ack_for
from kanal.model.objects import Protocol


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"123456789", 0xE3069283, id="the check value of CRC-32C"),
        pytest.param(b"", 0x00000000, id="empty input"),
        pytest.param(bytes(32), 0x8A9136AA, id="32 zero bytes (RFC 3720 B.4)"),
        pytest.param(b"\xff" * 32, 0x62A8AB43, id="32 0xff bytes (RFC 3720 B.4)"),
        pytest.param(bytes(range(32)), 0x46DD794E, id="bytes 0..31 (RFC 3720 B.4)"),
        pytest.param(bytes(range(31, -1, -1)), 0x113FDB5C, id="bytes 31..0 (RFC 3720 B.4)"),
    ],
)
def test_crc32c_matches_published_vectors(data: bytes, expected: int) -> None:
    assert sctp.crc32c(data) == expected


POD = ServedPod("default/web-0", "unused", IPv4Address("10.244.1.2"), ((9000, Protocol.SCTP),))
CLIENT = IPv4Address("10.244.2.5")


def _ipv4(payload: bytes, *, src: IPv4Address = CLIENT, dst: IPv4Address = POD.ip) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, sctp.IPPROTO_SCTP, 0,
        src.packed, dst.packed,
    )
    return header + payload


def _init(dst_port: int = 9000, tag: int = 0xC0FFEE) -> bytes:
    return sctp.build_init(
        src_port=50000, dst_port=dst_port, fields=sctp.InitFields(initiate_tag=tag)
    )


def _init_ack() -> bytes:
    init = sctp.parse_packet(_init())
    assert init is not None
    return sctp.build_init_ack(init, fields=sctp.InitFields(initiate_tag=1), cookie=b"x")


def test_an_init_round_trips_with_a_valid_little_endian_checksum() -> None:
    packet = _init()
    stored = struct.unpack_from("<I", packet, 8)[0]
    assert stored == sctp.crc32c(packet[:8] + bytes(4) + packet[12:])
    parsed = sctp.parse_packet(packet)
    assert parsed is not None
    assert (parsed.src_port, parsed.dst_port, parsed.verification_tag) == (50000, 9000, 0)
    assert parsed.chunk_type == sctp.CHUNK_INIT
    assert sctp.parse_init(parsed).initiate_tag == 0xC0FFEE


def test_a_corrupted_packet_is_rejected() -> None:
    packet = bytearray(_init())
    packet[-1] ^= 1
    assert sctp.parse_packet(bytes(packet)) is None
    assert init_ack_for(_ipv4(bytes(packet)), POD, frozenset({9000})) is None


def test_the_server_answers_an_init_to_a_served_port_with_an_init_ack() -> None:
    answer = init_ack_for(_ipv4(_init(tag=0xC0FFEE)), POD, frozenset({9000}))
    assert answer is not None
    reply, peer = answer
    assert peer == CLIENT
    ack = sctp.parse_packet(reply)
    assert ack is not None
    assert (ack.src_port, ack.dst_port) == (9000, 50000)
    assert ack.verification_tag == 0xC0FFEE
    assert ack.chunk_type == sctp.CHUNK_INIT_ACK
    assert sctp.parse_init(ack).initiate_tag != 0
    assert sctp.state_cookie(ack) == b"default/web-0 9000/SCTP\n"
    assert len(reply) % 4 == 0


def test_the_server_aborts_an_init_to_another_port() -> None:
    answer = init_ack_for(_ipv4(_init(dst_port=9001, tag=7)), POD, frozenset({9000}))
    assert answer is not None
    abort = sctp.parse_packet(answer[0])
    assert abort is not None
    assert abort.chunk_type == sctp.CHUNK_ABORT
    assert (abort.verification_tag, abort.dst_port) == (7, 50000)


@pytest.mark.parametrize(
    "datagram",
    [
        pytest.param(_ipv4(_init(), dst=IPv4Address("10.244.1.3")), id="an INIT to another pod"),
        pytest.param(_ipv4(_init_ack()), id="an INIT-ACK (the answer to the pod's own probe)"),
        pytest.param(_ipv4(_init())[:30], id="a truncated datagram"),
        pytest.param(b"\x60" + bytes(50), id="not IPv4"),
    ],
)
def test_the_server_ignores_what_is_not_an_init_for_it(datagram: bytes) -> None:
    assert init_ack_for(datagram, POD, frozenset({9000})) is None
