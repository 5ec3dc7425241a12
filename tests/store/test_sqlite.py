"""SqliteStore: revisions, kubectl-apply writes in one transaction, validation that rejects a
whole batch, the event log in order, polling across connections and processes, compaction."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kanal.errors import ManifestError, NotFoundError
from kanal.model.load import load_manifests, read_documents
from kanal.model.parse import parse_documents
from kanal.store.api import EventType, Outcome, ResyncRequired, Revision, StoreError
from kanal.store.mirror import Mirror
from kanal.store.sqlite import SqliteStore

from .builders import (
    Doc,
    Document,
    FakeClock,
    anp,
    lab,
    labels,
    namespace,
    netpol,
    on_node,
    open_store,
    pod,
    pod_ip,
    ref,
)

ROOT = Path(__file__).resolve().parents[2]
A, B, C = ref("Pod", "x/a"), ref("Pod", "x/b"), ref("Pod", "x/c")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> SqliteStore:
    return open_store(tmp_path, clock=clock)


def outcomes(result: object) -> list[tuple[str, str]]:
    return [(str(w.ref), w.outcome.value) for w in result.objects]  # type: ignore[attr-defined]


def doc_of(store: SqliteStore, key: str, kind: str = "Pod") -> Doc:
    stored = store.get(ref(kind, key))
    assert stored is not None
    return stored.doc


# -- writes and revisions --------------------------------------------------------------------------


def test_an_empty_store_is_at_revision_zero(store: SqliteStore) -> None:
    assert store.revision() == 0
    assert store.list() == ((), 0)
    assert store.poll(Revision(0)) == ()


def test_apply_creates_then_reports_unchanged_then_configured(
    store: SqliteStore, clock: FakeClock
) -> None:
    created = store.apply([pod("x/a", labels(app="web")), pod("x/b")])
    clock.now += 60
    again = store.apply([pod("x/a", labels(app="web")), pod("x/b", labels(app="db"))])

    assert (created.revision, again.revision) == (1, 2)
    assert outcomes(created) == [("Pod x/a", "created"), ("Pod x/b", "created")]
    assert outcomes(again) == [("Pod x/a", "unchanged"), ("Pod x/b", "configured")]
    b = store.get(B)
    assert b is not None
    assert (b.revision, b.created_revision, b.created_at) == (2, 1, 1_000_000.0)
    assert [e.revision for e in store.poll(Revision(0))] == [1, 1, 2]


def test_an_apply_that_changes_nothing_makes_no_revision(store: SqliteStore) -> None:
    store.apply([pod("x/a")])
    result = store.apply([pod("x/a")])
    assert result.revision == 1
    assert store.poll(Revision(1)) == ()


def test_one_apply_is_one_revision_with_its_events_in_input_order(store: SqliteStore) -> None:
    store.apply([pod("x/b")])
    store.apply([pod("x/c"), pod("x/a"), pod("x/b", labels(app="db"))])
    events = store.poll(Revision(1))
    assert [(e.type, str(e.ref), e.revision) for e in events] == [
        (EventType.ADDED, "Pod x/c", 2),
        (EventType.ADDED, "Pod x/a", 2),
        (EventType.MODIFIED, "Pod x/b", 2),
    ]


def test_documents_are_stored_normalized(store: SqliteStore) -> None:
    """Namespace made explicit (dropped for cluster-scoped kinds), the store's own metadata
    dropped, YAML timestamps stored as strings."""
    _, node = namespace("shop")
    assert isinstance(node, dict)
    node["metadata"] |= {"namespace": "ignored", "resourceVersion": "7", "uid": "u"}
    _, bare = pod("a")
    assert isinstance(bare, dict)
    bare["metadata"]["annotations"] = {"at": __import__("datetime").date(2024, 1, 2)}
    store.apply([("ns.yaml", node), ("pod.yaml", bare)])

    assert doc_of(store, "shop", "Namespace")["metadata"] == {"name": "shop"}
    assert doc_of(store, "default/a")["metadata"] == {
        "name": "a",
        "annotations": {"at": "2024-01-02"},
        "namespace": "default",
    }


def test_kind_list_items_are_stored_one_by_one_and_other_kinds_noted(store: SqliteStore) -> None:
    typed = {"apiVersion": "v1", "kind": "PodList", "items": [{"metadata": {"name": "p"}}]}
    plain = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            pod("x/q")[1],
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cm", "namespace": "x"}},
        ],
    }
    result = store.apply([("typed.yaml", typed), ("list.yaml", plain)])
    assert outcomes(result) == [("Pod default/p", "created"), ("Pod x/q", "created")]
    assert result.notes == (
        "list.yaml:item 2: skipped ConfigMap x/cm (kanal does not use this kind)",
    )


# -- validation ------------------------------------------------------------------------------------

BAD_NAME = pod("x/Bad")
NO_NAME: Document = ("noname.yaml", {"apiVersion": "v1", "kind": "Pod", "metadata": {}})


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        pytest.param(
            [pod("x/a"), BAD_NAME, NO_NAME],
            [
                "x-Bad.yaml: Pod x/Bad: metadata.name: invalid name 'Bad'",
                "noname.yaml: Pod: metadata.name: is required",
            ],
            id="every bad document is reported, the good one is not stored",
        ),
        pytest.param(
            [pod("x/a"), pod("x/a", labels(app="web"))],
            ["x-a.yaml: Pod x/a: is defined twice, also in x-a.yaml"],
            id="one object twice in a batch",
        ),
        pytest.param(
            [pod("x/a", labels(**{"bad key": "v"}))],
            ["x-a.yaml: Pod x/a: metadata.labels[bad key]: invalid label key 'bad key'"],
            id="an invalid label",
        ),
        pytest.param(
            [lab("other")],
            ["Lab: one Lab per set of manifests, got `one`, `other`"],
            id="a second Lab, with the stored one",
        ),
    ],
)
def test_an_invalid_batch_is_rejected_whole(
    store: SqliteStore, batch: list[Document], expected: list[str]
) -> None:
    store.apply([lab("one")])
    with pytest.raises(ManifestError) as info:
        store.apply(batch)
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)
    assert [o.ref for o in store.list()[0]] == [ref("Lab", "one")]
    assert store.revision() == 1


def test_list_problems_name_the_item_as_the_parser_does(store: SqliteStore) -> None:
    batch: list[Document] = [
        ("l.yaml", {"apiVersion": "v1", "kind": "List", "items": [BAD_NAME[1]]})
    ]
    with pytest.raises(ManifestError) as stored:
        store.apply(batch)
    with pytest.raises(ManifestError) as parsed:
        parse_documents(batch)
    assert stored.value.problems == parsed.value.problems


def test_the_same_lab_may_be_applied_again(store: SqliteStore) -> None:
    store.apply([lab("one")])
    assert outcomes(store.apply([lab("one")])) == [("Lab one", "unchanged")]


BATCHES: list[list[Document]] = [
    [pod("x/a", labels(app="web")), netpol("x/deny"), namespace("x")],
    [pod("x/b"), BAD_NAME],
    [lab("l")],
    [lab("m"), pod("x/c")],
    [anp("first", 5), anp("second", 5)],
    [pod("x/a", on_node("Not_A_Node"))],
    [pod("y/d", pod_ip("10.0.0.1"))],
    [pod("y/d", pod_ip("10.0.0.999"))],
]


def _outcome_of(store: SqliteStore, batch: list[Document]) -> object:
    try:
        return outcomes(store.apply(batch))
    except ManifestError as exc:
        return [str(p) for p in exc.problems]


def test_incremental_validation_agrees_with_validating_everything(tmp_path: Path) -> None:
    """What the store validates per write (the batch and stored Labs) decides as validating
    the whole union would: see kanal.store.documents."""
    quick = SqliteStore(tmp_path / "quick.db")
    full = SqliteStore(tmp_path / "full.db", full_validation=True)
    for batch in BATCHES:
        assert _outcome_of(quick, batch) == _outcome_of(full, batch)
    assert [(o.ref, o.doc) for o in quick.list()[0]] == [(o.ref, o.doc) for o in full.list()[0]]


# -- apply as kubectl applies: the three-way merge -------------------------------------------------


def test_apply_keeps_labels_set_by_others_and_removes_what_it_no_longer_sets(
    store: SqliteStore,
) -> None:
    store.apply([pod("x/a", labels(app="web", tier="front"), on_node("n1"))])
    store.update(
        A,
        lambda doc: (
            doc
            | {
                "metadata": doc["metadata"]
                | {"labels": {"app": "api", "tier": "front", "owner": "ops"}}
            }
        ),
    )
    result = store.apply([pod("x/a", labels(app="web"))])

    assert outcomes(result) == [("Pod x/a", "configured")]
    assert doc_of(store, "x/a")["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    assert "spec" not in doc_of(store, "x/a")


def test_an_unchanged_apply_still_becomes_the_next_merge_base(store: SqliteStore) -> None:
    """Applying a label another writer already set leaves the object as it is, but the
    label is the apply's from then on: the next apply without it removes it."""
    store.apply([pod("x/a")])
    store.update(A, lambda doc: doc | {"metadata": doc["metadata"] | {"labels": {"k": "v"}}})
    assert outcomes(store.apply([pod("x/a", labels(k="v"))])) == [("Pod x/a", "unchanged")]
    store.apply([pod("x/a")])
    assert "labels" not in doc_of(store, "x/a")["metadata"]


# -- delete and update -----------------------------------------------------------------------------


def test_delete_is_one_revision_with_deleted_events_carrying_no_document(
    store: SqliteStore,
) -> None:
    store.apply([pod("x/a"), pod("x/b"), pod("x/c")])
    result = store.delete([A, C, A])
    assert outcomes(result) == [("Pod x/a", "deleted"), ("Pod x/c", "deleted")]
    assert [(e.type, e.ref, e.doc, e.revision) for e in store.poll(Revision(1))] == [
        (EventType.DELETED, A, None, 2),
        (EventType.DELETED, C, None, 2),
    ]
    assert [o.ref for o in store.list()[0]] == [B]


def test_deleting_a_missing_object_deletes_nothing_unless_missing_ok(store: SqliteStore) -> None:
    store.apply([pod("x/a")])
    with pytest.raises(NotFoundError, match=r"Pod `x/b` does not exist"):
        store.delete([A, B])
    assert store.get(A) is not None
    result = store.delete([A, B], missing_ok=True)
    assert outcomes(result) == [("Pod x/a", "deleted")]
    assert store.delete([B], missing_ok=True).revision == 2


def test_update_validates_and_keeps_the_object_key(store: SqliteStore) -> None:
    store.apply([pod("x/a")])
    with pytest.raises(NotFoundError):
        store.update(B, lambda doc: doc)
    with pytest.raises(ManifestError, match="invalid label value"):
        store.update(A, lambda doc: doc | {"metadata": doc["metadata"] | {"labels": {"k": "-"}}})
    with pytest.raises(ValueError, match="must keep its kind, namespace and name"):
        store.update(A, lambda doc: doc | {"metadata": doc["metadata"] | {"name": "z"}})
    assert outcomes(store.update(A, lambda doc: doc)) == [("Pod x/a", Outcome.UNCHANGED.value)]
    assert store.revision() == 1


def test_manifests_parses_every_stored_object(store: SqliteStore) -> None:
    store.apply([pod("x/a", labels(app="web")), netpol("x/deny"), anp("block", 3)])
    manifests = store.manifests()
    assert [p.key for p in manifests.pods] == ["x/a"]
    assert [p.key for p in manifests.policies] == ["x/deny"]
    assert [p.name for p in manifests.admin_policies] == ["block"]


def test_list_filters_by_kind_and_namespace(store: SqliteStore) -> None:
    store.apply([pod("x/a"), pod("y/b"), netpol("x/deny"), namespace("x")])
    assert [str(o.ref) for o in store.list("Pod")[0]] == ["Pod x/a", "Pod y/b"]
    assert [str(o.ref) for o in store.list("Pod", "y")[0]] == ["Pod y/b"]
    assert [str(o.ref) for o in store.list(None, "x")[0]] == ["NetworkPolicy x/deny", "Pod x/a"]
    assert store.list("Namespace")[1] == 1


# -- watching --------------------------------------------------------------------------------------


def test_poll_waits_in_steps_until_the_timeout(tmp_path: Path, clock: FakeClock) -> None:
    store = open_store(tmp_path, clock=clock, poll_interval=0.05)
    assert store.poll(Revision(0), timeout=0.12) == ()
    assert clock.slept == pytest.approx([0.05, 0.05, 0.02])


def test_poll_returns_a_commit_made_by_another_connection_while_it_waits(
    tmp_path: Path, clock: FakeClock
) -> None:
    watcher = open_store(tmp_path, clock=clock)
    writer = open_store(tmp_path)
    clock.on_sleep = lambda: writer.apply([pod("x/a")]) if len(clock.slept) == 3 else None

    events = watcher.poll(Revision(0), timeout=10)

    assert [(e.type, e.ref) for e in events] == [(EventType.ADDED, A)]
    assert len(clock.slept) == 3


def test_poll_from_a_compacted_revision_requires_a_resync(tmp_path: Path) -> None:
    """history 2: the log is trimmed back to 2 events when it holds more than 2 + 1."""
    store = open_store(tmp_path, history=2)
    for name in "abcde":
        store.apply([pod(f"x/{name}")])
    with pytest.raises(ResyncRequired) as info:
        store.poll(Revision(1))
    assert (info.value.oldest, info.value.current) == (2, 5)
    assert [e.ref.name for e in store.poll(Revision(2))] == ["c", "d", "e"]


def test_compaction_keeps_whole_revisions(tmp_path: Path) -> None:
    """A batch larger than the history is kept whole: a watcher never sees half an apply."""
    store = open_store(tmp_path, history=3)
    store.apply([pod("x/a")])
    store.apply([pod(f"x/p{i}") for i in range(5)])
    assert store.compact() == 1
    assert len(store.poll(Revision(1))) == 5


def test_a_store_behind_the_watcher_requires_a_resync(tmp_path: Path) -> None:
    """A store recreated from scratch goes back in time: the watcher must not wait forever."""
    store = open_store(tmp_path)
    with pytest.raises(ResyncRequired):
        store.poll(Revision(7))


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kanal.store.sqlite import SqliteStore
    store = SqliteStore(Path(sys.argv[1]))
    for i in range(40):
        doc = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"p{i % 7}", "namespace": "x", "labels": {"i": str(i)}}}
        store.apply([("w", doc)])
        if i % 5 == 4:
            store.delete([store.list("Pod")[0][0].ref])
    """
)


def test_a_watcher_follows_a_writer_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    reader = SqliteStore(path, poll_interval=0.005)
    mirror = Mirror(reader)
    mirror.sync()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT)
    revisions: list[int] = []
    while writer.poll() is None or revisions[-1:] != [reader.revision()]:
        revisions += [e.revision for e in mirror.sync(timeout=0.05)]
    assert writer.returncode == 0
    assert revisions == sorted(revisions)
    assert sorted(set(revisions)) == list(range(revisions[0], reader.revision() + 1))
    assert mirror.objects == {o.ref: o.doc for o in reader.list()[0]}


PARALLEL_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kanal.store.sqlite import SqliteStore
    store = SqliteStore(Path(sys.argv[1]))
    for i in range(30):
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{sys.argv[2]}-{i}"}}
        store.apply([("w", doc)])
    """
)


def test_writers_in_several_processes_each_get_their_own_revisions(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE and the busy timeout serialize writers: no revision is lost or shared."""
    path = tmp_path / "store.db"
    SqliteStore(path).close()
    writers = [
        subprocess.Popen([sys.executable, "-c", PARALLEL_WRITER, str(path), name], cwd=ROOT)
        for name in ("a", "b", "c")
    ]
    assert [w.wait() for w in writers] == [0, 0, 0]
    store = SqliteStore(path)
    events = store.poll(Revision(0))
    assert [e.revision for e in events] == list(range(1, 91))
    assert len(store.list("Pod")[0]) == 90


# -- files -----------------------------------------------------------------------------------------


def test_read_commands_do_not_create_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"there is no store at `.*missing.db`"):
        SqliteStore(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"`.*junk.db` is not a usable store"):
        SqliteStore(tmp_path / "junk.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match=r"`.*other.db` is not a kanal store of format 1"):
        SqliteStore(other)


def test_the_file_is_in_wal_mode(store: SqliteStore) -> None:
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


# -- reading documents for the store ---------------------------------------------------------------


def test_read_documents_gives_raw_documents_with_sources() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: List\nitems: []\n"
    assert read_documents(["-"], stdin=io.StringIO(text)) == [
        ("<stdin>:doc 1", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}),
        ("<stdin>:doc 2", {"kind": "List", "items": []}),
    ]


def test_read_documents_fails_as_load_manifests_does(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: A}\n---\n[")
    paths = [str(tmp_path / "bad.yaml"), str(tmp_path / "missing.yaml")]
    with pytest.raises(ManifestError) as read:
        read_documents(paths)
    with pytest.raises(ManifestError) as loaded:
        load_manifests(paths)
    assert read.value.problems == loaded.value.problems
    assert len(read.value.problems) == 3
