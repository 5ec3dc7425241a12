"""NodeAgent: one node's kernel kept in step with the datastore.

```
store ──Mirror.sync──► events ──EngineFeed──► PolicyEngine          (incremental, every event)
                                   │
                                   ├─ remote pod change ──SetPatcher──► desired ruleset (patched)
                                   ├─ local pod change ──LocalPatcher──► (patched: sets as for a
                                   │    remote pod + its verdict-map entries + the chains, sets
                                   │    and log entries its verdicts add or leave unused)
                                   └─ anything else ──► desired = None (render from scratch)
BoundedFrequencyRunner ──► sync(CHANGES | RESYNC):
   desired ← render_node(engine, node) if None or RESYNC, then quarantine(rejected local pods)
             (render_with_dispatch: the LocalPatcher starts from each local pod's verdicts)
   RESYNC or kernel unknown ──► read_current (drift?) ──► apply_full    (atomic replace)
   only patched ──► patch_text: new sets and chains, the patched sets' and maps' elements,
                    unused chains and sets deleted; one transaction ──► apply_delta
                    (reason `patched`, or `restructured` when chains or sets came or went)
   else plan_update(applied, desired) ──► delta, or apply_full when the structure changed
   a refused delta ──► apply_full;  success ──► applied = desired, revision recorded
```

Guarantees, and how:

- **No gap.** The table is only ever replaced in one transaction (`apply_full`) or edited by
  element deltas; nothing flushes it. A (re)started agent lists the store first and its first
  sync replaces whatever table the kernel holds, so a restart or a crash leaves the old rules
  in force until the new ones are in, never an empty table. A sync before the first successful
  list is refused: an agent that cannot read the store never writes a table from no state.
- **Fail closed.** A render that raises, a kernel that refuses: the old table stays, the error
  is logged and counted, and the runner retries with backoff (the retry rewrites the table
  whole). An engine update that raises marks the engine broken: the next sync rebuilds it from
  the mirror. A stored document that cannot be read keeps its last good version in the engine,
  and a local pod among them has its addresses mapped to `drop` in both directions
  (`quarantine`). What the renderer itself cannot express it drops and lists in
  `Ruleset.problems`; the agent logs each new problem once, shows them in `/status` and counts
  them in `kanal_agent_render_problems`.

This module does not own threads, sockets or signals (`kanal.agent.main` does) and does not
know the lab.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kanal.engine import PolicyEngine
from kanal.errors import DataplaneError
from kanal.model.objects import IPAddress
from kanal.render import RenderOptions, Ruleset, patch_text, plan_update, table_text
from kanal.render.names import SetName
from kanal.render.partial import render_with_dispatch
from kanal.store.api import Datastore, Event, EventType, Revision
from kanal.store.mirror import Mirror

from .dataplane import Dataplane, KernelTable
from .feed import EngineFeed, ObjectChange, PodChange
from .incremental import AddressBook, SetPatcher, exclusive
from .local import LocalPatcher, is_local
from .metrics import AgentMetrics
from .quarantine import quarantine
from .runner import SyncKind

log = logging.getLogger("kanal.agent")

HISTORY = 20


class SyncError(Exception):
    """A sync failed at `stage` (store, feed, render, kernel); the old table stays, the
    runner retries. Not a user error: the agent reports it and carries on."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}")


@dataclass(frozen=True, slots=True)
class SyncReport:
    """One successful sync: `kind` is `load` (whole table), `delta` (elements) or `unchanged`;
    a delta's `reason` says whether the table was `patched` (no render) or `rendered`; `at` is
    the Unix time the kernel write returned."""

    kind: str
    reason: str
    revision: int
    duration_s: float
    at: float
    stats: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "revision": self.revision,
            "duration_seconds": round(self.duration_s, 6),
            "at": self.at,
            "stats": self.stats,
        }


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """What `/status` and `kanal lab status` show; an immutable snapshot."""

    node: str
    ready: bool = False
    store_revision: int | None = None
    applied_revision: int | None = None
    last_sync: SyncReport | None = None
    last_error: str | None = None
    failures: int = 0
    problems: tuple[str, ...] = ()
    history: tuple[SyncReport, ...] = ()
    """The last `HISTORY` successful syncs, oldest first (which one reached a revision)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "ready": self.ready,
            "store_revision": self.store_revision,
            "applied_revision": self.applied_revision,
            "last_sync": self.last_sync.to_json() if self.last_sync else None,
            "last_error": self.last_error,
            "failures": self.failures,
            "problems": list(self.problems),
            "history": [s.to_json() for s in self.history],
        }


class NodeAgent:
    """Keeps `dataplane` (node `node`'s kernel) at the state of `store` (see the module doc)."""

    def __init__(
        self,
        node: str,
        store: Datastore,
        dataplane: Dataplane,
        *,
        options: RenderOptions | None = None,
        metrics: AgentMetrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.mirror = Mirror(store)
        self.dataplane = dataplane
        self.options = options or RenderOptions()
        self.metrics = metrics or AgentMetrics()
        self._wall = wall_clock
        self._engine = PolicyEngine()
        self._feed = EngineFeed(self._engine)
        self._book = AddressBook()
        self._patcher = SetPatcher()
        self._local = LocalPatcher(node, self.options, self._patcher)
        self._broken = False
        """An engine update raised: rebuild the engine from the mirror before rendering."""
        self._desired: Ruleset | None = None
        """The ruleset for the engine's current state; None: render from scratch."""
        self._patched: set[SetName] = set()
        """The sets and maps patched since the last kernel write."""
        self._rendered = True
        """Whether `_desired` was rendered (not only patched) since the last kernel write."""
        self._restructured = False
        """Whether a patch since the last kernel write added or removed chains or sets."""
        self._applied: Ruleset | None = None
        """What the kernel holds as far as this agent wrote it; None: unknown."""
        self._known_problems: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._status = AgentStatus(node)
        self.heartbeat = time.monotonic()
        """Last time the loop was alive (for /healthz)."""

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    @property
    def applied_ruleset(self) -> Ruleset | None:
        """What this agent last wrote to the kernel (None: unknown); tests compare it with
        a from-scratch render."""
        return self._applied

    def status(self) -> AgentStatus:
        with self._lock:
            return self._status

    def _set_status(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    # -- store -> engine ---------------------------------------------------------------------------

    def catch_up(self, *, timeout: float = 0.0) -> int:
        """Wait up to `timeout` for store changes and feed them to the engine; how many came.
        Store failures raise (KanalError or sqlite3.Error) and change nothing."""
        relists, since = self.mirror.resyncs, self.mirror.revision
        events = self.mirror.sync(timeout=timeout)
        if self.mirror.resyncs != relists:
            with self.metrics.lock:
                self.metrics.store_relists.inc()
            log.warning("the store's log no longer reaches back to revision %s: listed again "
                        "(%s changes)", since, len(events))
        for event in events:
            self._feed_event(event)
        revision = self.mirror.revision
        status = self.status()
        recovered = self._applied is not None and (status.last_error or "").startswith("store:")
        with self.metrics.lock:
            self.metrics.store_revision.set(revision or 0)
            if recovered:
                self.metrics.ready.set(1)
        if recovered:  # the store is readable again and the kernel was in step: ready again
            self._set_status(store_revision=revision, ready=True, last_error=None, failures=0)
        else:
            self._set_status(store_revision=revision)
        return len(events)

    def _feed_event(self, event: Event) -> None:
        if self._broken:
            return  # the rebuild reads the mirror, which has this event
        families = self._book.families()
        rejections = self._feed.rejections
        try:
            change = self._feed.apply(event)
        except Exception:
            log.exception("feeding %s to the engine failed: it is rebuilt at the next sync",
                          event.ref)
            with self.metrics.lock:
                self.metrics.sync_errors.inc("feed")
            self._broken, self._desired = True, None
            return
        if isinstance(change, PodChange):
            self._book.update(change.old, change.new)
            self._local.observe(change.old, change.new)
        if self._feed.rejections != rejections:
            self._desired = None
        elif isinstance(change, PodChange):
            self._patch(change, families)
        elif isinstance(change, ObjectChange):
            self._desired = None

    def _patch(self, change: PodChange, families: tuple[int, ...]) -> None:
        if self._desired is None:
            return
        path, patched = "render", None
        if exclusive(change, book=self._book, families_before=families):
            if is_local(change, self.node):
                path = "local"
                patched = self._local.patch(self._desired, change, engine=self._engine)
                if patched is None:
                    log.debug("local pod change rendered: %s", self._local.why_not)
            else:
                path, patched = "remote", self._patcher.patch(self._desired, change)
        with self.metrics.lock:
            self.metrics.pod_changes.inc(path if patched is not None else "render")
        if patched is None:
            self._desired = None
            return
        self._desired, changed = patched
        self._patched |= changed
        self._restructured |= path == "local" and self._local.structural

    def _rebuild(self) -> None:
        """A fresh engine from the mirror's objects (the from-scratch path)."""
        self._engine = PolicyEngine()
        self._feed = EngineFeed(self._engine)
        self._book.clear()
        revision = Revision(self.mirror.revision or 0)
        for ref, doc in sorted(self.mirror.objects.items()):
            change = self._feed.apply(Event(EventType.ADDED, ref, doc, revision))
            if isinstance(change, PodChange):
                self._book.update(change.old, change.new)
        self._broken, self._desired = False, None

    # -- engine -> kernel --------------------------------------------------------------------------

    def sync(self, kind: SyncKind = SyncKind.CHANGES) -> SyncReport:
        """Bring the kernel to the engine's state; SyncError (table untouched, or replaced
        whole and atomically) when a stage fails."""
        if self.mirror.revision is None:
            raise SyncError("store", "the store has not been listed yet: no state to enforce")
        start = time.monotonic()
        revision = self.mirror.revision
        desired = self._desired_ruleset(full=kind is SyncKind.RESYNC)
        try:
            written, reason = self._write(desired, kind)
        except DataplaneError as exc:
            self._applied = None
            self._failed("kernel", exc)
            raise SyncError("kernel", str(exc)) from exc
        report = SyncReport(written, reason, revision, time.monotonic() - start, self._wall(),
                            desired.stats())
        self._succeeded(report, desired)
        return report

    def _desired_ruleset(self, *, full: bool) -> Ruleset:
        try:
            if self._broken:
                self._rebuild()
            if full or self._desired is None:
                self._desired = self._render()
                self._rendered = True
            return self._desired
        except Exception as exc:
            log.exception("rendering node `%s` failed: the kernel keeps its current table",
                          self.node)
            self._broken, self._desired = True, None
            self._failed("render", exc)
            raise SyncError("render", f"{type(exc).__name__}: {exc}") from exc

    def _render(self) -> Ruleset:
        ruleset, dispatch = render_with_dispatch(self._engine, self.node, self.options)
        self._local.reset(ruleset, dispatch, engine=self._engine)
        return quarantine(ruleset, self._rejected_local(), node=self.node)

    def _rejected_local(self) -> list[tuple[str, str, tuple[IPAddress, ...]]]:
        return [
            (str(r.ref), r.reason, r.ips)
            for r in self._feed.rejected.values()
            if r.ref.kind == "Pod" and r.node_name == self.node
        ]

    def _write(self, desired: Ruleset, kind: SyncKind) -> tuple[str, str]:
        """Send `desired` to the kernel; (what was sent, why)."""
        applied = self._applied
        if kind is SyncKind.RESYNC or applied is None:
            reason = self._before_resync(applied)
            self.dataplane.apply_full(table_text(desired))
            with self.metrics.lock:
                self.metrics.resyncs.inc()
            return "load", reason
        if not self._rendered:
            text = patch_text(applied, desired, changed=self._patched)
            how = "restructured" if self._restructured else "patched"
        else:
            how = "rendered"
            plan = plan_update(applied, desired)
            if plan.full:
                self.dataplane.apply_full(plan.text)
                return "load", "structure changed"
            text = plan.text
        if not text:
            return "unchanged", ""
        try:
            self.dataplane.apply_delta(text)
        except DataplaneError as exc:
            first = str(exc).splitlines()[0]
            log.warning("the kernel refused a delta (%s): reloading the whole table", first)
            self.dataplane.apply_full(table_text(desired))
            return "load", "delta refused"
        return "delta", how

    def _before_resync(self, applied: Ruleset | None) -> str:
        """Read the kernel's table before it is replaced whole: why it is (first load, drift
        found, or the periodic resync)."""
        current = self.dataplane.read_current()
        if applied is None:
            return _first_load_reason(current)
        expected = applied.stats()
        if current is not None and current.structure() == (expected["chains"], expected["rules"]):
            return "periodic resync"
        with self.metrics.lock:
            self.metrics.drift_repairs.inc()
        log.warning("node `%s`: the kernel's table drifted (%s; this agent wrote %s chains, %s "
                    "rules): rewriting it", self.node, _sizes(current), expected["chains"],
                    expected["rules"])
        return "drift repaired"

    # -- bookkeeping -------------------------------------------------------------------------------

    def _succeeded(self, report: SyncReport, desired: Ruleset) -> None:
        self._applied, self._patched, self._rendered = desired, set(), False
        self._restructured = False
        problems = tuple(desired.problems)
        self._log_problems(problems)
        m = self.metrics
        with m.lock:
            m.sync_duration.observe(report.duration_s)
            if report.kind in ("load", "delta"):
                m.changes_applied.inc(report.kind)
            for gauge, key in ((m.rules, "rules"), (m.chains, "chains"), (m.sets, "sets"),
                               (m.set_elements, "set_elements"),
                               (m.map_elements, "map_elements")):
                gauge.set(report.stats.get(key, 0))
            m.render_problems.set(len(problems))
            m.rejected_objects.set(len(self._feed.rejected))
            m.applied_revision.set(report.revision)
            m.last_sync.set(report.at)
            m.ready.set(1)
        if report.kind == "load":
            log.info("node `%s`: table loaded (%s) at revision %s in %.3f s: %s", self.node,
                     report.reason, report.revision, report.duration_s, _stats(report.stats))
        else:
            log.debug("node `%s`: %s at revision %s in %.4f s", self.node, report.kind,
                      report.revision, report.duration_s)
        history = (*self.status().history, report)[-HISTORY:]
        self._set_status(ready=True, applied_revision=report.revision, last_sync=report,
                         last_error=None, failures=0, problems=problems + self._rejected_text(),
                         history=history)

    def _failed(self, stage: str, exc: BaseException) -> None:
        with self.metrics.lock:
            self.metrics.sync_errors.inc(stage)
            self.metrics.ready.set(0)
        status = self.status()
        self._set_status(ready=False, last_error=f"{stage}: {exc}", failures=status.failures + 1)

    def _rejected_text(self) -> tuple[str, ...]:
        """Unreadable documents other than local pods (`quarantine` words those)."""
        return tuple(
            f"{r.ref} cannot be read ({r.reason}): the agent keeps its last readable version"
            for r in sorted(self._feed.rejected.values(), key=lambda r: r.ref)
            if not (r.ref.kind == "Pod" and r.node_name == self.node)
        )

    def _log_problems(self, problems: Sequence[str]) -> None:
        current = frozenset(problems)
        for problem in sorted(current - self._known_problems):
            log.warning("node `%s`: %s", self.node, problem)
        self._known_problems = current

    def note_store_error(self, exc: BaseException) -> None:
        """The loop could not read the store (the table stays as it is)."""
        log.warning("node `%s`: cannot read the store: %s", self.node, exc)
        self._failed("store", exc)


def _first_load_reason(current: KernelTable | None) -> str:
    if current is None:
        return "first load"
    return f"first load, replacing the table found ({_sizes(current)}) atomically"


def _sizes(table: KernelTable | None) -> str:
    if table is None:
        return "no table"
    return f"{table.chains} chains, {table.rules} rules"


def _stats(stats: dict[str, int]) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in stats.items())


__all__ = ["AgentStatus", "NodeAgent", "SyncError", "SyncReport"]
