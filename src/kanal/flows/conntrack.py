"""ctnetlink events: a connection's start (NEW) and end (DESTROY), with its byte and packet
counters.

Subscribing is binding to multicast groups NFNLGRP_CONNTRACK_NEW (1) and _DESTROY (3). The
kernel sends events in a namespace only once some rule there uses `ct` (Kanal's table does),
counters only with `net.netfilter.nf_conntrack_acct=1`, and start/stop times only with
`nf_conntrack_timestamp=1`; `enable_accounting` sets both for the calling thread's namespace.
An entry whose first packet was dropped is never confirmed, so denied connections have no
events at all (their NFLOG event is the whole record).

```
IPCTNL_MSG_CT_NEW (flags CREATE|EXCL) / IPCTNL_MSG_CT_DELETE, subsystem CTNETLINK (1)
  CTA_TUPLE_ORIG (nested) ─ CTA_TUPLE_IP (nested) ─ CTA_IP_V4_SRC/DST | CTA_IP_V6_SRC/DST
                          └ CTA_TUPLE_PROTO (nested) ─ CTA_PROTO_NUM u8, CTA_PROTO_SRC/DST_PORT be16
  CTA_TUPLE_REPLY (same shape)
  CTA_STATUS be32 (IPS_ASSURED: seen both ways)
  CTA_PROTOINFO (nested) ─ CTA_PROTOINFO_TCP (nested) ─ CTA_PROTOINFO_TCP_STATE u8 (DESTROY too)
  CTA_COUNTERS_ORIG / _REPLY (nested) ─ CTA_COUNTERS_PACKETS be64, CTA_COUNTERS_BYTES be64
  CTA_TIMESTAMP (nested) ─ CTA_TIMESTAMP_START / _STOP be64 ns since the epoch
  CTA_ID be32
```
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from kanal.flows.netlink import (
    NETLINK_NETFILTER,
    Message,
    NetlinkSocket,
    attribute,
    attributes,
    nfgen,
)
from kanal.flows.packets import PORTED, TCP, UDP, FiveTuple
from kanal.model.objects import IPAddress

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NEW_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
GET_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
DELETE_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
NFNLGRP_CONNTRACK_NEW = 1
NFNLGRP_CONNTRACK_DESTROY = 3
NLM_F_CREATE = 0x400

CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_STATUS = 3
CTA_PROTOINFO = 4
CTA_COUNTERS_ORIG = 9
CTA_COUNTERS_REPLY = 10
CTA_ID = 12
CTA_MARK = 8
CTA_TIMESTAMP = 20
CTA_MARK_MASK = 21
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_COUNTERS_PACKETS, CTA_COUNTERS_BYTES = 1, 2
CTA_TIMESTAMP_START, CTA_TIMESTAMP_STOP = 1, 2
CTA_PROTOINFO_TCP = 1
CTA_PROTOINFO_TCP_STATE = 1
IPS_ASSURED = 1 << 2

TCP_STATES = (
    "none", "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack",
    "time_wait", "close", "syn_sent2",
)
"""enum tcp_conntrack, by value: the sysctl `nf_conntrack_tcp_timeout_<name>` of each."""

SYSCTLS = {"nf_conntrack_acct": "1", "nf_conntrack_timestamp": "1"}
SYSCTL_DIR = Path("/proc/sys/net/netfilter")

_BE16 = struct.Struct(">H")
_BE32 = struct.Struct(">I")
_BE64 = struct.Struct(">Q")


class CtEventType(enum.StrEnum):
    NEW = "new"
    DESTROY = "destroy"


@dataclass(frozen=True, slots=True)
class Counters:
    packets: int = 0
    bytes: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(self.packets + other.packets, self.bytes + other.bytes)


@dataclass(frozen=True, slots=True)
class CtEvent:
    """One conntrack event. Counters are zero without accounting; `start`/`stop` (seconds since
    the epoch) are None without timestamps."""

    type: CtEventType
    time: float
    original: FiveTuple
    reply: FiveTuple | None = None
    orig_counters: Counters = Counters()
    reply_counters: Counters = Counters()
    start: float | None = None
    stop: float | None = None
    id: int | None = None
    status: int = 0
    tcp_state: int | None = None

    @property
    def counters(self) -> Counters:
        """Both directions together: what the connection carried."""
        return self.orig_counters + self.reply_counters


def parse_event(msg: Message, *, received: float) -> CtEvent | None:
    """The event of a ctnetlink NEW (created) or DELETE message; None for anything else."""
    if msg.type == NEW_TYPE and msg.flags & NLM_F_CREATE:
        kind = CtEventType.NEW
    elif msg.type == DELETE_TYPE:
        kind = CtEventType.DESTROY
    else:
        return None
    attrs = attributes(msg.payload, 4)
    original = _tuple(attrs.get(CTA_TUPLE_ORIG))
    if original is None:
        return None
    start, stop = _timestamps(attrs.get(CTA_TIMESTAMP))
    return CtEvent(
        type=kind,
        time=received,
        original=original,
        reply=_tuple(attrs.get(CTA_TUPLE_REPLY)),
        orig_counters=_counters(attrs.get(CTA_COUNTERS_ORIG)),
        reply_counters=_counters(attrs.get(CTA_COUNTERS_REPLY)),
        start=start,
        stop=stop,
        id=_int(attrs.get(CTA_ID), _BE32),
        status=_int(attrs.get(CTA_STATUS), _BE32) or 0,
        tcp_state=_tcp_state(attrs.get(CTA_PROTOINFO)),
    )


def _tcp_state(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    tcp = attributes(attributes(raw).get(CTA_PROTOINFO_TCP, b""))
    state = tcp.get(CTA_PROTOINFO_TCP_STATE)
    return state[0] if state else None


def _tuple(raw: bytes | None) -> FiveTuple | None:
    if raw is None:
        return None
    parts = attributes(raw)
    addresses = attributes(parts.get(CTA_TUPLE_IP, b""))
    proto = attributes(parts.get(CTA_TUPLE_PROTO, b""))
    src = _address(addresses, CTA_IP_V4_SRC, CTA_IP_V6_SRC)
    dst = _address(addresses, CTA_IP_V4_DST, CTA_IP_V6_DST)
    number = proto.get(CTA_PROTO_NUM)
    if src is None or dst is None or not number:
        return None
    protocol = number[0]
    if protocol not in PORTED:
        return FiveTuple(src, dst, protocol)
    sport = _int(proto.get(CTA_PROTO_SRC_PORT), _BE16)
    dport = _int(proto.get(CTA_PROTO_DST_PORT), _BE16)
    return FiveTuple(src, dst, protocol, sport, dport)


def _address(attrs: dict[int, bytes], v4: int, v6: int) -> IPAddress | None:
    if (raw := attrs.get(v4)) is not None and len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if (raw := attrs.get(v6)) is not None and len(raw) == 16:
        return ipaddress.IPv6Address(raw)
    return None


def _counters(raw: bytes | None) -> Counters:
    if raw is None:
        return Counters()
    attrs = attributes(raw)
    return Counters(
        _int(attrs.get(CTA_COUNTERS_PACKETS), _BE64) or 0,
        _int(attrs.get(CTA_COUNTERS_BYTES), _BE64) or 0,
    )


def _timestamps(raw: bytes | None) -> tuple[float | None, float | None]:
    if raw is None:
        return None, None
    attrs = attributes(raw)
    start = _int(attrs.get(CTA_TIMESTAMP_START), _BE64)
    stop = _int(attrs.get(CTA_TIMESTAMP_STOP), _BE64)
    return (None if start is None else start / 1e9, None if not stop else stop / 1e9)


def _int(raw: bytes | None, shape: struct.Struct) -> int | None:
    if raw is None or len(raw) < shape.size:
        return None
    return int(shape.unpack_from(raw)[0])


def idle_timeout(event: CtEvent, timeouts: dict[str, float]) -> float:
    """How long the entry stayed after its last packet when it expired: the timeout of its
    final state (`timeouts` maps sysctl names without the `nf_conntrack_` prefix to seconds,
    as `read_timeouts` gives them). 0 when unknown (SCTP, other protocols)."""
    protocol = event.original.protocol
    if protocol == TCP and event.tcp_state is not None and event.tcp_state < len(TCP_STATES):
        return timeouts.get(f"tcp_timeout_{TCP_STATES[event.tcp_state]}", 0.0)
    if protocol == UDP:
        assured = bool(event.status & IPS_ASSURED)
        return timeouts.get("udp_timeout_stream" if assured else "udp_timeout", 0.0)
    return 0.0


def read_timeouts() -> dict[str, float]:
    """The TCP and UDP conntrack timeouts of the calling thread's namespace, in seconds."""
    found: dict[str, float] = {}
    for path in SYSCTL_DIR.glob("nf_conntrack_*_timeout*"):
        name = path.name.removeprefix("nf_conntrack_")
        if name.startswith(("tcp_", "udp_")):
            with contextlib.suppress(OSError, ValueError):
                found[name] = float(path.read_text())
    return found


def enable_accounting() -> None:
    """Turn on byte/packet counters and start/stop times for new connections in the calling
    thread's network namespace (/proc/sys/net is resolved per thread)."""
    for name, value in SYSCTLS.items():
        (SYSCTL_DIR / name).write_text(value)


def reap_request() -> bytes:
    """A dump of the entries whose mark has every bit set: in practice none. Dumping walks the
    whole conntrack table and kills every expired entry it passes, before any filter (the
    kernel's `ctnetlink_dump_table`), which is what `conntrack -L` does too."""
    everything = _BE32.pack(0xFFFFFFFF)
    return (nfgen(socket.AF_UNSPEC, 0) + attribute(CTA_MARK, everything)
            + attribute(CTA_MARK_MASK, everything))


class ExpiryReaper:
    """Makes the kernel deliver DESTROY for connections that have ended.

    An expired entry is only destroyed (and its DESTROY event sent) when the kernel's garbage
    collector reaches it, and that worker's interval adapts to the timeouts of every entry on
    the machine, up to a minute or more: measured here, DESTROY for an entry expired a second
    ago came 5 s to over 90 s later. A table dump destroys expired entries on its way, so one
    empty dump per second (`reap`, a few ms of kernel time for the whole table) bounds the
    delay to about a second. The dump walks the global table: it reaps expired entries of
    every namespace, which the collector would otherwise do later anyway.
    """

    def __init__(self) -> None:
        self.netlink = NetlinkSocket(NETLINK_NETFILTER, rcvbuf=1 << 20)

    def reap(self) -> int:
        """One empty dump; returns how many entries it listed (0 unless some has mark ~0)."""
        return len(self.netlink.dump(GET_TYPE, reap_request()))

    def close(self) -> None:
        self.netlink.close()


class ConntrackSocket:
    """Subscribed to conntrack NEW and DESTROY in the namespace current when it is created.
    There is no sequence number to count losses by: `lost` is the number of receive-buffer
    overflows (each one or more events)."""

    GROUPS = (1 << (NFNLGRP_CONNTRACK_NEW - 1)) | (1 << (NFNLGRP_CONNTRACK_DESTROY - 1))

    def __init__(self) -> None:
        self.netlink = NetlinkSocket(NETLINK_NETFILTER, groups=self.GROUPS)

    @property
    def lost(self) -> int:
        return self.netlink.overflows

    def fileno(self) -> int:
        return self.netlink.fileno()

    def close(self) -> None:
        self.netlink.close()

    def receive(self, *, received: float, block: bool = True) -> list[CtEvent]:
        return [
            event
            for msg in self.netlink.receive(block=block)
            if (event := parse_event(msg, received=received)) is not None
        ]


__all__ = [
    "ConntrackSocket",
    "Counters",
    "CtEvent",
    "CtEventType",
    "ExpiryReaper",
    "enable_accounting",
    "idle_timeout",
    "parse_event",
    "read_timeouts",
]
