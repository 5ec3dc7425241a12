"""Test doubles for the agent: an in-memory datastore and a kernel that understands exactly what
the agent sends (whole tables and element commands).

```
store = MemoryStore(); store.put([pod(...), netpol(...)])    one transaction = one revision
kernel = FakeKernel(); agent = NodeAgent("n1", store, kernel)
kernel.state() == table_state(table_text(expected ruleset))   structure text + elements
```

`FakeKernel` keeps a table as its structure (the text with every `elements = {...}` removed) and
the elements of each set and map, so a sequence of loads and deltas can be compared with one
from-scratch table. Like nft it refuses to delete a missing element, to add a map key that is
there with another verdict, and any element command when there is no table; `fail` makes the
next calls raise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kanal.agent.dataplane import KernelTable
from kanal.errors import DataplaneError
from kanal.model.objects import Manifests
from kanal.model.parse import parse_documents
from kanal.store.api import (
    Datastore,
    Doc,
    Event,
    EventType,
    ObjectRef,
    ResyncRequired,
    Revision,
    StoredObject,
    WriteResult,
)
from kanal.store.documents import identify

# -- store ------------------------------------------------------------------------------------


class MemoryStore(Datastore):
    """Just enough of a datastore for the agent's Mirror: list, poll, and writes by transaction
    (`put` documents, `remove` refs). No validation: a test can store an unreadable document."""

    def __init__(self) -> None:
        self.objects: dict[ObjectRef, Doc] = {}
        self.log: list[Event] = []
        self.rev = 0
        self.compacted = 0

    def put(self, docs: Iterable[Doc]) -> int:
        return self.write(docs, ())

    def remove(self, refs: Iterable[ObjectRef]) -> int:
        return self.write((), refs)

    def write(self, docs: Iterable[Doc], refs: Iterable[ObjectRef]) -> int:
        """Store `docs` and delete `refs` in one transaction; the new revision."""
        changes: list[tuple[ObjectRef, Doc | None]] = [(ref, None) for ref in refs]
        changes += [(key_of(d), d) for d in docs]
        return self._commit(changes)

    def _commit(self, changes: Sequence[tuple[ObjectRef, Doc | None]]) -> int:
        changes = [(r, d) for r, d in changes if self.objects.get(r) != d]
        if not changes:
            return self.rev
        self.rev += 1
        for ref, doc in changes:
            kind = EventType.DELETED if doc is None else (
                EventType.MODIFIED if ref in self.objects else EventType.ADDED)
            if doc is None:
                self.objects.pop(ref, None)
            else:
                self.objects[ref] = doc
            self.log.append(Event(kind, ref, doc, Revision(self.rev)))
        return self.rev

    def compact(self) -> None:
        self.log.clear()
        self.compacted = self.rev

    def revision(self) -> Revision:
        return Revision(self.rev)

    def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[tuple[StoredObject, ...], Revision]:
        found = tuple(
            StoredObject(ref, doc, Revision(self.rev), Revision(self.rev), 0.0)
            for ref, doc in sorted(self.objects.items())
        )
        return found, Revision(self.rev)

    def poll(self, since: Revision, *, timeout: float = 0.0) -> tuple[Event, ...]:
        if since < self.compacted:
            raise ResyncRequired(since, oldest=Revision(self.compacted),
                                 current=Revision(self.rev))
        return tuple(e for e in self.log if e.revision > since)

    def get(self, ref: ObjectRef) -> StoredObject | None:
        raise NotImplementedError

    def apply(self, documents: Sequence[tuple[str, object]]) -> WriteResult:
        raise NotImplementedError

    def delete(self, refs: Sequence[ObjectRef], *, missing_ok: bool = False) -> WriteResult:
        raise NotImplementedError

    def update(self, ref: ObjectRef, change: Any) -> WriteResult:
        raise NotImplementedError

    def manifests(self) -> Manifests:
        return parse_documents(("<memory>", d) for d in self.objects.values())

    def close(self) -> None:
        pass


def key_of(doc: Doc) -> ObjectRef:
    """The store's key of `doc`, also for one the store could not key (only tests store such)."""
    found = identify(doc)
    if found is not None:
        return found
    meta = doc.get("metadata") or {}
    return ObjectRef(str(doc.get("kind")), str(meta.get("namespace", "")), str(meta.get("name")))


# -- kernel -----------------------------------------------------------------------------------

_BLOCK = re.compile(r"^\t(set|map) (\S+) \{$")
_ELEMENT_COMMAND = re.compile(r"^(add|delete) element inet kanal (\S+) \{ (.*) \}$")


@dataclass(frozen=True)
class TableState:
    structure: str
    sets: dict[str, frozenset[str]]
    maps: dict[str, dict[str, str]]


def table_state(text: str) -> TableState:
    """Split a table text (as `kanal.render.table_text` writes it) into structure and elements."""
    structure: list[str] = []
    sets: dict[str, set[str]] = {}
    maps: dict[str, dict[str, str]] = {}
    current: tuple[str, str] | None = None
    in_elements = False
    for line in text.splitlines():
        block = _BLOCK.match(line)
        if block:
            current = (block.group(1), block.group(2))
            if current[0] == "set":
                sets.setdefault(current[1], set())
            else:
                maps.setdefault(current[1], {})
        stripped = line.strip()
        if stripped.startswith("elements = {"):
            body = stripped.removeprefix("elements = {").strip()
            in_elements = not body.endswith("}")
            _add_elements(current, body.removesuffix("}"), sets, maps)
            continue
        if in_elements:
            in_elements = stripped != "}"
            if in_elements:
                _add_elements(current, stripped, sets, maps)
            continue
        structure.append(line)
    return TableState(
        "\n".join(structure),
        {name: frozenset(v) for name, v in sets.items()},
        maps,
    )


def _split(body: str) -> list[str]:
    return [e.strip() for e in body.split(",") if e.strip()]


def _add_elements(
    current: tuple[str, str] | None,
    body: str,
    sets: dict[str, set[str]],
    maps: dict[str, dict[str, str]],
) -> None:
    assert current is not None, "elements outside a set or map"
    kind, name = current
    for element in _split(body):
        if kind == "set":
            sets[name].add(element)
        else:
            key, _, verdict = element.partition(" : ")
            maps[name][key] = verdict


@dataclass
class FakeKernel:
    """A `Dataplane` that keeps the table as structure + elements (see the module docstring)."""

    structure: str | None = None
    sets: dict[str, set[str]] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """Call kinds (`full`, `delta`, `read`) that fail, consumed one per call."""
    closed: bool = False

    def fail(self, *kinds: str) -> None:
        self.failures.extend(kinds)

    def _maybe_fail(self, kind: str) -> None:
        if kind in self.failures:
            self.failures.remove(kind)
            raise DataplaneError(f"injected failure of {kind}")

    def apply_full(self, text: str) -> None:
        self.calls.append(("full", text))
        self._maybe_fail("full")
        state = table_state(text)
        self.structure = state.structure
        self.sets = {k: set(v) for k, v in state.sets.items()}
        self.maps = {k: dict(v) for k, v in state.maps.items()}

    def apply_delta(self, text: str) -> None:
        self.calls.append(("delta", text))
        self._maybe_fail("delta")
        if self.structure is None:
            raise DataplaneError("No such file or directory: no table")
        sets = {k: set(v) for k, v in self.sets.items()}
        maps = {k: dict(v) for k, v in self.maps.items()}
        for line in text.splitlines():
            match = _ELEMENT_COMMAND.match(line)
            assert match, f"not an element command: {line!r}"
            verb, name, body = match.groups()
            _element_command(verb, name, _split(body), sets, maps)
        self.sets, self.maps = sets, maps  # one transaction: all or nothing

    def read_current(self) -> KernelTable | None:
        self.calls.append(("read", ""))
        self._maybe_fail("read")
        if self.structure is None:
            return None
        lines = self.structure.splitlines()
        chains = sum(1 for line in lines if line.startswith("\tchain "))
        rules = sum(
            1 for line in lines
            if line.startswith("\t\t")
            and not line.strip().startswith(("type ", "comment ", "flags "))
        )
        return KernelTable(chains, rules, len(self.sets), sum(len(s) for s in self.sets.values()),
                           sum(len(m) for m in self.maps.values()))

    def close(self) -> None:
        self.closed = True

    def state(self) -> TableState:
        assert self.structure is not None, "no table loaded"
        return TableState(
            self.structure,
            {k: frozenset(v) for k, v in self.sets.items()},
            {k: dict(v) for k, v in self.maps.items()},
        )

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls if kind != "read"]


def _element_command(
    verb: str, name: str, elements: list[str], sets: dict[str, set[str]],
    maps: dict[str, dict[str, str]],
) -> None:
    if name in sets:
        for element in elements:
            if verb == "delete":
                if element not in sets[name]:
                    raise DataplaneError(f"delete of missing element {element} in {name}")
                sets[name].discard(element)
            else:
                sets[name].add(element)
        return
    if name not in maps:
        raise DataplaneError(f"No such file or directory: no set or map {name}")
    for element in elements:
        key, _, verdict = element.partition(" : ")
        if verb == "delete":
            if key not in maps[name]:
                raise DataplaneError(f"delete of missing map key {key} in {name}")
            del maps[name][key]
        elif maps[name].get(key, verdict) != verdict:
            raise DataplaneError(f"map key {key} in {name} exists with another verdict")
        else:
            maps[name][key] = verdict
