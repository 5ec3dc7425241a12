"""Where a collector reads the cluster from, and how it notices a change.

- a manifest file or directory (what `kanal check -f` reads), where pods carry
  `spec.nodeName` and `status.podIPs`: the version is every file's (path, mtime, size). Writers
  should replace files atomically (write, then rename) so a reload never reads half a file; a
  load that fails anyway keeps the previous state and is retried at the next change;
- a kanal datastore (`kanal.store.sqlite.SqliteStore`, recognised by the SQLite header): the
  version is the store's revision.

`ManifestSource.version()` is cheap (stat calls or one query) and is polled; `load()` parses.

For writers (the lab): `placed_pod` sets a Pod document's node and addresses, `write_snapshot`
writes documents as one `kind: List` file atomically.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kanal.model.load import load_manifests
from kanal.model.objects import Manifests
from kanal.store.sqlite import SqliteStore

_SQLITE_MAGIC = b"SQLite format 3\0"


class ManifestSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._store: SqliteStore | None = None
        if path.is_file() and path.read_bytes()[:16] == _SQLITE_MAGIC:
            self._store = SqliteStore(path, create=False)

    @property
    def is_store(self) -> bool:
        return self._store is not None

    def version(self) -> object:
        if self._store is not None:
            return self._store.revision()
        if self.path.is_dir():
            files = sorted(p for p in self.path.rglob("*") if p.is_file())
        else:
            files = [self.path]
        return tuple(_stamp(p) for p in files)

    def load(self) -> Manifests:
        if self._store is not None:
            return self._store.manifests()
        return load_manifests([str(self.path)])

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (str(path), -1, -1)
    return (str(path), stat.st_mtime_ns, stat.st_size)


def placed_pod(raw: Mapping[str, Any], *, node: str, ips: Sequence[object]) -> dict[str, Any]:
    """A copy of a Pod document with `spec.nodeName` and `status.podIPs` (and `podIP`) set to
    where the pod runs and its addresses."""
    doc = copy.deepcopy(dict(raw))
    doc.setdefault("spec", {})["nodeName"] = node
    status = doc.setdefault("status", {})
    status["podIPs"] = [{"ip": str(ip)} for ip in ips]
    if ips:
        status["podIP"] = str(ips[0])
    else:
        status.pop("podIP", None)
    return doc


def write_snapshot(path: Path, documents: Iterable[Mapping[str, Any]]) -> None:
    """`documents` as one `kind: List` JSON file at `path`, replaced atomically (write to a
    sibling, fsync, rename): a collector polling it never reads half a file."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w") as out:
        json.dump({"apiVersion": "v1", "kind": "List", "items": list(documents)}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


__all__ = ["ManifestSource", "placed_pod", "write_snapshot"]
