"""Mirror (list-then-watch): a watcher that replays events, and re-lists when the log is
compacted under it, always ends with exactly the store's state, whatever the operations."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kanal.errors import KanalError
from kanal.store.api import Event, EventType, Revision
from kanal.store.labels import LabelChanges, relabel
from kanal.store.mirror import Mirror
from kanal.store.sqlite import SqliteStore

from .builders import labels, namespace, open_store, pod, ref

Operation = Callable[[SqliteStore], object]

KEYS = ["x/a", "x/b", "y/a"]
VALUES = ["web", "db", "Bad Value"]


def test_the_first_sync_lists_every_object_as_added(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.apply([pod("x/a"), namespace("x")])
    mirror = Mirror(store)
    events = mirror.sync()
    assert [(e.type, str(e.ref), e.revision) for e in events] == [
        (EventType.ADDED, "Namespace x", 1),
        (EventType.ADDED, "Pod x/a", 1),
    ]
    assert mirror.revision == 1


def test_a_resync_reports_the_difference_as_events(tmp_path: Path) -> None:
    store = open_store(tmp_path, history=1)
    mirror = Mirror(store)
    store.apply([pod("x/a"), pod("x/b"), pod("x/c")])
    mirror.sync()
    store.apply([pod("x/a", labels(app="web"))])
    store.delete([ref("Pod", "x/b")])
    store.apply([pod("x/d")])

    events = mirror.sync()

    assert mirror.resyncs == 1
    assert [(e.type, e.ref.name, e.revision) for e in events] == [
        (EventType.DELETED, "b", 4),
        (EventType.MODIFIED, "a", 4),
        (EventType.ADDED, "d", 4),
    ]


def _apply(key: str, value: str | None) -> Operation:
    tweaks = () if value is None else (labels(app=value),)
    return lambda store: store.apply([pod(key, *tweaks)])


def _delete(keys: list[str], missing_ok: bool) -> Operation:
    return lambda store: store.delete([ref("Pod", k) for k in keys], missing_ok=missing_ok)


def _label(key: str, arg: str, overwrite: bool) -> Operation:
    """Label without parse_label_args' checks, so the store's validation is exercised too."""
    name, sep, value = arg.partition("=")
    changes = LabelChanges({name: value}, ()) if sep else LabelChanges({}, (arg[:-1],))
    return lambda store: store.update(
        ref("Pod", key), lambda doc: relabel(doc, changes, overwrite=overwrite).doc
    )


def _compact(keep: int) -> Operation:
    return lambda store: store.compact(keep)


label_args = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["app", "tier"]), st.sampled_from(VALUES)),
    st.builds(lambda k: f"{k}-", st.sampled_from(["app", "tier"])),
)
applies = st.builds(_apply, st.sampled_from(KEYS), st.none() | st.sampled_from(VALUES))
relabels = st.builds(_label, st.sampled_from(KEYS), label_args, st.booleans())
operations = st.one_of(
    applies,
    applies,
    relabels,
    relabels,
    st.builds(_delete, st.lists(st.sampled_from(KEYS), min_size=1, max_size=2), st.booleans()),
    st.builds(_compact, st.integers(1, 3)),
    st.just("sync"),
)
"""Writes several times as often as syncs, so that the log is often compacted under the
watcher (which must then re-list)."""


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store file to copy: creating one costs an fsync or two (~20 ms), a copy none."""
    directory = tmp_path_factory.mktemp("empty")
    open_store(directory).close()
    return directory / "store.db"


def _copy(empty_store: Path, directory: str) -> Path:
    shutil.copy(empty_store, directory)
    return Path(directory)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(operations, min_size=4, max_size=25), history=st.integers(1, 3))
def test_a_watcher_ends_with_exactly_the_stores_state(
    empty_store: Path, ops: list[object], history: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(_copy(empty_store, directory), history=history)
        watcher = Mirror(open_store(Path(directory)))
        seen: list[Event] = []
        for op in [*ops, "sync"]:
            if op == "sync":
                seen += watcher.sync()
                assert watcher.objects == {o.ref: o.doc for o in store.list()[0]}
                continue
            with contextlib.suppress(KanalError):  # refused (invalid, missing): nothing changed
                op(store)  # type: ignore[operator]
        assert watcher.revision == store.revision()
        assert [e.revision for e in seen] == sorted(e.revision for e in seen)


@settings(max_examples=30, deadline=None)
@given(ops=st.lists(operations, max_size=15))
def test_replaying_the_whole_log_gives_the_listed_state(
    empty_store: Path, ops: list[object]
) -> None:
    """Without compaction, events from revision 0 rebuild the store exactly."""
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(_copy(empty_store, directory))
        for op in ops:
            if op == "sync" or getattr(op, "__qualname__", "").startswith("_compact"):
                continue
            with contextlib.suppress(KanalError):
                op(store)  # type: ignore[operator]
        state: dict[object, object] = {}
        for event in store.poll(Revision(0)):
            if event.doc is None:
                del state[event.ref]
            else:
                state[event.ref] = event.doc
        assert state == {o.ref: o.doc for o in store.list()[0]}
