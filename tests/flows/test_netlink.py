"""Netlink framing: messages of a datagram, attributes of a message (flags masked, padding
skipped), and nothing misread from truncated bytes."""

from __future__ import annotations

from kanal.flows.netlink import attribute, attributes, message, nfgen, nfgen_header, split_messages

from .messages import attr, netlink
from .messages import nfgen as hand_nfgen


def test_a_datagram_with_several_messages_splits_at_aligned_lengths() -> None:
    data = netlink(0x100, b"abc") + b"\0" + netlink(0x102, b"defgh", flags=4, seq=9)
    found = list(split_messages(data))
    assert [(m.type, m.flags, m.seq, m.payload) for m in found] == [
        (0x100, 0, 0, b"abc"), (0x102, 4, 9, b"defgh")]


def test_a_truncated_message_is_dropped_not_misread() -> None:
    data = netlink(0x100, b"abcd") + netlink(0x100, b"efgh")[:-2]
    assert [m.payload for m in split_messages(data)] == [b"abcd"]


def test_attributes_mask_the_nested_and_byte_order_flags() -> None:
    data = attr(1, b"x") + attr(2, attr(1, b"yz"), nested=True) + attr(0x4003, b"\0\1")
    assert attributes(data) == {1: b"x", 2: attr(1, b"yz"), 3: b"\0\1"}


def test_a_truncated_attribute_ends_the_list() -> None:
    assert attributes(attr(1, b"abcd") + attr(2, b"efgh")[:6]) == {1: b"abcd"}


def test_our_encoders_match_the_hand_built_bytes() -> None:
    assert attribute(5, b"abc") == attr(5, b"abc")
    assert attribute(5, b"abcd", nested=True) == attr(5, b"abcd", nested=True)
    assert nfgen(2, 0x1234) == hand_nfgen(2, 0x1234)
    assert nfgen_header(hand_nfgen(10, 7)) == (10, 7)
    assert message(0x401, 5, 3, b"xy") == netlink(0x401, b"xy", flags=5, seq=3)
