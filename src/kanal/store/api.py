"""The datastore interface: objects keyed by (kind, namespace, name), each change numbered by a
store-wide revision, and a watch from any recent revision.

```
apply(docs) ─┐                        objects: the current state      list() ──► (objects, R)
delete(refs) ├─► one transaction ─►   events:  R+1, R+2, ... (log) ── poll(since=R) ──► events
update(ref)  ┘   = one revision         └─ compacted: only the last N revisions are kept;
                                           a watcher behind them gets ResyncRequired and re-lists
```

Consumers follow Kubernetes' list-then-watch: `list()` returns a consistent snapshot with its
revision R, `poll(R)` returns every change after R in order; `Mirror` (kanal.store.mirror) does
both and resyncs. Every change of one transaction shares its revision, as in etcd, and a poll
returns whole transactions only, so a consumer never sees half of an `apply`.

How the backends map this (SQLite is `kanal.store.sqlite`; etcd and the Kubernetes API are
planned): revision = etcd's store revision and a key's `mod_revision` = Kubernetes'
`resourceVersion`; `created_revision` = etcd's `create_revision`; ResyncRequired = etcd's
"required revision has been compacted" / Kubernetes' `410 Gone` on a watch; `apply` = a
transaction (etcd `Txn`) or server-side apply per object (the Kubernetes API has no
multi-object transaction: that backend will validate the batch first and report partial
failure); `update` = a compare-and-swap on `mod_revision` (etcd `Txn` with a compare, Kubernetes
`PUT` with `resourceVersion`), retried on conflict.

This module does not validate documents (`kanal.store.documents` does, with `kanal.model`) and
keeps no cache (`Mirror` is the consumer's cache).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NewType

from kanal.errors import KanalError
from kanal.model.objects import Manifests

Revision = NewType("Revision", int)
"""A store-wide change counter: 0 for an empty store, +1 per transaction that changed anything."""

Doc = dict[str, Any]
"""A stored document: plain JSON data (strings, numbers, booleans, None, lists, dicts)."""

Change = Callable[[Doc], Doc]
"""`update`'s argument: the new document from a copy of the current one (may raise a
`KanalError` to refuse)."""


class StoreError(KanalError):
    """The datastore cannot be used as asked (its file cannot be opened or is not a store)."""


class ResyncRequired(Exception):  # noqa: N818 (named after etcd's and client-go's condition)
    """A watcher asked for changes the store no longer has (compacted, or a store that went
    back in time): it must `list()` again. Not a user error: consumers handle it."""

    def __init__(self, since: Revision, *, oldest: Revision, current: Revision) -> None:
        self.since, self.oldest, self.current = since, oldest, current
        super().__init__(
            f"changes after revision {since} are gone (the store keeps those after {oldest}, "
            f"up to {current}): list again"
        )


class EventType(enum.StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


class Outcome(enum.StrEnum):
    """What a write did to one object; the values are kubectl's words."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"

    @property
    def changes(self) -> bool:
        """Whether the object changed (and so has a new revision and an event)."""
        return self is not Outcome.UNCHANGED


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """One object's key: `kind` as in manifests (`Pod`), `namespace` "" for cluster-scoped kinds."""

    kind: str
    namespace: str
    name: str

    def display(self) -> str:
        """`ns/name` or `name`, as kubectl and `Problem` name objects."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.display()}"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as stored: `revision` is the last change to it (its resourceVersion)."""

    ref: ObjectRef
    doc: Doc
    revision: Revision
    created_revision: Revision
    created_at: float
    """Unix time of creation, for `AGE` and `creationTimestamp`."""


@dataclass(frozen=True, slots=True)
class Event:
    """One change; `doc` is None for DELETED (STYLE: an update whose value is None is a delete)."""

    type: EventType
    ref: ObjectRef
    doc: Doc | None
    revision: Revision


@dataclass(frozen=True, slots=True)
class Written:
    ref: ObjectRef
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A write's revision (unchanged when nothing changed), what happened to each object in
    input order, and notes for the user (kinds skipped)."""

    revision: Revision
    objects: tuple[Written, ...]
    notes: tuple[str, ...] = field(default=())


class Datastore(abc.ABC):
    """The operations every backend provides. Writes are atomic: all of a call or nothing."""

    @abc.abstractmethod
    def revision(self) -> Revision:
        """The current revision."""

    @abc.abstractmethod
    def get(self, ref: ObjectRef) -> StoredObject | None: ...

    @abc.abstractmethod
    def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[tuple[StoredObject, ...], Revision]:
        """Objects of `kind` (every kind if None) in `namespace` (every one if None), sorted by
        ref, and the revision of that snapshot: `poll(revision)` continues exactly after it."""

    @abc.abstractmethod
    def apply(self, documents: Sequence[tuple[str, object]]) -> WriteResult:
        """Create or update every object of `documents` ((source, raw) pairs as read from
        files; `kind: List` expanded) in one transaction, as `kubectl apply` does: fields the
        previous apply set and this one omits are removed, fields set otherwise (`label`) kept.

        The stored objects with the new ones must validate as one set of manifests, else
        `ManifestError` with every problem, and nothing is stored."""

    @abc.abstractmethod
    def delete(self, refs: Sequence[ObjectRef], *, missing_ok: bool = False) -> WriteResult:
        """Delete `refs` in one transaction; `NotFoundError` naming every missing one (and
        nothing deleted) unless `missing_ok`."""

    @abc.abstractmethod
    def update(self, ref: ObjectRef, change: Change) -> WriteResult:
        """Replace one object by `change(copy of it)`, atomically (read-modify-write without a
        lost update); validated like `apply`. `NotFoundError` if it does not exist."""

    @abc.abstractmethod
    def poll(self, since: Revision, *, timeout: float = 0.0) -> tuple[Event, ...]:
        """Every event after `since`, oldest first, in whole transactions; waits up to
        `timeout` seconds for the first one (empty on timeout). `ResyncRequired` if the store
        no longer has them."""

    @abc.abstractmethod
    def manifests(self) -> Manifests:
        """Every stored object, parsed as one set of manifests (for analysis commands)."""

    def watch(self, since: Revision, *, interval: float = 1.0) -> Iterator[Event]:
        """Events after `since`, forever (a convenience over `poll`); raises ResyncRequired."""
        while True:
            for event in self.poll(since, timeout=interval):
                since = event.revision
                yield event

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    def __enter__(self) -> Datastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
