"""SqliteStore: the embedded datastore, one SQLite file shared by the CLI and every agent (the
role SQLite plays for k3s through kine).

```
meta     key TEXT PRIMARY KEY, value INTEGER      revision, compacted, events (count in the log)
objects  kind, namespace, name  PRIMARY KEY       the current state, one row per object
         doc TEXT                                 the object as JSON
         last_applied TEXT NULL                   what the last apply sent (three-way merge base)
         revision, created_revision INTEGER, created_at REAL
events   revision, seq  PRIMARY KEY               the log: one revision per transaction, seq its
         type TEXT, kind, namespace, name,        order inside it; doc NULL for DELETED
         doc TEXT NULL
PRAGMA user_version = 1                           the schema's version
```

Safe across processes: WAL journal (readers never block the writer or each other),
`synchronous=NORMAL` (a commit survives a process crash; a power cut may lose the last commits,
never consistency), a busy timeout for writers waiting on each other, and every write takes the
lock up front (`BEGIN IMMEDIATE`), so a read-modify-write never fails half-way on a lock
upgrade. Watchers poll: `PRAGMA data_version` (a counter in shared memory that moves when
another connection commits) is checked every `poll_interval`, and the log is queried only when
it moved. The default interval, 5 ms, costs an idle watcher about 0.6% of a CPU and puts a
commit in front of a watcher in another process within 2.5 ms (p50) / 7.5 ms (p99); 50 ms costs
0.2% and takes 26 / 50 ms (bench/bench_store.py), too slow for the agent's 20 ms target.

`objects` and `events` are rowid tables, not WITHOUT ROWID: a document (0.5-1 KB) is more than
a WITHOUT ROWID row keeps in its page, and the overflow pages more than doubled the file (46
MiB against 20 MiB after applying 10k pods and 1k policies).

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
    StoreError,
    WriteResult,
    Written,
)
from kanal.store.documents import STORE_SOURCE, UNION_KINDS, Incoming, identify, normalize, prepare
from kanal.store.documents import validate as validate_documents
from kanal.store.merge import merge3

LAB_DIR_ENV = "KANAL_LAB_DIR"
DEFAULT_LAB_DIR = Path("/var/lib/kanal/lab")
STORE_FILE = "store.db"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('revision', 0), ('compacted', 0), ('events', 0);
CREATE TABLE objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    doc TEXT NOT NULL, last_applied TEXT,
    revision INTEGER NOT NULL, created_revision INTEGER NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE events (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT,
    PRIMARY KEY (revision, seq)
);
"""

_OBJECT_COLUMNS = "kind, namespace, name, doc, revision, created_revision, created_at"


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
class _Row:
    """An object's row, with its merge base (which `StoredObject` does not expose)."""

    stored: StoredObject
    last_applied: str | None


@dataclass(frozen=True, slots=True)
class _Change:
    """One object's change as written: `doc` and `last_applied` as JSON text."""

    type: EventType
    ref: ObjectRef
    doc: str | None
    last_applied: str | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an apply does to one object: its new document and the new merge base."""

    ref: ObjectRef
    doc: Doc
    applied: Doc
    outcome: Outcome

    def change(self) -> _Change:
        kind = EventType.ADDED if self.outcome is Outcome.CREATED else EventType.MODIFIED
        return _Change(kind, self.ref, _json(self.doc), _json(self.applied))


def _plan(incoming: Incoming, row: _Row | None) -> _Plan:
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
        self._db = _connect(path, create=create, busy_timeout=busy_timeout)

    def close(self) -> None:
        self._db.close()

    # -- reads ---------------------------------------------------------------------------------

    def revision(self) -> Revision:
        return Revision(_meta(self._db, "revision"))

    def get(self, ref: ObjectRef) -> StoredObject | None:
        row = _row(self._db, ref)
        return None if row is None else row.stored

    def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[tuple[StoredObject, ...], Revision]:
        where = " AND ".join(
            f"{column} = ?"
            for column, value in (("kind", kind), ("namespace", namespace))
            if value is not None
        )
        query = f"SELECT {_OBJECT_COLUMNS} FROM objects {'WHERE ' + where if where else ''}"
        params = [value for value in (kind, namespace) if value is not None]
        with self._reading() as db:
            revision = Revision(_meta(db, "revision"))
            rows = db.execute(query + " ORDER BY kind, namespace, name", params).fetchall()
        return tuple(_stored(row) for row in rows), revision

    def manifests(self) -> Manifests:
        objects, _ = self.list()
        return parse_documents((STORE_SOURCE, o.doc) for o in objects)

    # -- writes --------------------------------------------------------------------------------

    def apply(self, documents: Sequence[tuple[str, object]]) -> WriteResult:
        incoming, problems = prepare(documents)
        with self._writing() as db:
            plans = [None if i.ref is None else _plan(i, _row(db, i.ref)) for i in incoming]
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
            present = [ref for ref in unique if _row(db, ref) is not None]
            missing = [ref for ref in unique if ref not in present]
            if missing and not missing_ok:
                raise NotFoundError(_not_found(missing))
            revision = self._record(db, [_Change(EventType.DELETED, ref, None) for ref in present])
        return WriteResult(revision, tuple(Written(ref, Outcome.DELETED) for ref in present))

    def update(self, ref: ObjectRef, change: Change) -> WriteResult:
        with self._writing() as db:
            row = _row(db, ref)
            if row is None:
                raise NotFoundError(_not_found([ref]))
            new = normalize(change(copy.deepcopy(row.stored.doc)), ref)
            if identify(new) != ref:
                raise ValueError(f"an update of `{ref}` must keep its kind, namespace and name")
            self._validate(db, [(STORE_SOURCE, new)], replaced={ref})
            if new == row.stored.doc:
                unchanged = (Written(ref, Outcome.UNCHANGED),)
                return WriteResult(Revision(_meta(db, "revision")), unchanged)
            text = _json(new)
            revision = self._record(db, [_Change(EventType.MODIFIED, ref, text, row.last_applied)])
        return WriteResult(revision, (Written(ref, Outcome.CONFIGURED),))

    def compact(self, keep: int | None = None) -> Revision:
        """Drop all but the last `keep` events (default `history`), in whole revisions;
        returns the last revision dropped (watchers before it must re-list)."""
        with self._writing() as db:
            _compact(db, keep or self._history)
            return Revision(_meta(db, "compacted"))

    # -- watch ---------------------------------------------------------------------------------

    def poll(self, since: Revision, *, timeout: float = 0.0) -> tuple[Event, ...]:
        deadline = self._clock.monotonic() + timeout
        version = _data_version(self._db)  # before the query: a commit in between is not lost
        while True:
            events = self._events_after(since)
            if events or self._clock.monotonic() >= deadline:
                return events
            version = self._wait_for_commit(version, deadline)

    def _wait_for_commit(self, version: int, deadline: float) -> int:
        """Sleep in steps of `poll_interval` until another connection commits or `deadline`."""
        while (now := self._clock.monotonic()) < deadline:
            self._clock.sleep(min(self._poll_interval, deadline - now))
            current = _data_version(self._db)
            if current != version:
                return current
        return version

    def _events_after(self, since: Revision) -> tuple[Event, ...]:
        with self._reading() as db:
            current, compacted = _meta(db, "revision"), _meta(db, "compacted")
            if not compacted <= since <= current:
                raise ResyncRequired(since, oldest=Revision(compacted), current=Revision(current))
            rows = db.execute(
                "SELECT revision, type, kind, namespace, name, doc FROM events "
                "WHERE revision > ? ORDER BY revision, seq",
                (since,),
            ).fetchall()
        return tuple(_event(row) for row in rows)

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
        stored = [(STORE_SOURCE, o.doc) for o in _objects(db, kinds) if o.ref not in replaced]
        return validate_documents([*stored, *documents], problems=problems)

    def _record(self, db: sqlite3.Connection, changes: Sequence[_Change]) -> Revision:
        """Write `changes` as one new revision (none when empty) and trim the log."""
        revision = _meta(db, "revision")
        if not changes:
            return Revision(revision)
        revision += 1
        _write_objects(db, changes, revision=revision, now=self._clock.time())
        db.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(revision, seq, c.type.value, *_key(c.ref), c.doc) for seq, c in enumerate(changes)],
        )
        events = _meta(db, "events") + len(changes)
        _set_meta(db, revision=revision, events=events)
        if events > self._next_compaction:
            kept = _compact(db, self._history)
            self._next_compaction = max(kept, self._history) + self._slack
        return Revision(revision)

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its start."""
        with _translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        with _translated(self.path):
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query in it sees the same snapshot."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")


# -- connection ------------------------------------------------------------------------------------


def _connect(path: Path, *, create: bool, busy_timeout: float) -> sqlite3.Connection:
    if not create and not path.exists():
        raise StoreError(
            f"there is no store at `{path}`: create one with `kanal apply -f ...`, or give the "
            f"right path with --store or ${LAB_DIR_ENV}"
        )
    with _translated(path):
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        _initialize(db, path)
        return db


def _initialize(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file (under the write lock: two processes may race here)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables == 0:
            for statement in SCHEMA.split(";\n"):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"`{path}` is not a kanal store of format {SCHEMA_VERSION} (found "
                f"{version}): give another path with --store or ${LAB_DIR_ENV}"
            )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite and file-system failures at the edge become StoreError, naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        hint = "another process holds it: retry" if "locked" in str(exc) else "check the path"
        raise StoreError(f"cannot use store `{path}`: {exc} ({hint})") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"`{path}` is not a usable store ({exc}): give another path with --store"
        ) from exc
    except OSError as exc:
        raise StoreError(f"cannot create store `{path}`: {exc.strerror or exc}") from exc


# -- rows ------------------------------------------------------------------------------------------


def _meta(db: sqlite3.Connection, key: str) -> int:
    value: int = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
    return value


def _set_meta(db: sqlite3.Connection, **values: int) -> None:
    db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in values.items()])


def _data_version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA data_version").fetchone()[0]
    return version


def _row(db: sqlite3.Connection, ref: ObjectRef) -> _Row | None:
    row = db.execute(
        f"SELECT {_OBJECT_COLUMNS}, last_applied FROM objects "
        "WHERE kind = ? AND namespace = ? AND name = ?",
        _key(ref),
    ).fetchone()
    return None if row is None else _Row(_stored(row[:-1]), row[-1])


def _objects(db: sqlite3.Connection, kinds: Sequence[str] | None) -> list[StoredObject]:
    if kinds is None:
        rows = db.execute(f"SELECT {_OBJECT_COLUMNS} FROM objects").fetchall()
    else:
        marks = ", ".join("?" * len(kinds))
        query = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE kind IN ({marks})"
        rows = db.execute(query, list(kinds)).fetchall()
    return [_stored(row) for row in rows]


def _stored(row: Sequence[object]) -> StoredObject:
    kind, namespace, name, doc, revision, created_revision, created_at = row
    assert isinstance(doc, str) and isinstance(revision, int) and isinstance(created_revision, int)
    assert isinstance(created_at, float)
    ref = ObjectRef(str(kind), str(namespace), str(name))
    return StoredObject(
        ref, json.loads(doc), Revision(revision), Revision(created_revision), created_at
    )


def _event(row: Sequence[object]) -> Event:
    revision, event_type, kind, namespace, name, doc = row
    assert isinstance(revision, int)
    ref = ObjectRef(str(kind), str(namespace), str(name))
    value = None if doc is None else json.loads(str(doc))
    return Event(EventType(str(event_type)), ref, value, Revision(revision))


def _key(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)


def _json(doc: Doc) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _write_objects(
    db: sqlite3.Connection, changes: Sequence[_Change], *, revision: int, now: float
) -> None:
    db.executemany(
        "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
        [_key(c.ref) for c in changes if c.doc is None],
    )
    db.executemany(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (kind, namespace, name) DO UPDATE SET "
        "doc = excluded.doc, last_applied = excluded.last_applied, revision = excluded.revision",
        [
            (*_key(c.ref), c.doc, c.last_applied, revision, revision, now)
            for c in changes
            if c.doc is not None
        ],
    )


def _keep_merge_bases(db: sqlite3.Connection, plans: Sequence[_Plan]) -> None:
    """An apply that changes nothing still becomes the base of the next three-way merge."""
    db.executemany(
        "UPDATE objects SET last_applied = ? WHERE kind = ? AND namespace = ? AND name = ?",
        [(_json(p.applied), *_key(p.ref)) for p in plans],
    )


def _compact(db: sqlite3.Connection, keep: int) -> int:
    """Drop the revisions older than the one holding the `keep`-th newest event; returns how
    many events the log keeps."""
    events = _meta(db, "events")
    row = db.execute(
        "SELECT revision FROM events ORDER BY revision DESC, seq DESC LIMIT 1 OFFSET ?",
        (keep - 1,),
    ).fetchone()
    if row is None:
        return events
    oldest_kept: int = row[0]
    dropped = db.execute("DELETE FROM events WHERE revision < ?", (oldest_kept,)).rowcount
    if dropped:
        compacted = max(_meta(db, "compacted"), oldest_kept - 1)
        _set_meta(db, compacted=compacted, events=events - dropped)
    return events - dropped


def _not_found(refs: Sequence[ObjectRef]) -> str:
    lines = [f"{ref.kind} `{ref.display()}` does not exist" for ref in refs]
    lines.append("nothing was changed: check the names with `kanal get KIND -A`")
    return "\n".join(lines)
