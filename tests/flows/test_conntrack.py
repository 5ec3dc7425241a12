"""ctnetlink NEW and DESTROY events: tuples, counters, timestamps, final state; and the time a
connection really ended (its last packet) from an expired entry's stop time."""

from __future__ import annotations

import ipaddress

import pytest

from kanal.flows.conntrack import (
    Counters,
    CtEventType,
    idle_timeout,
    parse_event,
    reap_request,
)
from kanal.flows.netlink import Message, attributes, split_messages

from .messages import ct_event

TIMEOUTS = {"tcp_timeout_time_wait": 120.0, "tcp_timeout_close": 10.0,
            "udp_timeout": 30.0, "udp_timeout_stream": 120.0}


def _parse(data: bytes, received: float = 5.0):  # type: ignore[no-untyped-def]
    [msg] = split_messages(data)
    return parse_event(msg, received=received)


def test_new_event_gives_the_original_and_reply_tuples() -> None:
    event = _parse(ct_event(destroy=False, src="10.244.1.3", dst="10.244.1.2", protocol=6,
                            sport=40000, dport=80))
    assert event is not None and event.type is CtEventType.NEW
    assert event.original.key == (6, ipaddress.ip_address("10.244.1.3"), 40000,
                                  ipaddress.ip_address("10.244.1.2"), 80)
    assert event.reply is not None and event.reply.sport == 80
    assert (event.counters, event.start, event.time, event.id) == (Counters(), None, 5.0, 42)


def test_destroy_event_gives_counters_of_both_directions_times_and_state() -> None:
    event = _parse(ct_event(destroy=True, src="fd00::3", dst="fd00::2", protocol=6,
                            sport=1, dport=2, orig=(5, 400), reply=(3, 1000),
                            start_ns=1_000_000_000_500_000_000, stop_ns=1_000_000_130_500_000_000,
                            status=0b110, tcp_state=7))
    assert event is not None and event.type is CtEventType.DESTROY
    assert event.original.src == ipaddress.ip_address("fd00::3")
    assert event.counters == Counters(8, 1400)
    assert (event.start, event.stop) == (1_000_000_000.5, 1_000_000_130.5)
    assert event.tcp_state == 7 and event.status == 0b110


def test_an_update_without_create_flag_is_not_a_new_connection() -> None:
    data = bytearray(ct_event(destroy=False, src="10.0.0.1", dst="10.0.0.2", protocol=17))
    data[6:8] = b"\0\0"  # clear NLM_F_CREATE|EXCL: an update
    assert _parse(bytes(data)) is None


def test_other_message_types_are_ignored() -> None:
    assert parse_event(Message(0x0101, 0, 0, b"\0" * 4), received=0.0) is None


@pytest.mark.parametrize(("protocol", "state", "status", "idle"), [
    (6, 7, 0, 120.0), (6, 8, 0, 10.0), (17, None, 0, 30.0), (17, None, 0b100, 120.0),
    (132, None, 0, 0.0), (6, 42, 0, 0.0),
], ids=["TCP TIME_WAIT", "TCP CLOSE", "UDP unreplied", "UDP assured", "SCTP: unknown",
        "TCP state out of range"])
def test_idle_timeout_is_the_timeout_of_the_final_state(
    protocol: int, state: int | None, status: int, idle: float
) -> None:
    event = _parse(ct_event(destroy=True, src="10.0.0.1", dst="10.0.0.2", protocol=protocol,
                            sport=1, dport=2, status=status, tcp_state=state))
    assert event is not None
    assert idle_timeout(event, TIMEOUTS) == idle


def test_reap_request_filters_on_a_mark_no_entry_has() -> None:
    found = attributes(reap_request(), 4)
    assert found[8] == found[21] == b"\xff\xff\xff\xff"
