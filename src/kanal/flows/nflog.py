"""NFLOG (nfnetlink_log): the verdict events of the renderer's `log prefix "k:…" group N` rules.

Binding (NFULNL_MSG_CONFIG, res_id = the group), as LINUX-NOTES.md measured it:

```
CMD     BIND                          one listener per group per netns (EBUSY otherwise)
MODE    copy_range, NFULNL_COPY_PACKET  the first `copy_range` bytes: IP + transport header
QTHRESH 1                             send each packet at once (else batches for up to 1 s)
TIMEOUT 1 (1/100 s)                   and never hold one longer than 10 ms
FLAGS   NFULNL_CFG_F_SEQ              a per-group sequence number: gaps count lost events
```

A packet message (NFULNL_MSG_PACKET) carries, among others: NFULA_PACKET_HDR (hw protocol,
hook), NFULA_TIMESTAMP (be64 sec, be64 usec; only when the skb was timestamped),
NFULA_IFINDEX_INDEV/OUTDEV (be32), NFULA_PAYLOAD (from the network header on),
NFULA_PREFIX (NUL-terminated), NFULA_SEQ (be32). `parse_packet` is pure; `NflogSocket` is the
socket.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from kanal.flows.netlink import (
    NETLINK_NETFILTER,
    Message,
    NetlinkSocket,
    attribute,
    attributes,
    nfgen,
    nfgen_header,
)
from kanal.flows.packets import FiveTuple, parse_ip_packet

NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
PACKET_TYPE = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
CONFIG_TYPE = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG

NFULA_PACKET_HDR = 1
NFULA_MARK = 2
NFULA_TIMESTAMP = 3
NFULA_IFINDEX_INDEV = 4
NFULA_IFINDEX_OUTDEV = 5
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10
NFULA_SEQ = 12

NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULA_CFG_TIMEOUT = 4
NFULA_CFG_QTHRESH = 5
NFULA_CFG_FLAGS = 6
NFULNL_CFG_CMD_BIND = 1
NFULNL_CFG_CMD_UNBIND = 2
NFULNL_COPY_PACKET = 2
NFULNL_CFG_F_SEQ = 0x0001

DEFAULT_COPY_RANGE = 128
"""Bytes of each packet copied: an IPv6 header with a few extension headers and the ports."""

_BE32 = struct.Struct(">I")
_TIMESTAMP = struct.Struct(">QQ")


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One logged packet: which rule (`prefix`), what packet, when and where."""

    prefix: str
    group: int
    time: float
    packet: FiveTuple | None
    indev: int | None = None
    outdev: int | None = None
    seq: int | None = None


def config_requests(
    group: int, *, copy_range: int = DEFAULT_COPY_RANGE, qthreshold: int = 1, timeout_cs: int = 1
) -> list[bytes]:
    """The payloads of the NFULNL_MSG_CONFIG requests that bind `group` (in order)."""
    header = nfgen(socket.AF_UNSPEC, group)
    bind = header + attribute(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND]))
    mode = struct.pack(">IBB", copy_range, NFULNL_COPY_PACKET, 0)
    settings = header + b"".join((
        attribute(NFULA_CFG_MODE, mode),
        attribute(NFULA_CFG_QTHRESH, _BE32.pack(qthreshold)),
        attribute(NFULA_CFG_TIMEOUT, _BE32.pack(timeout_cs)),
        attribute(NFULA_CFG_FLAGS, struct.pack(">H", NFULNL_CFG_F_SEQ)),
    ))
    return [bind, settings]


def parse_packet(msg: Message, *, received: float) -> LogEvent | None:
    """The event of an NFULNL_MSG_PACKET message (None for any other message). `received` is
    used as the time when the kernel sent no timestamp."""
    if msg.type != PACKET_TYPE:
        return None
    _, group = nfgen_header(msg.payload)
    attrs = attributes(msg.payload, 4)
    prefix = _prefix(attrs.get(NFULA_PREFIX, b""))
    payload = attrs.get(NFULA_PAYLOAD)
    return LogEvent(
        prefix=prefix,
        group=group,
        time=_timestamp(attrs.get(NFULA_TIMESTAMP), received),
        packet=None if payload is None else parse_ip_packet(payload),
        indev=_be32(attrs.get(NFULA_IFINDEX_INDEV)),
        outdev=_be32(attrs.get(NFULA_IFINDEX_OUTDEV)),
        seq=_be32(attrs.get(NFULA_SEQ)),
    )


_PREFIXES: dict[bytes, str] = {}
"""Raw prefix -> text: a table has a few hundred log ids, seen again and again."""


def _prefix(raw: bytes) -> str:
    found = _PREFIXES.get(raw)
    if found is None:
        if len(_PREFIXES) >= 65_536:
            _PREFIXES.clear()
        found = _PREFIXES[raw] = raw.split(b"\0", 1)[0].decode("ascii", "replace")
    return found


def _timestamp(raw: bytes | None, received: float) -> float:
    if raw is None or len(raw) < _TIMESTAMP.size:
        return received
    sec, usec = _TIMESTAMP.unpack_from(raw)
    return float(sec + usec / 1e6)


def _be32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else int(_BE32.unpack_from(raw)[0])


class SequenceGaps:
    """Events missing from a group's sequence numbers (32 bits, wrapping)."""

    def __init__(self) -> None:
        self.missing = 0
        self._next: int | None = None

    def see(self, seq: int | None) -> None:
        if seq is None:
            return
        if self._next is not None and seq != self._next:
            self.missing += (seq - self._next) & 0xFFFFFFFF
        self._next = (seq + 1) & 0xFFFFFFFF


class NflogSocket:
    """A listener on one NFLOG group, in the namespace current when it is created.

    `lost` counts events the kernel could not deliver: gaps in the group's sequence numbers
    (exact) plus receive-buffer overflows the sequence cannot show (each at least one event).
    """

    def __init__(self, group: int, *, copy_range: int = DEFAULT_COPY_RANGE) -> None:
        self.group = group
        self.netlink = NetlinkSocket(NETLINK_NETFILTER)
        self.gaps = SequenceGaps()
        try:
            for request in config_requests(group, copy_range=copy_range):
                self.netlink.request(CONFIG_TYPE, request)
        except BaseException:
            self.netlink.close()
            raise

    @property
    def lost(self) -> int:
        return self.gaps.missing + self.netlink.overflows

    def fileno(self) -> int:
        return self.netlink.fileno()

    def close(self) -> None:
        self.netlink.close()  # the kernel unbinds the group when its socket goes

    def receive(self, *, received: float, block: bool = True) -> list[LogEvent]:
        events = []
        for msg in self.netlink.receive(block=block):
            event = parse_packet(msg, received=received)
            if event is not None:
                self.gaps.see(event.seq)
                events.append(event)
        return events


__all__ = ["LogEvent", "NflogSocket", "SequenceGaps", "config_requests", "parse_packet"]
