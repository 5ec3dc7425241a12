"""The SQLite side of `SqliteStore`: schema, connection, and the rows it reads and writes.

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
never consistency) and a busy timeout for writers waiting on each other. `objects` and `events`
are rowid tables, not WITHOUT ROWID: a document (0.5-1 KB) is more than a WITHOUT ROWID row
keeps in its page, and the overflow pages more than doubled the file (46 MiB against 20 MiB
after applying 10k pods and 1k policies).

Every function here runs inside the caller's transaction and knows nothing of documents'
meaning: merging, validation and watch semantics are `kanal.store.sqlite`'s.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kanal.store.api import Doc, Event, EventType, ObjectRef, Revision, StoredObject, StoreError

LAB_DIR_ENV = "KANAL_LAB_DIR"

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

OBJECT_COLUMNS = "kind, namespace, name, doc, revision, created_revision, created_at"


@dataclass(frozen=True, slots=True)
class Row:
    """An object's row, with its merge base (which `StoredObject` does not expose)."""

    stored: StoredObject
    last_applied: str | None


@dataclass(frozen=True, slots=True)
class RowChange:
    """One object's change as written: `doc` and `last_applied` as JSON text."""

    type: EventType
    ref: ObjectRef
    doc: str | None
    last_applied: str | None = None


def connect(path: Path, *, create: bool, busy_timeout: float) -> sqlite3.Connection:
    if not create and not path.exists():
        raise StoreError(
            f"there is no store at `{path}`: create one with `kanal apply -f ...`, or give the "
            f"right path with --store or ${LAB_DIR_ENV}"
        )
    with translated(path):
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        initialize(db, path)
        return db


def initialize(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file (under the write lock: two processes may race here)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        objects = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and objects == 0:
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
def translated(path: Path) -> Iterator[None]:
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


def meta(db: sqlite3.Connection, key: str) -> int:
    value: int = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
    return value


def set_meta(db: sqlite3.Connection, **values: int) -> None:
    db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in values.items()])


def data_version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA data_version").fetchone()[0]
    return version


def row(db: sqlite3.Connection, ref: ObjectRef) -> Row | None:
    found = db.execute(
        f"SELECT {OBJECT_COLUMNS}, last_applied FROM objects "
        "WHERE kind = ? AND namespace = ? AND name = ?",
        key_of(ref),
    ).fetchone()
    return None if found is None else Row(stored(found[:-1]), found[-1])


def objects(db: sqlite3.Connection, kinds: Sequence[str] | None) -> list[StoredObject]:
    if kinds is None:
        rows = db.execute(f"SELECT {OBJECT_COLUMNS} FROM objects").fetchall()
    else:
        marks = ", ".join("?" * len(kinds))
        query = f"SELECT {OBJECT_COLUMNS} FROM objects WHERE kind IN ({marks})"
        rows = db.execute(query, list(kinds)).fetchall()
    return [stored(row) for row in rows]


def stored(columns: Sequence[object]) -> StoredObject:
    kind, namespace, name, doc, revision, created_revision, created_at = columns
    assert isinstance(doc, str) and isinstance(revision, int) and isinstance(created_revision, int)
    assert isinstance(created_at, float)
    ref = ObjectRef(str(kind), str(namespace), str(name))
    return StoredObject(
        ref, json.loads(doc), Revision(revision), Revision(created_revision), created_at
    )


def event(columns: Sequence[object]) -> Event:
    revision, event_type, kind, namespace, name, doc = columns
    assert isinstance(revision, int)
    ref = ObjectRef(str(kind), str(namespace), str(name))
    value = None if doc is None else json.loads(str(doc))
    return Event(EventType(str(event_type)), ref, value, Revision(revision))


def key_of(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)


def to_json(doc: Doc) -> str:
    return json.dumps(doc, separators=(",", ":"))


def write_objects(
    db: sqlite3.Connection, changes: Sequence[RowChange], *, revision: int, now: float
) -> None:
    db.executemany(
        "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
        [key_of(c.ref) for c in changes if c.doc is None],
    )
    db.executemany(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (kind, namespace, name) DO UPDATE SET "
        "doc = excluded.doc, last_applied = excluded.last_applied, revision = excluded.revision",
        [
            (*key_of(c.ref), c.doc, c.last_applied, revision, revision, now)
            for c in changes
            if c.doc is not None
        ],
    )


def compact(db: sqlite3.Connection, keep: int) -> int:
    """Drop the revisions older than the one holding the `keep`-th newest event; returns how
    many events the log keeps."""
    events = meta(db, "events")
    row = db.execute(
        "SELECT revision FROM events ORDER BY revision DESC, seq DESC LIMIT 1 OFFSET ?",
        (keep - 1,),
    ).fetchone()
    if row is None:
        return events
    oldest_kept: int = row[0]
    dropped = db.execute("DELETE FROM events WHERE revision < ?", (oldest_kept,)).rowcount
    if dropped:
        compacted = max(meta(db, "compacted"), oldest_kept - 1)
        set_meta(db, compacted=compacted, events=events - dropped)
    return events - dropped


def append_events(db: sqlite3.Connection, changes: Sequence[RowChange], *, revision: int) -> None:
    db.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(revision, seq, c.type.value, *key_of(c.ref), c.doc) for seq, c in enumerate(changes)],
    )


def events_after(db: sqlite3.Connection, since: int) -> tuple[Event, ...]:
    rows = db.execute(
        "SELECT revision, type, kind, namespace, name, doc FROM events "
        "WHERE revision > ? ORDER BY revision, seq",
        (since,),
    ).fetchall()
    return tuple(event(columns) for columns in rows)


def listed(
    db: sqlite3.Connection, *, kind: str | None, namespace: str | None
) -> tuple[StoredObject, ...]:
    """Objects sorted by key, filtered by `kind` and `namespace` when given."""
    filters = [(column, value) for column, value in (("kind", kind), ("namespace", namespace))]
    given = [(column, value) for column, value in filters if value is not None]
    where = " AND ".join(f"{column} = ?" for column, _ in given)
    query = f"SELECT {OBJECT_COLUMNS} FROM objects {'WHERE ' + where if where else ''}"
    rows = db.execute(query + " ORDER BY kind, namespace, name", [v for _, v in given])
    return tuple(stored(columns) for columns in rows.fetchall())
