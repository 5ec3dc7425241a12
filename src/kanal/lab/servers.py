"""One process that serves every lab pod's ports: `python -m kanal.lab.servers --spec FILE`.

For each pod and port a socket is created while the (single) thread is inside the pod's netns;
a socket stays in the namespace it was created in, so one selectors loop then serves them all:

- TCP: accept, send one line naming the pod (`<pod> <port>/TCP`), close. Nothing is read: a
  client that sends data first may see the close as a reset.
- UDP: answer every datagram with the same kind of line.
- SCTP: this kernel has no SCTP sockets, so per pod with SCTP ports one raw IPPROTO_SCTP socket
  answers an INIT to a served port with a hand-built INIT-ACK whose State Cookie is that line,
  and an INIT to another port with an ABORT (see `kanal.lab.sctp`). No association follows;
  conntrack sees new, then established. A pod without SCTP ports has no raw socket, and the
  kernel answers an INIT with ICMP protocol unreachable.

Spec (JSON, from a file or `-` for stdin):

    {"pods": [{"name": "default/web-0", "netns": "lab-n0-p0", "ip": "10.244.1.2",
               "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}]}

When every socket is bound the process prints `ready <sockets>` on stdout and, with
`--ready-file`, writes the same line to that file (atomically: write then rename). SIGTERM or
SIGINT stops it cleanly (exit 0). A spec that cannot be served exits 2 before readiness, with the
pod, netns and port in the message. The set of pods is fixed at start: to add or remove pods,
start a new process with the new spec and stop the old one (ports are SO_REUSEADDR).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import selectors
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from types import FrameType

from kanal.dataplane.netns import entered
from kanal.errors import DataplaneError, LabError
from kanal.lab import sctp
from kanal.model.objects import Protocol


@dataclass(frozen=True, slots=True)
class ServedPod:
    """One pod to serve: its name (what replies say), netns, address and ports."""

    name: str
    netns: str
    ip: IPv4Address
    ports: tuple[tuple[int, Protocol], ...]

    def reply(self, port: int, protocol: Protocol) -> bytes:
        return f"{self.name} {port}/{protocol}\n".encode()


def load_spec(text: str) -> list[ServedPod]:
    """Parse the JSON spec; LabError saying what is wrong if it is not one."""
    try:
        document = json.loads(text)
        return [_served_pod(entry) for entry in document["pods"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(f"invalid pod server spec: {type(exc).__name__}: {exc}") from exc


def _served_pod(entry: dict[str, object]) -> ServedPod:
    ports = entry["ports"]
    if not isinstance(ports, list):
        raise TypeError(f"`ports` of {entry['name']} must be a list")
    return ServedPod(
        name=str(entry["name"]),
        netns=str(entry["netns"]),
        ip=IPv4Address(str(entry["ip"])),
        ports=tuple((int(p["port"]), Protocol(p["protocol"])) for p in ports),
    )


def dump_spec(pods: Sequence[ServedPod]) -> str:
    """The JSON spec for `pods` (what the lab writes for the server process)."""
    entries = [
        {
            "name": p.name,
            "netns": p.netns,
            "ip": str(p.ip),
            "ports": [{"port": port, "protocol": str(proto)} for port, proto in p.ports],
        }
        for p in pods
    ]
    return json.dumps({"pods": entries}, indent=1)


Handler = Callable[[socket.socket], None]


class PodServers:
    """Owns every pod socket and the selectors loop that answers on them.

    Single-threaded by design: one thread binds (entering each netns in turn) and serves.
    It does not watch for pod changes and does not log traffic (flows are observed by nft/NFLOG).
    """

    def __init__(self, pods: Sequence[ServedPod]) -> None:
        self._pods = tuple(pods)
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self._stopping = False
        self.replies = 0
        """Requests answered (counted before the answer is sent, so a client that got its
        answer sees the count include it)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)

    def bind(self) -> int:
        """Open and bind every socket; LabError naming the pod, netns and port on failure."""
        for pod in self._pods:
            self._bind_pod(pod)
        return len(self._sockets)

    def _bind_pod(self, pod: ServedPod) -> None:
        sctp_ports = {port for port, proto in pod.ports if proto is Protocol.SCTP}
        for port, proto in pod.ports:
            if proto is not Protocol.SCTP:
                self._open(pod, port, proto)
        if sctp_ports:
            self._open(pod, 0, Protocol.SCTP, sctp_ports=frozenset(sctp_ports))

    def _open(
        self,
        pod: ServedPod,
        port: int,
        proto: Protocol,
        *,
        sctp_ports: frozenset[int] = frozenset(),
    ) -> None:
        try:
            with entered(pod.netns):
                sock = _new_socket(proto)
            self._sockets.append(sock)
            _bind(sock, pod.ip, port, proto)
        except (OSError, DataplaneError) as exc:
            what = f"{port}/{proto}" if proto is not Protocol.SCTP else f"{sorted(sctp_ports)}/SCTP"
            raise LabError(
                f"cannot serve `{pod.name}` {what} on {pod.ip} in netns `{pod.netns}`: {exc}"
            ) from exc
        handler = self._handler(pod, port, proto, sctp_ports)
        self._selector.register(sock, selectors.EVENT_READ, handler)

    def _handler(
        self, pod: ServedPod, port: int, proto: Protocol, sctp_ports: frozenset[int]
    ) -> Handler:
        if proto is Protocol.TCP:
            return lambda s: self._on_tcp(s, pod.reply(port, proto))
        if proto is Protocol.UDP:
            return lambda s: self._on_udp(s, pod.reply(port, proto))
        return lambda s: self._on_sctp(s, pod, sctp_ports)

    def serve(self) -> None:
        """Answer until `stop()` (or a signal routed to it by `main`)."""
        while not self._stopping:
            for key, _ in self._selector.select():
                key.data(key.fileobj)

    def stop(self) -> None:
        """Make `serve` return; safe from a signal handler or another thread."""
        self._stopping = True
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            self._wake_w.send(b"x")

    def close(self) -> None:
        self._selector.close()
        for sock in [*self._sockets, self._wake_r, self._wake_w]:
            sock.close()
        self._sockets.clear()

    def _on_wake(self, sock: socket.socket) -> None:
        while _recv_nowait(sock) is not None:
            pass

    def _on_tcp(self, listener: socket.socket, reply: bytes) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return
            with conn:
                self.replies += 1
                with contextlib.suppress(OSError):  # the client gave up already
                    conn.send(reply, socket.MSG_DONTWAIT)

    def _on_udp(self, sock: socket.socket, reply: bytes) -> None:
        while True:
            try:
                _, peer = sock.recvfrom(2048)
                self.replies += 1
                sock.sendto(reply, peer)
            except BlockingIOError:
                return
            except OSError:
                continue  # e.g. an ICMP error for an earlier reply; keep serving

    def _on_sctp(self, sock: socket.socket, pod: ServedPod, ports: frozenset[int]) -> None:
        while (datagram := _recv_nowait(sock)) is not None:
            answer = init_ack_for(datagram, pod, ports)
            if answer is not None:
                reply, peer = answer
                self.replies += 1
                with contextlib.suppress(OSError):  # e.g. no route back: nothing to do
                    sock.sendto(reply, (str(peer), 0))


def init_ack_for(
    datagram: bytes, pod: ServedPod, ports: frozenset[int]
) -> tuple[bytes, IPv4Address] | None:
    """The answer (and where to send it) to a raw datagram if it is a valid INIT to the pod's
    address: an INIT-ACK for one of `ports`, an ABORT for any other port (as a real SCTP stack
    does, so that a prober can tell "refused" from "dropped"); None for anything else (the raw
    socket sees every SCTP packet to the pod, including answers to its own probes)."""
    ip = sctp.parse_ipv4(datagram)
    if ip is None or ip.dst != pod.ip or ip.protocol != sctp.IPPROTO_SCTP:
        return None
    packet = sctp.parse_packet(ip.payload)
    if packet is None or packet.chunk_type != sctp.CHUNK_INIT or packet.verification_tag != 0:
        return None
    try:
        if packet.dst_port not in ports:
            return sctp.build_abort(packet), ip.src
        fields = sctp.InitFields(
            initiate_tag=random.randint(1, 0xFFFFFFFF), initial_tsn=random.getrandbits(32)
        )
        cookie = pod.reply(packet.dst_port, Protocol.SCTP)
        return sctp.build_init_ack(packet, fields=fields, cookie=cookie), ip.src
    except ValueError:
        return None  # truncated INIT


def _new_socket(proto: Protocol) -> socket.socket:
    if proto is Protocol.TCP:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if proto is Protocol.UDP:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, sctp.IPPROTO_SCTP)


def _bind(sock: socket.socket, ip: IPv4Address, port: int, proto: Protocol) -> None:
    sock.setblocking(False)
    if proto is Protocol.TCP:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(ip), port))  # for the raw socket: only packets to the pod's address
    if proto is Protocol.TCP:
        sock.listen(128)


def _recv_nowait(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(65535)
    except BlockingIOError:
        return None


# --- process entry point ---------------------------------------------------------------------


def _write_ready_file(path: str, line: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(line + "\n")
    os.replace(tmp, path)


def _read_spec(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path) as f:
        return f.read()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kanal.lab.servers", description=__doc__)
    parser.add_argument("--spec", required=True, help="JSON spec file, or - for stdin")
    parser.add_argument("--ready-file", help="write `ready <n>` here once every socket is bound")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 2 if the spec cannot be served."""
    args = _parse_args(argv)
    try:
        servers = PodServers(load_spec(_read_spec(args.spec)))
    except (OSError, LabError) as exc:
        print(f"kanal lab servers: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(servers, args.ready_file)
    finally:
        servers.close()


def _run(servers: PodServers, ready_file: str | None) -> int:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        servers.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        count = servers.bind()
    except LabError as exc:
        print(f"kanal lab servers: {exc}", file=sys.stderr)
        return 2
    line = f"ready {count}"
    if ready_file:
        _write_ready_file(ready_file, line)
    print(line, flush=True)
    servers.serve()
    print(f"stopped after {servers.replies} replies", file=sys.stderr)
    return 0


__all__ = ["PodServers", "ServedPod", "dump_spec", "init_ack_for", "load_spec", "main"]


if __name__ == "__main__":
    sys.exit(main())
