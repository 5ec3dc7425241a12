"""SqliteStore: the embedded datastore, one SQLite file shared by the CLI and every agent (the
role SQLite plays for k3s through kine). The schema and the SQL are in `kanal.store.tables`.

Every write takes the lock up front (`BEGIN IMMEDIATE`), so a read-modify-write (apply's merge,
label) never fails half-way on a lock upgrade, and validates before it commits. Watchers poll:
`PRAGMA data_version` (a counter in shared memory that moves when another connection commits)
is checked every `poll_interval`, and the log is queried only when it moved. The default
interval, 5 ms, costs an idle watcher about 0.6% of a CPU and puts a commit in front of a
watcher in another process within 2.5 ms (p50) / 7.5 ms (p99); 50 ms costs 0.2% and takes 26 /
50 ms (bench/bench_store.py), too slow for the agent's 20 ms target.

The log keeps at least the last `history` events, in whole revisions; once it grows 10% beyond
that, the oldest revisions are dropped and `compacted` records the last one dropped.

The other backends planned behind `kanal.store.api.Datastore`: etcd (`etcd-server` 3.4 in
Debian) for clusters beyond one machine, where revision is etcd's revision, the event log is
etcd's own history (compacted by `etcd --auto-compaction-*`) and `data_version` polling becomes
a gRPC watch; and the Kubernetes API in-cluster, where revision is `resourceVersion` and a
watch that answers 410 Gone raises ResyncRequired.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kanal.errors import NotFoundError, Problem
from kanal.model.objects import Manifests
from kanal.model.parse import parse_documents
from kanal.store import tables
from kanal.store.api import (
    Change,
    Datastore,
    Doc,
    Event,
    EventType,
    ObjectRef,
    Outcome,
    ResyncRequired,
    Revision,
    StoredObject,
    WriteResult,
    Written,
)
from kanal.store.documents import STORE_SOURCE, UNION_KINDS, Incoming, identify, normalize, prepare
from kanal.store.documents import validate as validate_documents
from kanal.store.merge import merge3

LAB_DIR_ENV = tables.LAB_DIR_ENV
DEFAULT_LAB_DIR = Path("/var/lib/kanal/lab")
STORE_FILE = "store.db"


def default_store_path() -> Path:
    """`$KANAL_LAB_DIR/store.db`, else /var/lib/kanal/lab/store.db: beside the lab's state."""
    return Path(os.environ.get(LAB_DIR_ENV) or DEFAULT_LAB_DIR) / STORE_FILE


class Clock(Protocol):
    """Time as the store uses it; tests pass a fake one (no sleeping in unit tests)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an apply does to one object: its new document and the new merge base."""

    ref: ObjectRef
    doc: Doc
    applied: Doc
    outcome: Outcome

    def change(self) -> tables.RowChange:
        kind = EventType.ADDED if self.outcome is Outcome.CREATED else EventType.MODIFIED
        return tables.RowChange(
            kind, self.ref, tables.to_json(self.doc), tables.to_json(self.applied)
        )


def _plan(incoming: Incoming, row: tables.Row | None) -> _Plan:
    """kubectl apply on one object: create it, or merge it with what is stored."""
    assert incoming.ref is not None and isinstance(incoming.doc, dict)
    if row is None:
        return _Plan(incoming.ref, incoming.doc, incoming.doc, Outcome.CREATED)
    last = None if row.last_applied is None else json.loads(row.last_applied)
    merged = merge3(last, incoming.doc, row.stored.doc)
    outcome = Outcome.UNCHANGED if merged == row.stored.doc else Outcome.CONFIGURED
    return _Plan(incoming.ref, merged, incoming.doc, outcome)


class SqliteStore(Datastore):
    """A `Datastore` in one SQLite file; one connection, for one thread.

    `create=False` refuses a missing file (read commands must not create stores by typo);
    `full_validation` validates every stored object on each write (see kanal.store.documents)."""

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        history: int = 10_000,
        poll_interval: float = 0.005,
        busy_timeout: float = 10.0,
        full_validation: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if history < 1:
            raise ValueError(f"history must keep at least one event, got {history}")
        self.path = path
        self._history = history
        self._slack = max(1, history // 10)
        self._next_compaction = history + self._slack
        """Trim the log when it holds more events than this: after a trim, `history` plus
        10%, or more when a big revision could not be dropped (no rescanning on every write)."""
        self._poll_interval = poll_interval
        self._full_validation = full_validation
        self._clock = clock or SystemClock()
        self._db = tables.connect(path, create=create, busy_timeout=busy_timeout)

    def close(self) -> None:
        self._db.close()

    # -- reads ---------------------------------------------------------------------------------

    def revision(self) -> Revision:
        return Revision(tables.meta(self._db, "revision"))

    def get(self, ref: ObjectRef) -> StoredObject | None:
        row = tables.row(self._db, ref)
        return None if row is None else row.stored

    def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[tuple[StoredObject, ...], Revision]:
        with self._reading() as db:
            revision = Revision(tables.meta(db, "revision"))
            return tables.listed(db, kind=kind, namespace=namespace), revision

    def manifests(self) -> Manifests:
        objects, _ = self.list()
        return parse_documents((STORE_SOURCE, o.doc) for o in objects)

    # -- writes --------------------------------------------------------------------------------

    def apply(self, documents: Sequence[tuple[str, object]]) -> WriteResult:
        incoming, problems = prepare(documents)
        with self._writing() as db:
            plans = [None if i.ref is None else _plan(i, tables.row(db, i.ref)) for i in incoming]
            checked = [
                (i.source, i.doc if p is None else p.doc)
                for i, p in zip(incoming, plans, strict=True)
            ]
            replaced = {i.ref for i in incoming if i.ref is not None}
            notes = self._validate(db, checked, replaced=replaced, problems=problems)
            keyed = [p for p in plans if p is not None]
            revision = self._record(db, [p.change() for p in keyed if p.outcome.changes])
            _keep_merge_bases(db, [p for p in keyed if not p.outcome.changes])
        return WriteResult(revision, tuple(Written(p.ref, p.outcome) for p in keyed), notes)

    def delete(self, refs: Sequence[ObjectRef], *, missing_ok: bool = False) -> WriteResult:
        unique = list(dict.fromkeys(refs))
        with self._writing() as db:
            present = [ref for ref in unique if tables.row(db, ref) is not None]
            missing = [ref for ref in unique if ref not in present]
            if missing and not missing_ok:
                raise NotFoundError(_not_found(missing))
            revision = self._record(
                db, [tables.RowChange(EventType.DELETED, ref, None) for ref in present]
            )
        return WriteResult(revision, tuple(Written(ref, Outcome.DELETED) for ref in present))

    def update(self, ref: ObjectRef, change: Change) -> WriteResult:
        with self._writing() as db:
            row = tables.row(db, ref)
            if row is None:
                raise NotFoundError(_not_found([ref]))
            new = normalize(change(copy.deepcopy(row.stored.doc)), ref)
            if identify(new) != ref:
                raise ValueError(f"an update of `{ref}` must keep its kind, namespace and name")
            self._validate(db, [(STORE_SOURCE, new)], replaced={ref})
            if new == row.stored.doc:
                unchanged = (Written(ref, Outcome.UNCHANGED),)
                return WriteResult(Revision(tables.meta(db, "revision")), unchanged)
            text = tables.to_json(new)
            revision = self._record(
                db, [tables.RowChange(EventType.MODIFIED, ref, text, row.last_applied)]
            )
        return WriteResult(revision, (Written(ref, Outcome.CONFIGURED),))

    def compact(self, keep: int | None = None) -> Revision:
        """Drop all but the last `keep` events (default `history`), in whole revisions;
        returns the last revision dropped (watchers before it must re-list)."""
        with self._writing() as db:
            tables.compact(db, keep or self._history)
            return Revision(tables.meta(db, "compacted"))

    # -- watch ---------------------------------------------------------------------------------

    def poll(self, since: Revision, *, timeout: float = 0.0) -> tuple[Event, ...]:
        deadline = self._clock.monotonic() + timeout
        version = tables.data_version(self._db)  # before the query: no commit slips between
        while True:
            events = self._events_after(since)
            if events or self._clock.monotonic() >= deadline:
                return events
            version = self._wait_for_commit(version, deadline)

    def _wait_for_commit(self, version: int, deadline: float) -> int:
        """Sleep in steps of `poll_interval` until another connection commits or `deadline`."""
        while (now := self._clock.monotonic()) < deadline:
            self._clock.sleep(min(self._poll_interval, deadline - now))
            current = tables.data_version(self._db)
            if current != version:
                return current
        return version

    def _events_after(self, since: Revision) -> tuple[Event, ...]:
        with self._reading() as db:
            current, compacted = tables.meta(db, "revision"), tables.meta(db, "compacted")
            if not compacted <= since <= current:
                raise ResyncRequired(since, oldest=Revision(compacted), current=Revision(current))
            return tables.events_after(db, since)

    # -- inside a write transaction ------------------------------------------------------------

    def _validate(
        self,
        db: sqlite3.Connection,
        documents: Iterable[tuple[str, object]],
        *,
        replaced: set[ObjectRef],
        problems: Iterable[Problem] = (),
    ) -> tuple[str, ...]:
        """`documents` must validate with the stored objects they do not replace (all of
        them with `full_validation`, else those of UNION_KINDS: see kanal.store.documents)."""
        kinds = None if self._full_validation else sorted(UNION_KINDS)
        others = [o for o in tables.objects(db, kinds) if o.ref not in replaced]
        stored = [(STORE_SOURCE, o.doc) for o in others]
        return validate_documents([*stored, *documents], problems=problems)

    def _record(self, db: sqlite3.Connection, changes: Sequence[tables.RowChange]) -> Revision:
        """Write `changes` as one new revision (none when empty) and trim the log."""
        revision = tables.meta(db, "revision")
        if not changes:
            return Revision(revision)
        revision += 1
        tables.write_objects(db, changes, revision=revision, now=self._clock.time())
        tables.append_events(db, changes, revision=revision)
        events = tables.meta(db, "events") + len(changes)
        tables.set_meta(db, revision=revision, events=events)
        if events > self._next_compaction:
            kept = tables.compact(db, self._history)
            self._next_compaction = max(kept, self._history) + self._slack
        return Revision(revision)

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its start."""
        with tables.translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        with tables.translated(self.path):
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query in it sees the same snapshot."""
        with tables.translated(self.path):
            self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")


# -- connection ------------------------------------------------------------------------------------


# -- rows ------------------------------------------------------------------------------------------


def _keep_merge_bases(db: sqlite3.Connection, plans: Sequence[_Plan]) -> None:
    """An apply that changes nothing still becomes the base of the next three-way merge."""
    db.executemany(
        "UPDATE objects SET last_applied = ? WHERE kind = ? AND namespace = ? AND name = ?",
        [(tables.to_json(p.applied), *tables.key_of(p.ref)) for p in plans],
    )


def _not_found(refs: Sequence[ObjectRef]) -> str:
    lines = [f"{ref.kind} `{ref.display()}` does not exist" for ref in refs]
    lines.append("nothing was changed: check the names with `kanal get KIND -A`")
    return "\n".join(lines)
