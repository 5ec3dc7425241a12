"""FlowPipeline: parsed kernel events in, records and completions out to the store. No sockets
and no clock of its own (callers pass `now`), so tests and the benchmark drive it directly.

```
LogEvent ──Attributor.on_log──► FlowRecord ──► batch ──flush──► FlowStore.insert ──► ids
                                                                   │ allowed: open[key] += record
CtEvent NEW ──► pending[key] (grace) ──due, direction not logged──► Attributor.on_unlogged ─┘
CtEvent DESTROY ──open.pop(key)──► completion ──► FlowStore.complete (bytes, duration)
                           stored records and completions ──► observers (the alerts)
```

`key` is the connection's original tuple (protocol, src, sport, dst, dport): what the first
packet carried, hence what NFLOG logged. Denied records never enter `open`: a dropped first
packet leaves no conntrack entry, so no DESTROY will come. `open` is bounded (`max_open`, about
500 bytes each; the oldest forgotten first, counted in `forgotten`): a connection forgotten, or
whose DESTROY the kernel dropped, keeps its record without bytes.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from kanal.flows.attribute import Attributor, UnknownLogIdError, completion
from kanal.flows.conntrack import CtEvent, CtEventType
from kanal.flows.nflog import LogEvent
from kanal.flows.packets import FiveTuple
from kanal.flows.records import Completion, FlowRecord
from kanal.flows.store import FlowStore
from kanal.model.objects import Direction

ConnectionKey = tuple[object, ...]

DEFAULT_GRACE_S = 0.5
"""How long a conntrack NEW waits for its NFLOG events before it counts as unlogged."""


class FlowObserver(Protocol):
    """Sees what the store took: records once inserted, connections once completed (the
    collector's alerts). It must not raise for a problem of its own."""

    def on_records(self, records: Sequence[FlowRecord]) -> None: ...

    def on_completions(self, finished: Sequence[tuple[FlowRecord, Completion]]) -> None: ...


@dataclass(slots=True)
class _Open:
    started: float
    records: list[FlowRecord] = field(default_factory=list)
    directions: set[Direction] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Pending:
    event: CtEvent
    due: float


class FlowPipeline:
    """One node's flow pipeline for one store. `attributor` is replaced on every reload.

    `unknown` collects `k:` ids the attributor did not know (the collector reloads, then
    `retry_unknown`); `health` counts what the store's health counters should gain."""

    def __init__(
        self, store: FlowStore, attributor: Attributor, *, timeouts: Mapping[str, float],
        grace_s: float = DEFAULT_GRACE_S, max_open: int = 100_000,
    ) -> None:
        self.store = store
        self.attributor = attributor
        self.timeouts = dict(timeouts)
        self.grace_s = grace_s
        self.max_open = max_open
        self.batch: list[tuple[FlowRecord, ConnectionKey]] = []
        self.open: OrderedDict[ConnectionKey, _Open] = OrderedDict()
        self.pending: dict[ConnectionKey, _Pending] = {}
        self.unknown: list[LogEvent] = []
        self.destroyed: list[CtEvent] = []
        self.finished: list[tuple[FlowRecord, Completion]] = []
        self.health: Counter[str] = Counter()
        self.forgotten = 0
        self.observers: list[FlowObserver] = []

    # -- input -----------------------------------------------------------------------------------

    def on_log_events(self, events: Sequence[LogEvent]) -> None:
        attributor = self.attributor
        before = attributor.disagreements
        for event in events:
            try:
                record = attributor.on_log(event)
            except UnknownLogIdError:
                self.unknown.append(event)
                continue
            if record is not None and event.packet is not None:
                self.batch.append((record, event.packet.key))
        self.health["disagreements"] += attributor.disagreements - before

    def retry_unknown(self) -> list[str]:
        """Attribute the held unknown events again (after a reload); returns the ids still
        unknown (their events are dropped and counted)."""
        held, self.unknown = self.unknown, []
        self.on_log_events(held)
        still = sorted({e.prefix for e in self.unknown})
        self.health["unknown_log_ids"] += len(self.unknown)
        self.unknown = []
        return still

    def on_ct_events(self, events: Sequence[CtEvent], *, now: float) -> None:
        for event in events:
            if event.type is CtEventType.NEW:
                self.pending[event.original.key] = _Pending(event, now + self.grace_s)
            else:
                self.destroyed.append(event)

    # -- output ----------------------------------------------------------------------------------

    def tick(self, *, now: float) -> None:
        """Write what is held: records first (a connection's records may still be in the
        batch when its DESTROY comes), then DESTROYs (a connection that ended within the grace
        is recorded first), then due NEWs, then completions. Nothing is dropped when the store
        fails: whatever was not written is written by the next tick."""
        self.flush()
        for event in self.destroyed:
            pending = self.pending.pop(event.original.key, None)
            if pending is not None:
                self._unlogged(event.original.key, pending.event)
        self.flush()
        for event in self.destroyed:
            self._finish(event)
        self.destroyed = []
        for key in [k for k, p in self.pending.items() if p.due <= now]:
            self._unlogged(key, self.pending.pop(key).event)
        self.flush()
        if self.finished:
            self.store.complete(self.finished)
            finished, self.finished = self.finished, []
            for observer in self.observers:
                observer.on_completions(finished)

    def _finish(self, event: CtEvent) -> None:
        entry = self.open.pop(event.original.key, None)
        if entry is None and event.reply is not None:
            entry = self.open.pop(_inverted(event.reply).key, None)
        if entry is not None:
            done = completion(event, started=entry.started, timeouts=self.timeouts)
            self.finished.extend((record, done) for record in entry.records)

    def flush(self) -> None:
        """Write the batch; if the store fails (FlowStoreError), the batch is kept for the next
        attempt, so a busy database delays records instead of losing them."""
        if not self.batch:
            return
        ids = self.store.insert([record for record, _ in self.batch])
        batch, self.batch = self.batch, []
        for (record, key), ident in zip(batch, ids, strict=True):
            if record.decision.allowed:
                self._track(key, replace(record, id=ident))
        for observer in self.observers:
            observer.on_records([record for record, _ in batch])

    def _track(self, key: ConnectionKey, record: FlowRecord) -> None:
        entry = self.open.get(key)
        if entry is None:
            entry = self.open[key] = _Open(record.time)
            if len(self.open) > self.max_open:
                self.open.popitem(last=False)
                self.forgotten += 1
                self.health["forgotten"] += 1
        entry.records.append(record)
        entry.directions.add(record.direction)

    def _unlogged(self, key: ConnectionKey, event: CtEvent) -> None:
        entry = self.open.get(key)
        logged = frozenset(entry.directions) if entry is not None else frozenset()
        before = self.attributor.disagreements
        self.batch.extend((r, key) for r in self.attributor.on_unlogged(event, logged=logged))
        self.health["disagreements"] += self.attributor.disagreements - before


def _inverted(reply: FiveTuple) -> FiveTuple:
    """The original direction of a reply tuple (when NAT changed the original's addresses)."""
    return FiveTuple(reply.dst, reply.src, reply.protocol, reply.dport, reply.sport)


__all__ = ["DEFAULT_GRACE_S", "FlowObserver", "FlowPipeline"]
