"""Flow collectors of a lab: one `python -m kanal.flows.collector` per node, the lab hook that
`kanal.flows.collector` documents.

```
lab up (flows on) ──► agents started with --log-group 100 (their tables log first packets)
                  ──► per node: shorter conntrack timeouts for ended connections in its netns
                  ──► CollectorFleet.start: collector_command(node, netns, group 100,
                        db=<state dir>/flows.db, manifests=<state dir>/store.db,
                        ready_file=<state dir>/collector-<node>.ready), detached, log
                        collector-<node>.log; wait for every ready file (or the exit, with the log)
                  ──► pods plugged in: their first packet is collected
kanal flows/stats/graph ◄── flows.db (every node's collector writes it)
```

Collectors read the datastore the agents read (pods with their node and address, Nodes), so a
`kanal lab apply` or a `kanal apply` on the lab's store is attributed as it is enforced. Their
main thread stays in the root netns (only their sockets live in the node's), so teardown, which
kills what runs inside lab namespaces, would never find them: the lab keeps their PIDs in its
state, and finds lost ones again by their `--manifests` (the lab's `store.db`). `down` stops
them with SIGTERM (they flush), SIGKILL after a grace period. A dead collector is restarted by
the next lab change, like an agent.

Conntrack reports a connection's bytes when its entry is destroyed, which for a TCP connection
that closed normally is after TIME_WAIT (120 s by default). In a lab, where one runs probes and
looks at the flows a moment later, the node netns get `ENDED_TIMEOUTS` instead: the states of a
connection that has ended (TIME_WAIT, CLOSE) and UDP exchanges expire after a second or two, and
the collector's reaper makes the kernel send the DESTROY within about a second of that. Nothing
else changes: established TCP keeps its timeout. This module does not decide whether a lab has
flows (`Lab.up(flows=...)` does) and does not read flows (the CLI does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kanal.agent import process
from kanal.dataplane.netns import entered
from kanal.errors import DataplaneError, LabError
from kanal.flows.collector import DEFAULT_FLOWS_FILE, DEFAULT_LOG_GROUP, collector_command
from kanal.flows.store import FlowStore
from kanal.flows.tables import FlowStoreError
from kanal.lab.plan import LabPlan
from kanal.store.sqlite import STORE_FILE

LOG_GROUP = DEFAULT_LOG_GROUP
"""The NFLOG group of every node (groups are per netns, so one number serves all)."""
COLLECTOR_MODULE = "kanal.flows.collector"
READY_TIMEOUT_S = 30.0
ENDED_TIMEOUTS = {
    "nf_conntrack_tcp_timeout_time_wait": "1",
    "nf_conntrack_tcp_timeout_close": "1",
    "nf_conntrack_udp_timeout": "2",
}
"""Seconds, for conntrack states a connection is in once it is over (see the module docstring)."""


class CollectorFleet:
    """The flow collectors of one lab, one per node, files `collector-<node>.*` and the flow
    database `flows.db` in the state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def db(self) -> Path:
        return self.directory / DEFAULT_FLOWS_FILE

    @property
    def store_path(self) -> Path:
        return self.directory / STORE_FILE

    def log(self, node: str) -> Path:
        return self.directory / f"collector-{node}.log"

    def ready_file(self, node: str) -> Path:
        return self.directory / f"collector-{node}.ready"

    def start(self, plan: LabPlan, nodes: Sequence[str]) -> dict[str, int]:
        """Start the collectors of `nodes` and wait until each has bound its sockets and
        loaded the store; node -> PID. LabError naming the node, with its log, otherwise
        (the ones started are stopped again)."""
        started: dict[str, int] = {}
        try:
            for node in nodes:
                netns = plan.node(node).netns
                shorten_ended_timeouts(netns)
                started[node] = self._spawn(node, netns)
            self._await_ready(started)
        except BaseException:
            self.stop(started.values())
            raise
        return started

    def _spawn(self, node: str, netns: str) -> int:
        ready = self.ready_file(node)
        ready.unlink(missing_ok=True)
        argv = collector_command(node=node, netns=netns, group=LOG_GROUP, db=self.db,
                                 manifests=self.store_path, ready_file=ready)
        try:
            return process.spawn_detached(argv, self.log(node))
        except OSError as exc:
            raise LabError(f"cannot start the flow collector of node `{node}`: {exc}") from exc

    def _await_ready(self, started: Mapping[str, int]) -> None:
        why = process.wait_ready_files(started, self.ready_file, timeout=READY_TIMEOUT_S)
        if why is not None and why.exited is not None:
            raise LabError(f"the flow collector of node `{why.exited}` exited: "
                           f"{process.tail(self.log(why.exited))}")
        if why is not None:
            names = ", ".join(f"`{n}`" for n in why.late)
            raise LabError(f"the flow collectors of {names} are not ready after "
                           f"{READY_TIMEOUT_S:.0f} s (see collector-<node>.log in "
                           f"`{self.directory}`)")

    def stop(self, pids: Iterable[int], *, strays: bool = False) -> list[int]:
        """SIGTERM (SIGKILL after a grace period) `pids` that are this lab's collectors and,
        with `strays`, every collector of this lab's store; the PIDs signalled."""
        wanted = set(pids)
        mine = [pid for pid in self.strays() if strays or pid in wanted]
        return process.stop(mine)

    def strays(self) -> list[int]:
        """Every running collector whose `--manifests` is this lab's store."""
        return [pid for pid in process.all_pids() if self._owns(pid)]

    def running(self, pids: Mapping[str, int]) -> dict[str, bool]:
        """Node -> whether its collector (by the PID in `pids`) runs."""
        alive = set(self.strays())
        return {node: pid in alive for node, pid in pids.items()}

    def records(self) -> dict[str, int] | None:
        """Flow records written per node (the store's cumulative counters, cheap to read);
        None when the database cannot be read."""
        try:
            store = FlowStore(self.db, create=False, busy_timeout=1.0)
        except FlowStoreError:
            return None
        try:
            found: Counter[str] = Counter()
            for counter in store.counters():
                if counter.name == "flows":
                    found[counter.labels.get("node", "")] += counter.value
            return dict(found)
        except FlowStoreError:
            return None
        finally:
            store.close()

    def _owns(self, pid: int) -> bool:
        argv = process.cmdline(pid)
        if COLLECTOR_MODULE not in argv or "--manifests" not in argv:
            return False
        index = argv.index("--manifests") + 1
        return index < len(argv) and argv[index] == str(self.store_path) and process.alive(pid)


def shorten_ended_timeouts(netns: str) -> None:
    """Set `ENDED_TIMEOUTS` in the node's netns (per-netns sysctls: other namespaces, the
    machine's included, keep theirs)."""
    try:
        with entered(netns):
            for name, value in ENDED_TIMEOUTS.items():
                Path(f"/proc/sys/net/netfilter/{name}").write_text(value)
    except (OSError, DataplaneError) as exc:
        raise LabError(f"cannot set the conntrack timeouts of netns `{netns}`: {exc}") from exc


__all__ = [
    "ENDED_TIMEOUTS",
    "LOG_GROUP",
    "CollectorFleet",
    "shorten_ended_timeouts",
]
