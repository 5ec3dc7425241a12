"""Benchmark flow collection and print a README table.

1. Ingest on one core: NFLOG messages, built byte by byte as the kernel sends them for the
   connections one node of a generated cluster (1k pods, 100 NetworkPolicies, 10 ANPs and a
   BANP) would log, go through the collector's path: netlink framing -> `parse_packet` ->
   `FlowPipeline` (attribution: log table + engine, with explain's sentence) -> `FlowStore`
   (SQLite, batches of `--batch`, as the collector drains its socket). Warm: connections repeat
   2,000 pod pairs and ports with new source ports (how real traffic looks to the cache);
   cold: every event a different (pair, port), so every event pays an `explain`. A third run
   adds the conntrack NEW and DESTROY of every allowed connection (3 messages per connection).
   The log id of each event is the one the node's table logs for explain's deciding step (the
   renderer's tests prove the table logs exactly that). The process collects garbage as the
   collector process does (`collector.tune_gc`).
2. Store size per million flows: the ingested database's pages per record, times a million,
   for the warm and the cold run (every default deny's sentence names its pod pair: the store
   keeps one pattern per decision and port, `tables.summary_pattern`).
3. End to end (root): a 2-node minilab (tests/minilab.py) with tests/flows/cluster.py's
   policies rendered with a log group, one collector *process* per node
   (`collector_command`), UDP datagrams each from a new source port (a new connection, logged
   by the kernel) at `--rate` per second; a reader polls the store every 2 ms and takes the
   delay from the send to the moment the record is readable. Only NFLOG records are timed
   (a conntrack-only record waits `DEFAULT_GRACE_S` for log events on purpose).

Run: `.venv/bin/python bench/bench_flows.py [--events 200000] [--e2e 5000 --rate 1000]`
(`--no-e2e` without root).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import random
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # minilab and the flow tests' cluster

from generate import ClusterSpec, generate  # noqa: E402
from kanal.engine import PolicyEngine  # noqa: E402
from kanal.flows.attribute import Attributor, decision_of, same_decision  # noqa: E402
from kanal.flows.collector import tune_gc  # noqa: E402
from kanal.flows.conntrack import parse_event  # noqa: E402
from kanal.flows.filters import FlowFilter  # noqa: E402
from kanal.flows.netlink import split_messages  # noqa: E402
from kanal.flows.nflog import parse_packet  # noqa: E402
from kanal.flows.pipeline import FlowPipeline  # noqa: E402
from kanal.flows.store import FlowStore  # noqa: E402
from kanal.model.objects import Direction, Protocol  # noqa: E402
from kanal.render import LogEntry, RenderOptions, render_node  # noqa: E402

PROTO = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
PORTS = [(80, Protocol.TCP), (8080, Protocol.TCP), (5432, Protocol.TCP), (9090, Protocol.TCP),
         (53, Protocol.UDP), (50051, Protocol.TCP)]


# -- messages as the kernel sends them (same layout as tests/flows/messages.py) ---------------


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _netlink(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, 0, 0) + payload


def _ip(src: str, dst: str, proto: int, sport: int, dport: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    l4 = struct.pack(">HH", sport, dport) + b"\0" * 16
    if s.version == 4:
        return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                           s.packed, d.packed) + l4
    return struct.pack(">IHBB16s16s", 0x60000000, len(l4), proto, 64, s.packed, d.packed) + l4


def nflog_message(prefix: str, src: str, *, dst: str, proto: int, sport: int, dport: int) -> bytes:
    body = (struct.pack("=BB", 2, 0) + struct.pack(">H", 100)
            + _attr(1, struct.pack(">HBB", 0x0800, 2, 0)) + _attr(4, struct.pack(">I", 3))
            + _attr(5, struct.pack(">I", 4)) + _attr(9, _ip(src, dst, proto, sport, dport))
            + _attr(10, prefix.encode() + b"\0") + _attr(12, struct.pack(">I", sport)))
    return _netlink(4 << 8, body)


def ct_message(*, destroy: bool, src: str, dst: str, proto: int, sport: int, dport: int) -> bytes:
    def nested(kind: int, payload: bytes) -> bytes:
        return _attr(kind | 0x8000, payload)

    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    a, b = (1, 2) if s.version == 4 else (3, 4)

    def tup(kind: int, x: ipaddress.IPv4Address | ipaddress.IPv6Address,
            y: ipaddress.IPv4Address | ipaddress.IPv6Address, p: int, q: int) -> bytes:
        ports = (_attr(1, bytes([proto])) + _attr(2, struct.pack(">H", p))
                 + _attr(3, struct.pack(">H", q)))
        return nested(kind, nested(1, _attr(a, x.packed) + _attr(b, y.packed)) + nested(2, ports))

    body = struct.pack("=BB", 2, 0) + struct.pack(">H", 0) + tup(1, s, d, sport, dport) \
        + tup(2, d, s, dport, sport) + _attr(3, struct.pack(">I", 0xE))
    if destroy:
        counters = _attr(1, struct.pack(">Q", 6)) + _attr(2, struct.pack(">Q", 900))
        body += nested(9, counters) + nested(10, counters)
        body += nested(20, _attr(1, struct.pack(">Q", 10**18)) + _attr(2, struct.pack(">Q",
                                                                                   10**18 + 10**9)))
        return _netlink((1 << 8) | 2, body)
    return _netlink(1 << 8, body, flags=0x600)


# -- events a node logs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    prefix: str
    src: str
    dst: str
    proto: int
    dport: int
    allowed: bool


def _index(table: dict[str, LogEntry]) -> dict[tuple[object, ...], str]:
    return {(e.direction, e.outcome, e.tier, e.policy, e.rule_index, e.isolating): i
            for i, e in table.items() if not e.fail_closed}


def logged_events(engine: PolicyEngine, node: str, table: dict[str, LogEntry], *,
                  count: int, rng: random.Random) -> list[Logged]:
    """`count` distinct (pair, port) connections touching `node` and the log events each
    gives there (one or two), in the order the kernel would log them."""
    index = _index(table)
    pods = list(engine.pods().values())
    local = [p for p in pods if p.node_name == node]
    seen: set[tuple[str, str, int]] = set()
    found: list[Logged] = []
    while len(seen) < count:
        a, b = rng.choice(local), rng.choice(pods)
        src, dst = (a, b) if rng.random() < 0.5 else (b, a)
        port, proto = rng.choice(PORTS)
        key = (src.key, dst.key, port)
        if src.key == dst.key or key in seen or not src.ips or not dst.ips:
            continue
        seen.add(key)
        verdict = engine.explain(src.key, dst.key, port, proto)
        for direction, subject in ((Direction.EGRESS, src), (Direction.INGRESS, dst)):
            decision = verdict.egress if direction is Direction.EGRESS else verdict.ingress
            step = decision.deciding
            if subject.node_name != node:
                continue
            prefix = index.get((direction, step.outcome, step.tier, step.policy,
                                step.rule_index, step.isolating))
            if prefix is not None:
                assert same_decision(decision_of(table[prefix]), step)
                conn = engine.connection(src.key, dst.key, port, proto)
                found.append(Logged(prefix, str(conn.source.ip), str(conn.destination.ip),
                                    PROTO[proto], port, step.outcome.allows))
            if not step.outcome.allows:
                break
    return found


# -- 1. ingest ---------------------------------------------------------------------------------


@dataclass
class Ingest:
    events: int
    seconds: float
    cpu: float
    store: Path
    records: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def ingest(engine: PolicyEngine, node: str, table: dict[str, LogEntry], events: list[Logged],
           *, total: int, batch: int, conntrack: bool, directory: Path) -> Ingest:
    """Feed `total` messages cycling through `events` (new source port each time)."""
    messages: list[bytes] = []
    sport = 1024
    while len(messages) < total:
        for e in events:
            sport = sport + 1 if sport < 65535 else 1024
            messages.append(nflog_message(e.prefix, e.src, dst=e.dst, proto=e.proto,
                                          sport=sport, dport=e.dport))
            if conntrack and e.allowed:
                for destroy in (False, True):
                    messages.append(ct_message(destroy=destroy, src=e.src, dst=e.dst,
                                               proto=e.proto, sport=sport, dport=e.dport))
            if len(messages) >= total:
                break
    del messages[total:]
    path = directory / f"ingest-{secrets.token_hex(3)}.db"
    store = FlowStore(path)
    pipeline = FlowPipeline(store, Attributor(engine, table, node=node), timeouts={},
                            grace_s=0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    now = time.time()
    for start in range(0, len(messages), batch):
        logs, cts = [], []
        for data in messages[start:start + batch]:
            for msg in split_messages(data):
                if msg.type == 4 << 8:
                    event = parse_packet(msg, received=now)
                    if event is not None:
                        logs.append(event)
                elif (ct := parse_event(msg, received=now)) is not None:
                    cts.append(ct)
        pipeline.on_log_events(logs)
        pipeline.on_ct_events(cts, now=now)
        pipeline.tick(now=now)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    records = store.stats()["rows"]
    store.close()
    return Ingest(len(messages), wall, cpu, path, records)


# -- 3. end to end --------------------------------------------------------------------------


def end_to_end(count: int, rate: float, directory: Path) -> dict[str, float]:
    import minilab
    from flows import cluster
    from kanal.dataplane.netns import entered, list_netns
    from kanal.dataplane.nft import Nft, load_table_atomically
    from kanal.flows.collector import collector_command
    from kanal.lab.servers import PodServers, ServedPod
    from kanal.render import table_text

    prefix = f"bf{secrets.token_hex(2)}-"
    lab = minilab.build(prefix, backend="vxlan")
    procs: list[subprocess.Popen[str]] = []
    try:
        docs = cluster.documents([p.node for p in lab.pods], [str(p.ip) for p in lab.pods])
        engine = cluster.engine(docs)
        for node in lab.nodes:
            with Nft(node) as nft:
                load_table_atomically(nft, table_text(
                    render_node(engine, node, RenderOptions(log_group=100))))
        manifests = cluster.write(directory / "cluster.json", docs)
        db = directory / "e2e.db"
        for node in lab.nodes:
            ready = directory / f"{node}.ready"
            argv = collector_command(node=node, netns=node, group=100, db=db,
                                     manifests=manifests, ready_file=ready)
            procs.append(subprocess.Popen(argv, stderr=subprocess.PIPE, text=True))
            _wait(ready.exists, 15)
        web, client_b, other = lab.pods[0], lab.pods[2], lab.pods[3]
        served = PodServers([ServedPod("x/web", web.netns, web.ip, ((53, Protocol.UDP),))])
        served.bind()
        server = threading.Thread(target=served.serve)
        server.start()
        try:
            return _measure(db, [client_b.netns, other.netns], dst=str(web.ip), count=count,
                            rate=rate, entered=entered)
        finally:
            served.stop()
            server.join()
            served.close()
    finally:
        for proc in procs:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
            for line in err.splitlines():
                if "warning" in line or "error" in line:
                    print(line, file=sys.stderr)
        minilab.teardown(lab)
        assert not list_netns(prefix)


def _measure(db: Path, sources: list[str], *, dst: str, count: int, rate: float,
             entered: Callable[[str], contextlib.AbstractContextManager[None]]
             ) -> dict[str, float]:
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()

    store = FlowStore(db, create=False, poll_interval=0.002)
    start_after = store.last_id()  # before the first send

    def watch() -> None:
        after = start_after
        while not done.is_set():
            for record in store.query(FlowFilter(after_id=after, port=53)):
                assert record.id is not None
                after = record.id
                if record.source.value == "nflog" and record.src.port is not None:
                    seen.setdefault(record.src.port, time.time())
            time.sleep(0.002)
        store.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    sockets: list[socket.socket] = []
    first = time.time()
    for i in range(count):
        netns = sources[i % 2]
        with entered(netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = 20000 + i
        sock.bind(("0.0.0.0", port))
        start = time.time()
        sock.sendto(b"kanal-bench", (dst, 53))
        sent[port] = start
        sockets.append(sock)
        if len(sockets) > 200:
            sockets.pop(0).close()
        pause = first + (i + 1) / rate - time.time()
        if pause > 0:
            time.sleep(pause)
    _wait(lambda: len(seen) >= count, 10)
    done.set()
    watcher.join()
    for sock in sockets:
        sock.close()
    missing = sorted(set(sent) - set(seen))
    if missing:
        print(f"not recorded: source ports {missing[:20]}", file=sys.stderr)
    delays = sorted(seen[p] - sent[p] for p in seen if p in sent)
    return {"sent": count, "recorded": len(seen), "p50": _pct(delays, 50),
            "p99": _pct(delays, 99), "max": delays[-1] if delays else float("nan"),
            "rate": count / (max(sent.values()) - min(sent.values()) or 1)}


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def _wait(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


# -- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    manifests = generate(ClusterSpec(pods=1000, policies=100, admin_policies=10, baseline=True))
    engine = PolicyEngine.from_manifests(manifests)
    node = min(n.name for n in manifests.nodes)
    table = render_node(engine, node, RenderOptions(log_group=100)).log_table()
    rng = random.Random(1)
    tune_gc()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        warm = logged_events(engine, node, table, count=2000, rng=rng)
        cold = logged_events(engine, node, table, count=args.events // 2, rng=rng)
        print(f"{len(warm)} warm / {len(cold)} cold events; "
              f"{sum(e.allowed for e in warm)} warm allowed", file=sys.stderr)
        for label, events, conntrack in (("warm", warm, False), ("cold", cold, False),
                                          ("warm + conntrack NEW/DESTROY", warm, True)):
            result = ingest(engine, node, table, events, total=args.events, batch=args.batch,
                            conntrack=conntrack, directory=directory)
            rows.append((f"ingest, {label} ({args.events:,} messages, batches of "
                         f"{args.batch})",
                         f"{result.rate:,.0f} msg/s ({result.events / result.cpu:,.0f} per "
                         "CPU-second)", "≥ 20k/s"))
            if not conntrack:
                size = FlowStore(result.store, create=False)
                used = size.size_bytes()
                size.close()
                per_million = used / result.records * 1e6
                on_disk = os.path.getsize(result.store)
                rows.append((f"store size, {label} ({result.records:,} records: "
                             f"{used / 2**20:.1f} MiB of pages, file {on_disk / 2**20:.1f} MiB)",
                             f"{per_million / 2**20:,.0f} MiB per million flows", ""))
        if args.e2e:
            found = end_to_end(args.e2e, args.rate, directory)
            rows.append((f"end to end, packet -> readable record ({found['sent']:.0f} new UDP "
                         f"connections at {found['rate']:,.0f}/s, 2 nodes, collector "
                         "processes)",
                         f"p50 {found['p50'] * 1000:.1f} ms, p99 {found['p99'] * 1000:.1f} ms, "
                         f"max {found['max'] * 1000:.1f} ms; {found['recorded']:.0f}/"
                         f"{found['sent']:.0f} recorded", "p99 ≤ 1 s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--e2e", type=int, default=5000, help="connections (0: skip)")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--no-e2e", dest="e2e", action="store_const", const=0)
    args = parser.parse_args()
    if args.e2e and os.geteuid() != 0:
        sys.exit("the end-to-end part needs root (network namespaces): use --no-e2e")
    rows = run(args)
    print(f"\n`{' '.join(['.venv/bin/python', 'bench/bench_flows.py', *sys.argv[1:]])}`\n")
    print("| measurement | result | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

