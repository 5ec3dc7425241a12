"""From raw documents to what the store keeps, and the validation every write passes.

```
(source, raw) ──► expand ──► identify ──► normalize ──► Incoming(source, ref, doc)
                  kind: List   KINDS +      plain JSON, namespace set, server-set
                  items        metadata     metadata (resourceVersion...) dropped
merged docs + stored docs that must be checked with them ──► validate ──► parse_documents
```

A document whose kind kanal does not use, or which cannot be keyed (no name), gets no ref: it
goes to validation as it is, which notes the first and reports the second, exactly as `-f`
input is reported.

Why a write need not re-validate every stored object: each stored object passed validation
when it was written, and `kanal.model.parse` has only two rules across documents, duplicates
(impossible between stored objects, which are keyed) and one `Lab` per set of manifests. So a
write validates its own documents plus the stored objects of `UNION_KINDS`; `full=True` in the
store validates the whole union instead, and the tests check that both agree.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kanal.errors import Problem
from kanal.model.meta import DEFAULT_NAMESPACE
from kanal.model.parse import KINDS, KindSpec, ManifestAssembler
from kanal.store.api import Doc, ObjectRef

UNION_KINDS = frozenset({"Lab"})
"""Kinds whose stored objects are validated with every write (one Lab per set of manifests)."""

SERVER_FIELDS = ("resourceVersion", "creationTimestamp", "uid", "generation", "managedFields")
"""metadata the store owns: dropped from input, so `get -o yaml | apply -f -` is unchanged."""

STORE_SOURCE = "<store>"
"""The source of stored objects in problems, as `<stdin>` is for standard input."""

SPECS_BY_KIND: dict[str, KindSpec] = {spec.kind: spec for spec in KINDS.values()}


@dataclass(frozen=True, slots=True)
class Incoming:
    """One document of a write; `ref` None when it is not a storable object (see module doc)."""

    source: str
    ref: ObjectRef | None
    doc: object


def prepare(documents: Iterable[tuple[str, object]]) -> tuple[list[Incoming], list[Problem]]:
    """Each single document of `documents`, keyed and normalized where possible, and the
    problems found doing so (values JSON cannot hold)."""
    incoming: list[Incoming] = []
    problems: list[Problem] = []
    for source, raw in expand(documents):
        ref = identify(raw)
        if ref is None or not isinstance(raw, dict):
            incoming.append(Incoming(source, None, raw))
            continue
        try:
            incoming.append(Incoming(source, ref, normalize(raw, ref)))
        except TypeError as exc:
            problems.append(Problem(source, ref.kind, ref.display(), "", str(exc)))
    return incoming, problems


def expand(documents: Iterable[tuple[str, object]]) -> Iterator[tuple[str, object]]:
    """Lists as `kanal.model.parse` expands them: `kind: List` items as they are, typed lists'
    (`PodList`) items inheriting apiVersion and kind; sources `source:item N`."""
    for source, raw in documents:
        items = _list_items(raw)
        if items is None:
            yield source, raw
            continue
        assert isinstance(raw, dict)
        kind = raw["kind"]
        inherited = {"apiVersion": raw.get("apiVersion"), "kind": kind.removesuffix("List")}
        typed = kind != "List"
        for index, item in enumerate(items, start=1):
            whole = {**inherited, **item} if typed and isinstance(item, dict) else item
            yield from expand([(f"{source}:item {index}", whole)])


def _list_items(raw: object) -> list[object] | None:
    if not isinstance(raw, dict):
        return None
    kind, items = raw.get("kind"), raw.get("items")
    if not isinstance(kind, str) or not isinstance(items, list):
        return None
    return items if kind == "List" or kind.endswith("List") else None


def identify(raw: object) -> ObjectRef | None:
    """The key of a document of a kind kanal stores, or None (unknown kind, no usable name)."""
    if not isinstance(raw, dict):
        return None
    spec = KINDS.get((str(raw.get("apiVersion")), str(raw.get("kind"))))
    metadata = raw.get("metadata")
    if spec is None or not isinstance(metadata, dict):
        return None
    name = metadata.get("name")
    namespace = (metadata.get("namespace") or DEFAULT_NAMESPACE) if spec.namespaced else ""
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        return None
    return ObjectRef(spec.kind, namespace, name)


def normalize(raw: Mapping[str, Any], ref: ObjectRef) -> Doc:
    """A plain-JSON copy with the namespace made explicit (dropped for cluster-scoped kinds,
    as the API server drops it) and the store's own metadata removed; TypeError for values
    JSON cannot hold."""
    doc: Doc = json.loads(json.dumps(raw, default=_json_value))
    metadata = doc["metadata"]
    for key in SERVER_FIELDS:
        metadata.pop(key, None)
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    else:
        metadata.pop("namespace", None)
    return doc


def _json_value(value: object) -> str:
    """YAML timestamps become ISO strings (as the API server stores them); nothing else."""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    raise TypeError(
        f"holds a {type(value).__name__} value, which cannot be stored: use plain strings, "
        "numbers, lists and maps (no !!binary or !!set)"
    )


def validate(
    documents: Iterable[tuple[str, object]], *, problems: Iterable[Problem] = ()
) -> tuple[str, ...]:
    """Validate `documents` as one set of manifests; returns the notes (skipped kinds) or
    raises `ManifestError` with `problems` and every problem found."""
    assembler = ManifestAssembler()
    for problem in problems:
        assembler.add_problem(problem)
    for source, raw in documents:
        assembler.add_document(source, raw)
    return assembler.finish().notes
