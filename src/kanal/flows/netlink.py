"""Raw AF_NETLINK sockets and message framing, standard library only.

pyroute2 lost conntrack events under load (see LINUX-NOTES.md), and has no NFLOG at all, so the
flow collector reads both with this module: a `NetlinkSocket` (large receive buffer, requests
acknowledged, overflows counted) and pure functions that split a datagram into messages and a
message into attributes. What the messages *mean* is `kanal.flows.nflog` and
`kanal.flows.conntrack`'s business.

```
nlmsghdr   u32 len | u16 type | u16 flags | u32 seq | u32 pid        (host byte order)
nfgenmsg   u8 family | u8 version | be16 res_id                         (netfilter messages)
nlattr     u16 len | u16 type (NLA_F_NESTED 0x8000, NLA_F_NET_BYTEORDER 0x4000) | payload, 4-aligned
```

A socket created while the calling thread is inside a network namespace (`entered(name)`) stays
bound to that namespace: the collector opens its sockets there and reads them from anywhere.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from kanal.errors import DataplaneError

NETLINK_NETFILTER = 12

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300

NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

NFNETLINK_V0 = 0

_HEADER = struct.Struct("=IHHII")
_NFGEN = struct.Struct(">BBH")  # family, version, res_id (big-endian)
_ATTR = struct.Struct("=HH")
_ERROR = struct.Struct("=i")
SOL_NETLINK = 270
_SO_RCVBUFFORCE = 33

DEFAULT_RCVBUF = 16 * 1024 * 1024
"""Bytes of kernel receive buffer: about 60k NFLOG messages of 256 bytes, i.e. seconds of
backlog at the rates the benchmark sustains, before the kernel drops (ENOBUFS)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One netlink message: its type, flags, sequence number and payload (after the header)."""

    type: int
    flags: int
    seq: int
    payload: bytes


def align(length: int) -> int:
    return (length + 3) & ~3


def split_messages(data: bytes) -> Iterator[Message]:
    """The messages of one datagram (truncated trailing bytes are ignored, never misread)."""
    offset, end = 0, len(data)
    while offset + _HEADER.size <= end:
        length, kind, flags, seq, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > end:
            return
        yield Message(kind, flags, seq, data[offset + _HEADER.size : offset + length])
        offset += align(length)


def attributes(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attribute type (flags masked off) -> payload, for `data[offset:]`. A later attribute of
    the same type replaces an earlier one (netfilter sends each at most once)."""
    found: dict[int, bytes] = {}
    end = len(data)
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > end:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + _ATTR.size : offset + length]
        offset += align(length)
    return found


def nfgen_header(payload: bytes) -> tuple[int, int]:
    """`(family, res_id)` of a netfilter message's nfgenmsg."""
    family, _, res_id = _NFGEN.unpack_from(payload)
    return family, res_id


def attribute(kind: int, payload: bytes, *, nested: bool = False) -> bytes:
    """One encoded attribute, padded to 4 bytes."""
    length = _ATTR.size + len(payload)
    flag = NLA_F_NESTED if nested else 0
    return _ATTR.pack(length, kind | flag) + payload + b"\0" * (align(length) - length)


def nfgen(family: int, res_id: int) -> bytes:
    return _NFGEN.pack(family, NFNETLINK_V0, res_id)


def message(kind: int, flags: int, seq: int, payload: bytes) -> bytes:
    """One encoded message (the header's pid is 0: the kernel fills in the sender)."""
    return _HEADER.pack(_HEADER.size + len(payload), kind, flags, seq, 0) + payload


class NetlinkSocket:
    """One raw netlink socket: `request` (acknowledged configuration) and `receive` (events).

    `groups` is the bind-time multicast bitmask (group g is bit g-1). The receive buffer is
    forced to `rcvbuf` bytes (SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the kernel caps
    SO_RCVBUF at net.core.rmem_max). When the kernel cannot queue an event it drops it and the
    next `recv` fails with ENOBUFS: `overflows` counts those, never silently.
    """

    def __init__(self, protocol: int, *, groups: int = 0, rcvbuf: int = DEFAULT_RCVBUF) -> None:
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        except OSError as exc:
            raise DataplaneError(f"cannot open a netlink socket (protocol {protocol}): {exc}") \
                from exc
        self.overflows = 0
        self._seq = 0
        self._buffer = bytearray(1 << 20)
        try:
            self._set_rcvbuf(rcvbuf)
            self.sock.bind((0, groups))
        except OSError as exc:
            self.sock.close()
            raise DataplaneError(f"cannot bind a netlink socket to groups {groups:#x}: {exc}") \
                from exc

    def _set_rcvbuf(self, size: int) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, payload: bytes, *, flags: int = 0) -> None:
        """Send one request and wait for its acknowledgement; DataplaneError if refused."""
        self._seq += 1
        seq = self._seq
        self.sock.send(message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, payload))
        while True:
            for msg in split_messages(self.sock.recv(65536)):
                if msg.type == NLMSG_ERROR and msg.seq == seq:
                    (code,) = _ERROR.unpack_from(msg.payload)
                    if code:
                        raise DataplaneError(
                            f"netlink request {kind:#06x} refused: {os.strerror(-code)}"
                        )
                    return

    def dump(self, kind: int, payload: bytes) -> list[Message]:
        """Send one dump request and return every message of the answer (until NLMSG_DONE);
        DataplaneError if refused. Meant for a socket without multicast groups."""
        self._seq += 1
        seq = self._seq
        self.sock.send(message(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, payload))
        found: list[Message] = []
        while True:
            for msg in split_messages(self.sock.recv(65536)):
                if msg.seq != seq:
                    continue
                if msg.type == NLMSG_DONE:
                    return found
                if msg.type == NLMSG_ERROR:
                    (code,) = _ERROR.unpack_from(msg.payload)
                    raise DataplaneError(
                        f"netlink dump {kind:#06x} refused: {os.strerror(-code)}"
                    )
                found.append(msg)

    def receive(self, *, block: bool = True) -> list[Message]:
        """The messages of one datagram; [] when nothing is queued (non-blocking) or the kernel
        reported an overflow (counted in `overflows`)."""
        try:
            size = self.sock.recv_into(self._buffer, 0, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return []
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self.overflows += 1
                return []
            raise DataplaneError(f"netlink receive failed: {exc}") from exc
        return list(split_messages(bytes(self._buffer[:size])))


__all__ = [
    "NETLINK_NETFILTER",
    "Message",
    "NetlinkSocket",
    "attribute",
    "attributes",
    "message",
    "nfgen",
    "nfgen_header",
    "split_messages",
]
