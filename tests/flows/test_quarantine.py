"""Quarantiner on a real SQLite datastore: the pod gets the label in a new revision, once; what
cannot be labelled says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kanal.flows.alertscope import AlertKey
from kanal.flows.quarantine import Quarantiner
from kanal.model.alertrule import QuarantineAction
from kanal.store.api import ObjectRef
from kanal.store.sqlite import SqliteStore

from . import cluster

OTHER = AlertKey("z/other", "z", "other", "10.244.2.3")
POD = ObjectRef("Pod", "z", "other")


@pytest.fixture
def datastore(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    store.apply([("cluster", doc) for doc in cluster.documents()])
    yield store
    store.close()


@pytest.fixture
def quarantiner(datastore: SqliteStore) -> Iterator[Quarantiner]:
    found = Quarantiner(datastore.path)
    yield found
    found.close()


def _labels(datastore: SqliteStore) -> dict[str, str]:
    stored = datastore.get(POD)
    assert stored is not None
    return dict(stored.doc["metadata"]["labels"])


def test_the_pod_is_labelled_in_a_new_revision(
    datastore: SqliteStore, quarantiner: Quarantiner
) -> None:
    before = datastore.revision()
    assert quarantiner.quarantine(OTHER, QuarantineAction()) == (
        True, f"quarantined z/other: labelled kanal.io/quarantine=true (store revision "
              f"{before + 1})")
    assert datastore.revision() == before + 1
    assert _labels(datastore) == {"app": "other", "kanal.io/quarantine": "true"}
    assert quarantiner.quarantine(OTHER, QuarantineAction()) == (
        True, "z/other was already labelled kanal.io/quarantine=true")
    assert datastore.revision() == before + 1


def test_another_label_and_value_overwrite(
    datastore: SqliteStore, quarantiner: Quarantiner
) -> None:
    quarantiner.quarantine(OTHER, QuarantineAction("example.com/isolate", "a"))
    quarantiner.quarantine(OTHER, QuarantineAction("example.com/isolate", "b"))
    assert _labels(datastore)["example.com/isolate"] == "b"


def test_what_cannot_be_labelled_says_why(
    datastore: SqliteStore, quarantiner: Quarantiner
) -> None:
    external = AlertKey("192.0.2.9", ip="192.0.2.9")
    assert quarantiner.quarantine(external, QuarantineAction()) == (
        False, "cannot quarantine 192.0.2.9: not a pod (only pods can be labelled)")
    gone = AlertKey("z/gone", "z", "gone", "10.244.2.9")
    assert quarantiner.quarantine(gone, QuarantineAction()) == (
        False, "cannot quarantine z/gone: it is no longer in the datastore")
    assert Quarantiner(None).quarantine(OTHER, QuarantineAction()) == (
        False, "cannot quarantine z/other: the collector reads manifest files, not a datastore "
               "(give --manifests a kanal datastore)")


def test_a_file_that_is_not_a_datastore(tmp_path: Path) -> None:
    (tmp_path / "x.db").write_text("not sqlite")
    done, why = Quarantiner(tmp_path / "x.db").quarantine(OTHER, QuarantineAction())
    assert not done and why.startswith("cannot quarantine z/other: ")
