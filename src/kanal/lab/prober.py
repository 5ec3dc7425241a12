"""Try real connections between lab pods: TCP connect + read, UDP echo, SCTP INIT/INIT-ACK.

The calling thread enters the source pod's netns only to create the socket (a socket stays in
its netns), then talks from wherever it is. Policy drops denied packets (no RST, no ICMP), so
"denied" looks like a timeout: `timeout_s` is both the cost of every denied probe and the
patience granted to an allowed one (keep it above the lab's worst round trip; 1 s default).
A reset or an ICMP error is reported distinctly in `detail` and counted as not connected.

Probing does not decide what *should* happen (that is the engine's job) and does not retry.
"""

from __future__ import annotations

import errno
import random
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address

from kanal.dataplane.netns import entered
from kanal.lab import sctp
from kanal.model.objects import Protocol

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_PARALLELISM = 16
_PROBE_PAYLOAD = b"kanal-probe\n"
_IP_RECVERR = 11


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection attempt: from the pod in `src_netns` to `dst_ip:port/protocol`."""

    src_netns: str
    dst_ip: IPv4Address
    port: int
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """`connected`: the handshake (TCP), an echo (UDP) or an INIT-ACK (SCTP) came back.
    `detail` says what happened in words (the server's reply, `timed out`, `refused ...`)."""

    connected: bool
    detail: str
    elapsed_s: float


def probe(target: Probe, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> ProbeResult:
    """Run one probe. A missing source netns raises DataplaneError: that is a broken lab, not
    a connectivity result."""
    start = time.monotonic()
    deadline = start + timeout_s
    with _socket_in(target.src_netns, target.protocol) as sock:
        if target.protocol is Protocol.TCP:
            connected, detail = _tcp(sock, target, deadline)
        elif target.protocol is Protocol.UDP:
            connected, detail = _udp(sock, target, deadline)
        else:
            connected, detail = _sctp(sock, target, deadline)
    return ProbeResult(connected, detail, time.monotonic() - start)


def probe_many(
    targets: Sequence[Probe],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    parallelism: int = DEFAULT_PARALLELISM,
) -> list[ProbeResult]:
    """Run `targets` with at most `parallelism` in flight; results in the order of `targets`.

    Each worker thread enters the source netns per probe (setns is per thread). Wall time is
    about ceil(denied / parallelism) * timeout_s when most probes are denied.
    """
    if not targets:
        return []
    workers = max(1, min(parallelism, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kanal-probe") as pool:
        return list(pool.map(lambda t: probe(t, timeout_s=timeout_s), targets))


def _socket_in(netns: str, protocol: Protocol) -> socket.socket:
    with entered(netns):
        if protocol is Protocol.TCP:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if protocol is Protocol.UDP:
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.000001)


def _error_detail(exc: OSError, refused: str) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return f"refused ({refused})"
    if exc.errno == errno.ENOPROTOOPT:
        return "refused (ICMP protocol unreachable)"
    return f"unreachable: {exc.strerror or exc}"


def _tcp(sock: socket.socket, target: Probe, deadline: float) -> tuple[bool, str]:
    sock.settimeout(_remaining(deadline))
    try:
        sock.connect((str(target.dst_ip), target.port))
    except TimeoutError:
        return False, "timed out (no SYN-ACK: dropped?)"
    except OSError as exc:
        return False, _error_detail(exc, "RST")
    return True, _read_line(sock, deadline)


def _read_line(sock: socket.socket, deadline: float) -> str:
    """Read the server's one-line greeting; an allowed connection without one is still
    connected (the port may be served by something else than the lab servers)."""
    data = b""
    try:
        while b"\n" not in data:
            sock.settimeout(_remaining(deadline))
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, OSError):
        pass
    reply = data.decode(errors="replace").strip()
    return f"connected, reply {reply!r}" if reply else "connected, no reply"


def _udp(sock: socket.socket, target: Probe, deadline: float) -> tuple[bool, str]:
    try:
        # connect() makes ICMP errors (port unreachable) surface as ECONNREFUSED on recv.
        sock.connect((str(target.dst_ip), target.port))
        sock.send(_PROBE_PAYLOAD)
        sock.settimeout(_remaining(deadline))
        reply = sock.recv(2048)
    except TimeoutError:
        return False, "timed out (no echo: dropped?)"
    except OSError as exc:
        return False, _error_detail(exc, "ICMP port unreachable")
    return True, f"echo {reply.decode(errors='replace').strip()!r}"


def _sctp(sock: socket.socket, target: Probe, deadline: float) -> tuple[bool, str]:
    src_port = random.randint(49152, 65535)
    tag = random.randint(1, 0xFFFFFFFF)
    init = sctp.build_init(
        src_port=src_port, dst_port=target.port, fields=sctp.InitFields(initiate_tag=tag)
    )
    try:
        # IP_RECVERR + connect(): ICMP errors about this peer raise on recv; and the raw socket
        # then only receives SCTP from dst_ip (it would otherwise see all SCTP in the netns).
        sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        sock.connect((str(target.dst_ip), 0))
        sock.send(init)
        return _await_init_ack(sock, target, src_port, tag, deadline)
    except TimeoutError:
        return False, "timed out (no INIT-ACK: dropped?)"
    except OSError as exc:
        return False, _error_detail(exc, "ICMP port unreachable")


def _await_init_ack(
    sock: socket.socket, target: Probe, src_port: int, tag: int, deadline: float
) -> tuple[bool, str]:
    while True:
        sock.settimeout(_remaining(deadline))
        ip = sctp.parse_ipv4(sock.recv(65535))
        packet = sctp.parse_packet(ip.payload) if ip is not None else None
        if packet is None or (packet.src_port, packet.dst_port) != (target.port, src_port):
            continue
        if packet.verification_tag != tag:
            continue
        if packet.chunk_type == sctp.CHUNK_ABORT:
            return False, "refused (ABORT)"
        if packet.chunk_type == sctp.CHUNK_INIT_ACK:
            cookie = sctp.state_cookie(packet) or b""
            return True, f"INIT-ACK, cookie {cookie.decode(errors='replace').strip()!r}"


__all__ = ["DEFAULT_TIMEOUT_S", "Probe", "ProbeResult", "probe", "probe_many"]
