"""NFLOG packet messages as the kernel sends them, and the configuration we send to bind."""

from __future__ import annotations

import struct

import pytest

from kanal.flows.netlink import Message, attributes, split_messages
from kanal.flows.nflog import CONFIG_TYPE, SequenceGaps, config_requests, parse_packet

from .messages import ipv4, nflog_packet, ports

PACKET = ipv4("10.244.1.3", "10.244.1.2", 6, ports(40000, 80))


def _one(data: bytes) -> Message:
    [msg] = split_messages(data)
    return msg


def test_a_packet_message_gives_prefix_group_tuple_and_interfaces() -> None:
    event = parse_packet(_one(nflog_packet("k:0123456789ab", PACKET, group=7, indev=3,
                                           outdev=4, seq=11)), received=100.0)
    assert event is not None
    assert (event.prefix, event.group, event.indev, event.outdev, event.seq) == (
        "k:0123456789ab", 7, 3, 4, 11)
    assert event.packet is not None
    assert (str(event.packet.src), event.packet.sport, str(event.packet.dst),
            event.packet.dport) == ("10.244.1.3", 40000, "10.244.1.2", 80)


@pytest.mark.parametrize(("timestamp", "expected"), [
    (None, 100.0), ((1_700_000_000, 250_000), 1_700_000_000.25)],
    ids=["no kernel timestamp: receive time", "kernel timestamp"])
def test_time_is_the_kernels_timestamp_else_the_receive_time(
    timestamp: tuple[int, int] | None, expected: float
) -> None:
    event = parse_packet(_one(nflog_packet("k:x", PACKET, timestamp=timestamp)), received=100.0)
    assert event is not None and event.time == expected


def test_other_messages_are_not_packets() -> None:
    assert parse_packet(Message(CONFIG_TYPE, 0, 0, b"\0" * 4), received=0.0) is None


def test_a_payload_that_is_not_ip_gives_an_event_without_packet() -> None:
    event = parse_packet(_one(nflog_packet("k:x", b"\x00\x01")), received=0.0)
    assert event is not None and event.packet is None


def test_binding_asks_for_the_packet_copy_threshold_one_and_sequence_numbers() -> None:
    bind, settings = config_requests(9, copy_range=96)
    assert bind[:4] == bytes([0, 0]) + struct.pack(">H", 9)
    assert attributes(bind, 4) == {1: bytes([1])}  # NFULA_CFG_CMD: BIND
    found = attributes(settings, 4)
    assert found[2][:6] == struct.pack(">IBB", 96, 2, 0)  # MODE: 96 bytes, COPY_PACKET
    assert struct.unpack(">I", found[5]) == (1,)  # QTHRESH 1
    assert struct.unpack(">I", found[4]) == (1,)  # TIMEOUT 10 ms
    assert struct.unpack(">H", found[6][:2]) == (1,)  # FLAGS: SEQ


@pytest.mark.parametrize(("seqs", "missing"), [
    ([0, 1, 2], 0), ([0, 1, 5, 6], 3), ([7], 0), ([0xFFFFFFFE, 0xFFFFFFFF, 0, 1], 0),
    ([0xFFFFFFFF, 2], 2), ([None, 3, None, 4], 0),
], ids=["in order", "three missing", "first seen", "wraps", "missing across the wrap",
        "messages without a sequence number"])
def test_gaps_in_sequence_numbers_are_lost_events(seqs: list[int | None], missing: int) -> None:
    gaps = SequenceGaps()
    for seq in seqs:
        gaps.see(seq)
    assert gaps.missing == missing
