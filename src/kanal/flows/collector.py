"""The per-node flow collector: `python -m kanal.flows.collector --node NAME --netns NS
--group N --db PATH --manifests PATH [--ready-file PATH]`.

```
  inside --netns (sockets stay bound to it):
    nf_conntrack_acct=1, nf_conntrack_timestamp=1, conntrack timeouts read
    NflogSocket(group N) ─┐
    ConntrackSocket ──────┤ select ──► FlowPipeline ──► FlowStore (--db, shared by all nodes)
                          │              ▲  └──stored──► AlertDispatcher ──► alerts table (--db), a
                          │              │               (AlertRules)       log line, webhook, label
  --manifests ──(poll version every reload_interval)── engine ─► render_node(node,
                                            RenderOptions(log_group=N)).log_table() ─► Attributor
```

It renders its node with the same log group the table was rendered with, so its log table is
the kernel's: log ids are content hashes of the decisions, identical on every node and across
reloads. An id it does not know triggers a reload at once (the table may be newer than the last
poll); still unknown, it is counted (`unknown_log_ids`) and reported on stderr, never dropped
silently. Ids it loaded before stay known (they are content hashes: their meaning never
changes), so a table older than the manifests is attributed too. No Python runs per packet of
an established connection: the kernel logs only the first packet (the renderer's log rules sit
behind `ct state established,related accept`).

Alerts: the AlertRules of `--manifests` are evaluated on every record stored (see
`kanal.flows.alerting`); a `quarantine` action labels pods in `--manifests` when it is a
datastore (with a snapshot file it cannot, and each alert says so).

Readiness: once both sockets are bound and the first load is done, the line `ready` is written
atomically to `--ready-file`. SIGTERM or SIGINT: flush, exit 0. A netns or group that cannot be
used exits 3 with the reason on stderr; manifests that cannot be loaded at start exit 2.

The lab hook (what `kanal lab` does to have flows; `collector_command` gives the argv):

1. start every node's agent with `--log-group DEFAULT_LOG_GROUP` (one group for all nodes: it
   is per netns; a group only adds the log statements, the ids are the same);
2. start one collector per node: `collector_command(node=NAME, netns=NODE_NETNS,
   group=DEFAULT_LOG_GROUP, db=$KANAL_LAB_DIR/flows.db, manifests=$KANAL_LAB_DIR/store.db,
   ready_file=...)`: it reads the datastore the agents read (pods with nodeName and podIP,
   Nodes with their addresses) and polls its revision;
3. wait for the ready files as for the pod servers, keep the pids in the state, stop them with
   SIGTERM on `down` (their main thread is in the root netns, so `netns_pids` does not find
   them: the lab must track them), restart a dead one like an agent.

Without a datastore, `--manifests` takes a snapshot file instead: the documents with every pod
placed (`source.placed_pod`), written with `source.write_snapshot` (atomic) before each table
change.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import select
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO, TypeVar

from kanal.dataplane.netns import entered
from kanal.engine import PolicyEngine
from kanal.errors import KanalError
from kanal.flows.alerting import AlertDispatcher
from kanal.flows.alertstore import DEFAULT_MAX_ALERTS
from kanal.flows.attribute import Attributor, decision_of
from kanal.flows.conntrack import (
    ConntrackSocket,
    CtEvent,
    ExpiryReaper,
    enable_accounting,
    read_timeouts,
)
from kanal.flows.nflog import LogEvent, NflogSocket
from kanal.flows.pipeline import FlowPipeline
from kanal.flows.records import RuleRef
from kanal.flows.source import ManifestSource
from kanal.flows.store import FlowStore, labels_key
from kanal.flows.tables import FlowStoreError
from kanal.render import LogEntry, RenderOptions, render_node
from kanal.render.names import LogId
from kanal.store.sqlite import default_store_path

DEFAULT_LOG_GROUP = 100
DEFAULT_FLOWS_FILE = "flows.db"
_Event = TypeVar("_Event", LogEvent, CtEvent)

MAX_DRAIN = 4096
"""Events read from one socket before the batch is written (bounds a batch under load)."""


GC_THRESHOLDS = (10_000, 10, 100)
"""CPython's collector thresholds in the collector process (default 700, 10, 10)."""


def tune_gc() -> None:
    """Collect reference cycles rarely. Ingesting keeps a few objects per flow alive for a
    while (cached attributions, connections waiting for their end: hundreds of thousands), and
    with the default thresholds CPython traversed all of them again each time they had grown
    by a quarter: a third of the time spent on flows between new pod pairs. Nothing per event
    makes cycles (a reload does: the old engine's), so the youngest generation is collected
    every 10k allocations (about 2 ms), the middle one every 100k (tens of ms) and everything
    after about 10M (a minute at full load), which keeps each pause far below the 1 s a record
    may take."""
    gc.set_threshold(*GC_THRESHOLDS)


def default_flows_path() -> Path:
    """`$KANAL_LAB_DIR/flows.db`, else /var/lib/kanal/lab/flows.db: beside the lab's store."""
    return default_store_path().parent / DEFAULT_FLOWS_FILE


DEFAULT_MAX_AGE_S = 7 * 86400.0
DEFAULT_MAX_ROWS = 5_000_000


@dataclass(frozen=True, slots=True)
class Retention:
    """Flows older than `max_age_s`, beyond `max_rows` or `max_bytes` are dropped, checked every
    `interval_s` (the counters behind `kanal stats` are kept)."""

    max_age_s: float | None = DEFAULT_MAX_AGE_S
    max_rows: int | None = DEFAULT_MAX_ROWS
    max_bytes: int | None = None
    interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    node: str
    group: int
    db: Path
    manifests: Path
    netns: str | None = None
    """None: the calling thread's namespace."""
    reload_interval_s: float = 1.0
    reap_interval_s: float = 1.0
    """How often ended connections are reaped (see `ExpiryReaper`); 0: leave it to the
    kernel's garbage collector (bytes and durations then arrive up to minutes late)."""
    retention: Retention = Retention()
    ready_file: Path | None = None


def collector_command(
    *, node: str, netns: str, group: int, db: Path, manifests: Path,
    ready_file: Path | None = None, python: str = sys.executable,
) -> list[str]:
    """The argv that starts the collector of `node` (for the lab's process management)."""
    argv = [python, "-m", "kanal.flows.collector", "--node", node, "--netns", netns,
            "--group", str(group), "--db", str(db), "--manifests", str(manifests)]
    if ready_file is not None:
        argv += ["--ready-file", str(ready_file)]
    return argv


def rule_catalog(engine: PolicyEngine) -> list[RuleRef]:
    """Every rule of every policy, for each direction the policy applies to."""
    return [
        RuleRef(policy.tier.value, policy.key, direction.value.lower(), rule.index, rule.name,
                rule.action.value)
        for policy in engine.policies()
        for direction in sorted(policy.directions)
        for rule in policy.rules(direction)
    ]


class Collector:
    """One node's collector, in one thread: `open`, then `step` (or `run`) until done, `close`."""

    def __init__(
        self, config: CollectorConfig, *, clock: Callable[[], float] = time.time,
        log: TextIO | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._log = log or sys.stderr
        self.source = ManifestSource(config.manifests)
        self.store = FlowStore(config.db)
        self.nflog: NflogSocket | None = None
        self.conntrack: ConntrackSocket | None = None
        self.reaper: ExpiryReaper | None = None
        self.pipeline: FlowPipeline | None = None
        self._version: object = None
        self._known: dict[LogId, LogEntry] = {}
        """Every log entry ever loaded: an id is a hash of what it means, so an entry stays
        true after its rule is gone, and a table the agent has not replaced yet (older than
        the manifests just loaded) is still attributed, as the kernel ran it."""
        self._next_reload = 0.0
        self._next_prune = 0.0
        self._next_reap = 0.0
        self._lost: Counter[str] = Counter()
        self._warned: set[str] = set()
        self.alerts = AlertDispatcher(
            node=config.node, db=config.db, say=self.say,
            datastore=config.manifests if self.source.is_store else None,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Bind the sockets in the node's netns and load the manifests (raises on failure)."""
        with self._in_netns():
            enable_accounting()
            timeouts = read_timeouts()
            self.nflog = NflogSocket(self.config.group)
            self.conntrack = ConntrackSocket()
            self.reaper = ExpiryReaper() if self.config.reap_interval_s > 0 else None
        attributor = self._load()
        self.pipeline = FlowPipeline(self.store, attributor, timeouts=timeouts)
        self.pipeline.observers.append(self.alerts)
        self.say(f"collecting NFLOG group {self.config.group} and conntrack in "
                 f"{self.config.netns or 'this netns'} into {self.config.db}")
        if self.config.ready_file is not None:
            _write_atomically(self.config.ready_file, "ready\n")

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.tick(now=self.clock())
            self._report_health()
        for sock in (self.nflog, self.conntrack, self.reaper):
            if sock is not None:
                sock.close()
        self.alerts.close()
        self.store.close()
        self.source.close()

    @contextlib.contextmanager
    def _in_netns(self) -> Iterator[None]:
        if self.config.netns is None:
            yield
        else:
            with entered(self.config.netns):
                yield

    def run(self, stop: threading.Event) -> None:
        """Step until `stop`; a flow database that cannot be written (locked too long, disk
        full) is reported and retried a second later, with the records still held (the kernel
        buffers new events meanwhile, up to the sockets' receive buffers)."""
        while not stop.is_set():
            try:
                self.step(timeout=0.05)
            except FlowStoreError as exc:
                self.say(f"warning: {exc}; retrying")
                stop.wait(1.0)

    # -- one iteration ---------------------------------------------------------------------------

    def step(self, *, timeout: float) -> int:
        """Wait up to `timeout` for events, process what arrived, write it; returns the number
        of kernel events read."""
        assert self.nflog is not None and self.conntrack is not None and self.pipeline
        nflog, conntrack = self.nflog.fileno(), self.conntrack.fileno()
        readable, _, _ = select.select([nflog, conntrack], [], [], timeout)
        now = self.clock()
        logs = _drain(self.nflog.receive, now) if nflog in readable else []
        cts = _drain(self.conntrack.receive, now) if conntrack in readable else []
        self.pipeline.on_log_events(logs)
        if self.pipeline.unknown:
            self._reload(force=True, now=now)
            for prefix in self.pipeline.retry_unknown():
                self._warn_once(prefix, f"log id `{prefix}` is in the kernel's table but not in "
                                        "the manifests' rendering: its events are counted, "
                                        "not recorded")
        self.pipeline.on_ct_events(cts, now=now)
        self.pipeline.tick(now=now)
        self._housekeeping(now)
        return len(logs) + len(cts)

    def _housekeeping(self, now: float) -> None:
        assert self.pipeline is not None
        if self.reaper is not None and now >= self._next_reap and self.pipeline.open:
            self._next_reap = now + self.config.reap_interval_s
            self.reaper.reap()  # only while some recorded connection still waits for its end
        if now >= self._next_reload:
            self._reload(force=False, now=now)
            self._report_health()
        if now >= self._next_prune:
            retention = self.config.retention
            self._next_prune = now + retention.interval_s
            self.store.prune(now=now, max_age=retention.max_age_s, max_rows=retention.max_rows,
                             max_bytes=retention.max_bytes)
            self.alerts.prune(now=now, max_age=retention.max_age_s, max_rows=DEFAULT_MAX_ALERTS)

    # -- manifests -------------------------------------------------------------------------------

    def _load(self) -> Attributor:
        self._version = self.source.version()
        manifests = self.source.load()
        engine = PolicyEngine.from_manifests(manifests)
        ruleset = render_node(engine, self.config.node,
                              RenderOptions(log_group=self.config.group))
        table = ruleset.log_table()
        self.store.write_catalog(self.config.node, rule_catalog(engine),
                                 [decision_of(e) for e in table.values()])
        self.say(f"loaded {len(engine.pods())} pods, {len(engine.policies())} policies, "
                 f"{len(table)} log ids for node `{self.config.node}`")
        self._known.update(table)
        self.alerts.load(manifests)
        return Attributor(engine, dict(self._known), node=self.config.node)

    def _reload(self, *, force: bool, now: float) -> None:
        assert self.pipeline is not None
        self._next_reload = now + self.config.reload_interval_s
        try:
            if not force and self.source.version() == self._version:
                return
            attributor = self._load()
        except KanalError as exc:
            self.say(f"warning: keeping the previous manifests: {exc}")
            return
        self.pipeline.attributor = attributor
        self.pipeline.health["reloads"] += 1

    # -- health ----------------------------------------------------------------------------------

    def _report_health(self) -> None:
        """Add what the sockets and the pipeline counted since last time to the store's
        cumulative counters (and say it when the kernel dropped events)."""
        assert self.pipeline is not None and self.nflog is not None
        assert self.conntrack is not None
        node = self.config.node
        deltas: Counter[tuple[str, str]] = Counter()
        for source, lost in (("nflog", self.nflog.lost), ("conntrack", self.conntrack.lost)):
            delta, self._lost[source] = lost - self._lost[source], lost
            if delta:
                self.say(f"warning: the kernel dropped {delta} {source} event(s) "
                         "(receive buffer full)")
                deltas["events_lost", labels_key({"node": node, "source": source})] += delta
        for name, value in self.pipeline.health.items():
            deltas[name, labels_key({"node": node})] += value
        self.pipeline.health.clear()
        deltas.update(self.alerts.counters())
        self.store.add_counters(deltas)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.say(f"warning: {message}")

    def say(self, message: str) -> None:
        self._log.write(f"kanal-flows {self.config.node}: {message}\n")
        self._log.flush()


def _drain(receive: Callable[..., list[_Event]], now: float) -> list[_Event]:
    """Read without blocking until the socket is empty or MAX_DRAIN events were read."""
    events: list[_Event] = []
    while len(events) < MAX_DRAIN:
        got = receive(received=now, block=False)
        if not got:
            break
        events.extend(got)
    return events


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


# -- command line -----------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kanal.flows.collector",
                                     description="Kanal's flow collector for one node.")
    parser.add_argument("--node", required=True, help="the node's name in the manifests")
    parser.add_argument("--netns", help="the node's network namespace (default: this one)")
    parser.add_argument("--group", type=int, default=DEFAULT_LOG_GROUP,
                        help="NFLOG group the node's table logs to")
    parser.add_argument("--db", type=Path, default=None, help="flow database (shared)")
    parser.add_argument("--manifests", type=Path, required=True,
                        help="manifest file/directory (pods with nodeName and podIPs) or a "
                             "kanal datastore file")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--reload-interval", type=float, default=1.0)
    parser.add_argument("--reap-interval", type=float, default=1.0,
                        help="seconds between reaps of ended connections (0: never)")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_S,
                        help="seconds a flow is kept")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    parser.add_argument("--max-bytes", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    config = CollectorConfig(
        node=args.node, group=args.group, db=args.db or default_flows_path(),
        manifests=args.manifests, netns=args.netns, reload_interval_s=args.reload_interval,
        reap_interval_s=args.reap_interval,
        retention=Retention(args.max_age, args.max_rows, args.max_bytes),
        ready_file=args.ready_file,
    )
    tune_gc()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        collector = Collector(config)
        collector.open()
    except KanalError as exc:
        sys.stderr.write(f"kanal-flows {args.node}: error: {exc}\n")
        return exc.exit_code
    try:
        collector.run(stop)
    finally:
        collector.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
