"""Where collectors read the cluster: manifest files or directories (versioned by mtime and
size) and the kanal datastore (versioned by revision)."""

from __future__ import annotations

import os
from pathlib import Path

from kanal.flows.source import ManifestSource, placed_pod, write_snapshot
from kanal.store.sqlite import SqliteStore

from . import cluster


def test_a_manifest_file_changes_version_when_rewritten(tmp_path: Path) -> None:
    path = cluster.write(tmp_path / "c.json", cluster.documents())
    source = ManifestSource(path)
    first = source.version()
    assert len(source.load().pods) == 4 and not source.is_store
    assert source.version() == first
    cluster.write(path, cluster.documents()[:-1])
    os.utime(path, ns=(1, 1))
    assert source.version() != first
    assert len(source.load().policies) == 2


def test_a_directory_is_versioned_by_every_file(tmp_path: Path) -> None:
    cluster.write(tmp_path / "a.json", cluster.documents()[:3])
    source = ManifestSource(tmp_path)
    first = source.version()
    cluster.write(tmp_path / "b.json", cluster.documents()[3:])
    assert source.version() != first
    assert len(source.load().pods) == 4


def test_a_datastore_is_versioned_by_revision(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    store.apply([("test", d) for d in cluster.documents()[:4]])
    source = ManifestSource(path)
    first = source.version()
    assert source.is_store and len(source.load().pods) == 1
    store.apply([("test", d) for d in cluster.documents()[4:]])
    assert source.version() != first and len(source.load().pods) == 4
    source.close()
    store.close()


def test_the_labs_snapshot_places_pods_and_is_read_back(tmp_path: Path) -> None:
    raw = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "x"},
           "status": {"podIP": "10.0.0.9"}}
    docs = [placed_pod(raw, node="n0", ips=["10.244.1.2"]), *cluster.documents()[:3]]
    assert raw["status"] == {"podIP": "10.0.0.9"}  # the input is not changed
    write_snapshot(tmp_path / "flows-manifests.json", docs)
    assert [p.name for p in tmp_path.iterdir()] == ["flows-manifests.json"]
    [pod] = ManifestSource(tmp_path / "flows-manifests.json").load().pods
    assert (pod.node_name, [str(ip) for ip in pod.ips]) == ("n0", ["10.244.1.2"])
