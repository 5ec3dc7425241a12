"""Test doubles for the agent: an in-memory datastore and a kernel that understands exactly what
the agent sends (whole tables, element commands, sets and chains declared and deleted).

```
store = MemoryStore(); store.put([pod(...), netpol(...)])    one transaction = one revision
kernel = FakeKernel(); agent = NodeAgent("n1", store, kernel)
kernel.state() == table_state(table_text(expected ruleset))   declarations + elements
```

`FakeKernel` keeps a table as its declarations (each set, map and chain with its lines, elements
removed; in no order, as a listing of a patched table differs from a fresh one only in order)
and the elements of each set and map, so a sequence of loads and deltas can be compared with one
from-scratch table. Like nft it refuses to delete a missing element, to add a map key that is
there with another verdict, any element command when there is no table, and to delete a chain
or set still in use; `fail` makes the next calls raise.
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

_BLOCK = re.compile(r"^\t(set|map|chain) (\S+) \{$")
_ELEMENT_COMMAND = re.compile(r"^(add|delete) element inet kanal (\S+) \{ (.*) \}$")
_DELETE = re.compile(r"^delete (chain|set) inet kanal (\S+)$")

Structure = dict[str, tuple[str, ...]]
"""A table's declarations without elements: `set x` / `map x` / `chain x` -> its lines."""


@dataclass(frozen=True)
class TableState:
    """A table as the kernel holds it: what a listing shows, whatever its order."""

    structure: Structure
    sets: dict[str, frozenset[str]]
    maps: dict[str, dict[str, str]]


def table_state(text: str) -> TableState:
    """Split a table text (as `kanal.render.table_text` writes it) into declarations and
    elements."""
    structure: dict[str, list[str]] = {}
    sets: dict[str, set[str]] = {}
    maps: dict[str, dict[str, str]] = {}
    current: tuple[str, str] | None = None
    in_elements = False
    for line in text.splitlines():
        block = _BLOCK.match(line)
        if block:
            current = (block.group(1), block.group(2))
            structure[f"{current[0]} {current[1]}"] = []
            if current[0] == "set":
                sets.setdefault(current[1], set())
            elif current[0] == "map":
                maps.setdefault(current[1], {})
            continue
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
        if current is not None and line.startswith("\t\t"):
            structure[f"{current[0]} {current[1]}"].append(stripped)
    return TableState(
        {k: tuple(v) for k, v in structure.items()},
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
    """A `Dataplane` that keeps the table as declarations + elements (module docstring).

    Deltas may declare new sets and chains (`table inet kanal { ... }`), edit elements and
    delete chains and sets; like the kernel, a delta is all or nothing, and it refuses to
    declare what exists, to delete a chain that a rule or map element still jumps to, or a set
    that a rule still reads."""

    structure: Structure | None = None
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
        self.structure = dict(state.structure)
        self.sets = {k: set(v) for k, v in state.sets.items()}
        self.maps = {k: dict(v) for k, v in state.maps.items()}

    def apply_delta(self, text: str) -> None:
        self.calls.append(("delta", text))
        self._maybe_fail("delta")
        if self.structure is None:
            raise DataplaneError("No such file or directory: no table")
        work = _Table(dict(self.structure), {k: set(v) for k, v in self.sets.items()},
                      {k: dict(v) for k, v in self.maps.items()})
        lines = text.splitlines()
        while lines:
            line = lines.pop(0)
            if line == "table inet kanal {":
                end = lines.index("}")
                work.declare(table_state("\n".join([line, *lines[: end + 1]])))
                del lines[: end + 1]
            elif match := _ELEMENT_COMMAND.match(line):
                verb, name, body = match.groups()
                _element_command(verb, name, _split(body), work.sets, work.maps)
            elif match := _DELETE.match(line):
                work.delete(*match.groups())
            else:
                raise AssertionError(f"not a command the agent sends: {line!r}")
        self.structure, self.sets, self.maps = work.structure, work.sets, work.maps

    def read_current(self) -> KernelTable | None:
        self.calls.append(("read", ""))
        self._maybe_fail("read")
        if self.structure is None:
            return None
        chains = [lines for key, lines in self.structure.items() if key.startswith("chain ")]
        rules = sum(1 for lines in chains for line in lines
                    if not line.startswith(("type ", "comment ", "flags ")))
        return KernelTable(len(chains), rules, len(self.sets),
                           sum(len(s) for s in self.sets.values()),
                           sum(len(m) for m in self.maps.values()))

    def close(self) -> None:
        self.closed = True

    def state(self) -> TableState:
        assert self.structure is not None, "no table loaded"
        return TableState(
            dict(self.structure),
            {k: frozenset(v) for k, v in self.sets.items()},
            {k: dict(v) for k, v in self.maps.items()},
        )

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls if kind != "read"]


@dataclass
class _Table:
    """A delta's working copy of the table (committed only when every command succeeded)."""

    structure: Structure
    sets: dict[str, set[str]]
    maps: dict[str, dict[str, str]]

    def declare(self, state: TableState) -> None:
        for key, lines in state.structure.items():
            if key in self.structure:
                raise DataplaneError(f"{key} exists (nft would append to it)")
            self.structure[key] = lines
        for name, elements in state.sets.items():
            self.sets[name] = set(elements)
        for name, entries in state.maps.items():
            self.maps[name] = dict(entries)

    def delete(self, kind: str, name: str) -> None:
        key = f"{kind} {name}"
        if key not in self.structure:
            raise DataplaneError(f"No such file or directory: {key}")
        del self.structure[key]
        rules = [line for k, lines in self.structure.items() if k.startswith("chain ")
                 for line in lines]
        if kind == "chain":
            target = re.compile(rf"\b(?:jump|goto) {re.escape(name)}(?![\w.-])")
            if any(target.search(r) for r in rules) or any(
                target.fullmatch(v) for m in self.maps.values() for v in m.values()
            ):
                raise DataplaneError(f"Device or resource busy: chain {name} is jumped to")
        else:
            lookup = re.compile(rf"@{re.escape(name)}(?![\w.-])")
            if any(lookup.search(r) for r in rules):
                raise DataplaneError(f"Device or resource busy: set {name} is read by a rule")
            del self.sets[name]


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
