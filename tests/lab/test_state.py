"""The lab state: documents kept per object, JSON round trip, atomic file, clean removal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from kanal.errors import LabError, ManifestError
from kanal.ipam import IpamState
from kanal.lab.state import LabState, Phase, StateStore, parse_union, read_documents

from .docs import lab, namespace, pod, write


def test_every_object_is_kept_once_list_items_included_and_other_kinds_skipped(
    tmp_path: Path,
) -> None:
    pod_list = {"apiVersion": "v1", "kind": "PodList", "items": [
        {"metadata": {"name": "b", "namespace": "x"}}]}
    plain_list = {"apiVersion": "v1", "kind": "List", "items": [namespace("x")]}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    path = write(tmp_path / "all.yaml", [pod("x/a"), pod_list, plain_list, deployment, lab()])
    manifests, documents = read_documents([path])
    assert [d.key for d in documents] == ["Pod/x/a", "Pod/x/b", "Namespace//x", "Lab//t"]
    assert documents[1].raw["kind"] == "Pod", "typed list items inherit their kind"
    assert documents[0].source == f"{path}:doc 1"
    assert [p.key for p in parse_union(documents).pods] == ["x/a", "x/b"]
    skipped = f"{path}:doc 4: skipped Deployment d (kanal does not use this kind)"
    assert manifests.notes == (skipped,)


def test_invalid_input_raises_with_every_problem_and_stdin_is_read() -> None:
    text = yaml.safe_dump(pod("x/a", ports=((70000, "TCP"),)))
    with pytest.raises(ManifestError, match="70000"):
        read_documents(["-"], stdin=io.StringIO(text))


def test_the_state_round_trips_through_its_file_and_yaml_dates_become_text(
    tmp_path: Path,
) -> None:
    raw = pod("x/a")
    raw["metadata"]["creationTimestamp"] = "2024-01-02T03:04:05Z"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw).replace("'2024-01-02T03:04:05Z'", "2024-01-02 03:04:05"))
    _, documents = read_documents([str(path)])
    state = LabState("kt00-", lab(), {d.key: d for d in documents}, {"x/a": "node-1"},
                     IpamState(), {"node-1": 42}, {"node-1": 43}, Phase.UP, flows=True,
                     collectors={"node-1": 44})
    store = StateStore(tmp_path / "state")
    store.save(state)
    loaded = store.load()
    assert loaded is not None and loaded.to_json() == state.to_json()
    assert (loaded.flows, loaded.collectors) == (True, {"node-1": 44})
    assert loaded.spec().name == "t"
    assert loaded.documents["Pod/x/a"].raw["metadata"]["creationTimestamp"].startswith("2024")


def test_a_state_from_before_flow_collectors_reads_as_a_lab_without_flows(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path)
    data = LabState("kt00-", None, agents={"node-1": 43}, phase=Phase.UP).to_json()
    del data["flows"], data["collectors"]
    store.path.write_text(json.dumps(data))
    loaded = store.load()
    assert loaded is not None and (loaded.flows, loaded.collectors) == (False, {})
    assert loaded.agents == {"node-1": 43}


def test_a_damaged_state_is_a_lab_error_naming_the_way_out(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(json.dumps({"version": 99}))
    with pytest.raises(LabError, match="kanal lab down --prefix"):
        store.load()


def test_remove_deletes_the_lab_files_and_the_directory_only_when_empty(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "lab")
    store.save(LabState("kt00-", None))
    for name in ("servers-node-1.log", "collector-node-1.log", "collector-node-1.ready",
                 "flows.db", "flows.db-wal", "flows.db-shm"):
        store.file(name).write_text("x")
    store.remove()
    assert not store.directory.exists()
    store.save(LabState("kt00-", None))
    (store.directory / "mine.txt").write_text("keep")
    store.remove()
    assert sorted(p.name for p in store.directory.iterdir()) == ["mine.txt"]


def test_one_changing_command_at_a_time_and_no_directory_left_without_a_lab(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "lab")
    with (
        store.locked(),
        pytest.raises(LabError, match="another `kanal lab` command"),
        StateStore(tmp_path / "lab").locked(),
    ):
        pass
    assert not store.directory.exists()
