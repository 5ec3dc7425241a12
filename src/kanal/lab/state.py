"""What a running lab remembers between commands: one JSON file in the lab's state directory.

Every `kanal lab` command is its own process, so everything the next command needs is here:

- `prefix`: the name prefix of every netns the lab made (teardown finds them by it, also after a
  crash that lost everything else);
- the `Lab` document (None: the defaults) and the raw documents applied so far, one per object
  (kind, namespace, name), so `apply`/`delete` recompute the cluster as the union and revalidate
  it like `-f` input;
- where each pod runs (`placement`), the IPAM state, the pod server process and the agent
  process per node (the agents enforce what the lab writes into `store.db`, the datastore beside
  this file: see `kanal.lab.enforce`);
- `flows`: whether the lab records flows, and then the flow collector process per node (they
  write `flows.db` beside this file: see `kanal.lab.collectors`); a state written before labs
  had collectors reads as a lab without flows;
- `phase`: `building` while `up` runs, `up` when the lab is usable, `changing` while `apply` or
  `delete` change the kernel (a crash leaves it there, and later changes refuse to guess),
  `failed` when such a change raised half-way (e.g. an agent did not apply the new revision in
  time), with `failure` saying which command and why; later changes refuse to guess either.

The file is replaced atomically (write, fsync, rename), and written before the kernel is touched:
an address is saved before it is plumbed, a netns prefix before the first netns exists. Commands
that change the lab hold `StateStore.locked()` (an flock on `lock` in the directory), so two of
them never interleave; reading commands (status, probe) do not wait.

`read_documents` reads `-f` paths as `kanal.model.load` does and validates them, keeping each
object's raw document (list items one by one) for the state.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import enum
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kanal.errors import LabError
from kanal.ipam import IpamState
from kanal.model.lab import LabSpec
from kanal.model.load import read_documents as load_documents
from kanal.model.meta import DEFAULT_NAMESPACE
from kanal.model.objects import Manifests
from kanal.model.parse import KINDS, ManifestAssembler, parse_documents
from kanal.store.sqlite import STORE_FILE

DEFAULT_STATE_DIR = Path("/var/lib/kanal/lab")
STATE_DIR_ENV = "KANAL_LAB_DIR"
STATE_FILE = "state.json"
FLOWS_FILE = "flows.db"
"""The lab's flow database (`kanal.flows.collector.DEFAULT_FLOWS_FILE`)."""
LOCK_FILE = "lock"
FORMAT_VERSION = 2

Raw = dict[str, Any]


def state_dir_from(option: str | None) -> Path:
    """`--state-dir`, else `$KANAL_LAB_DIR`, else /var/lib/kanal/lab."""
    if option:
        return Path(option)
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


# -- documents ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """One object's raw manifest and where it came from (`source`, for error messages)."""

    kind: str
    namespace: str
    name: str
    source: str
    raw: Raw

    @property
    def key(self) -> str:
        """`Kind/namespace/name` (namespace empty for cluster-scoped kinds)."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    def display(self) -> str:
        """`Pod x/a`, `Namespace x`, as kubectl names objects."""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {name}"


class _RecordingAssembler(ManifestAssembler):
    """Validates as usual and also keeps every single-object document (list items included:
    the assembler feeds them back through `add_document`, typed ones with their inherited
    apiVersion and kind)."""

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[Document] = []

    def add_document(self, source: str, raw: object) -> None:
        if isinstance(raw, dict):
            found = _identify(source, raw)
            if found is not None:
                self.documents.append(found)
        super().add_document(source, raw)


def _identify(source: str, raw: Raw) -> Document | None:
    """The document's object identity, for kinds kanal reads (others are skipped, as `-f`
    skips them with a note)."""
    spec = KINDS.get((str(raw.get("apiVersion")), str(raw.get("kind"))))
    metadata = raw.get("metadata")
    if spec is None or not isinstance(metadata, dict):
        return None
    namespace = ""
    if spec.namespaced:
        namespace = str(metadata.get("namespace") or DEFAULT_NAMESPACE)
    return Document(spec.kind, namespace, str(metadata.get("name", "")), source, _plain(raw))


def _plain(raw: Raw) -> Raw:
    """A deep copy that JSON can hold (YAML timestamps become ISO strings)."""
    text = json.dumps(raw, default=_json_default)
    value: Raw = json.loads(text)
    return value


def _json_default(value: object) -> str:
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in the lab state")


def read_documents(
    paths: Sequence[str], *, stdin: TextIO | None = None
) -> tuple[Manifests, list[Document]]:
    """Read `-f` paths as `load_manifests` does: the validated manifests (ManifestError with
    every problem otherwise) and each object's raw document."""
    assembler = _RecordingAssembler()
    for source, raw in load_documents(paths, stdin=stdin):
        assembler.add_document(source, raw)
    manifests = assembler.finish()
    return manifests, assembler.documents


def parse_union(documents: Iterable[Document]) -> Manifests:
    """Validate stored documents together, as one `-f` would."""
    return parse_documents((d.source, copy.deepcopy(d.raw)) for d in documents)


# -- the state ---------------------------------------------------------------------------------


class Phase(enum.StrEnum):
    BUILDING = "building"
    UP = "up"
    CHANGING = "changing"
    FAILED = "failed"


@dataclass
class LabState:
    prefix: str
    lab_document: Raw | None
    documents: dict[str, Document] = field(default_factory=dict)
    placement: dict[str, str] = field(default_factory=dict)
    ipam: IpamState = field(default_factory=IpamState)
    servers: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)
    phase: Phase = Phase.BUILDING
    flows: bool = False
    collectors: dict[str, int] = field(default_factory=dict)
    failure: str = ""
    """Phase `failed`: what failed, in words (empty otherwise)."""

    def spec(self) -> LabSpec:
        """The Lab, parsed again from its document (the defaults when there was none)."""
        if self.lab_document is None:
            return LabSpec()
        spec = parse_documents([("lab state", copy.deepcopy(self.lab_document))]).lab
        assert spec is not None, "a stored Lab document always parses to a Lab"
        return spec

    def manifests(self) -> Manifests:
        return parse_union(self.documents.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "phase": self.phase.value,
            "prefix": self.prefix,
            "lab": self.lab_document,
            "documents": [
                {"key": d.key, "kind": d.kind, "namespace": d.namespace, "name": d.name,
                 "source": d.source, "raw": d.raw}
                for d in self.documents.values()
            ],
            "placement": dict(sorted(self.placement.items())),
            "ipam": self.ipam.to_json(),
            "servers": dict(sorted(self.servers.items())),
            "agents": dict(sorted(self.agents.items())),
            "flows": self.flows,
            "collectors": dict(sorted(self.collectors.items())),
            "failure": self.failure,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"state format {data.get('version')!r}, expected {FORMAT_VERSION}")
        documents = [
            Document(d["kind"], d["namespace"], d["name"], d["source"], d["raw"])
            for d in data["documents"]
        ]
        return cls(
            prefix=data["prefix"],
            lab_document=data["lab"],
            documents={d.key: d for d in documents},
            placement=dict(data["placement"]),
            ipam=IpamState.from_json(data["ipam"]),
            servers={k: int(v) for k, v in data["servers"].items()},
            agents={k: int(v) for k, v in data["agents"].items()},
            phase=Phase(data["phase"]),
            flows=bool(data.get("flows", False)),
            collectors={k: int(v) for k, v in data.get("collectors", {}).items()},
            failure=str(data.get("failure", "")),
        )


class StateStore:
    """The state file of one lab directory; also the place for its server specs and logs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> LabState | None:
        """The state, or None when no lab is up here; LabError if the file is unreadable
        (`kanal lab down --prefix` still cleans up then)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LabError(f"cannot read lab state `{self.path}`: {exc.strerror}") from exc
        try:
            return LabState.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise LabError(
                f"lab state `{self.path}` is damaged ({exc}): remove the lab with "
                "`kanal lab down --prefix PREFIX`"
            ) from exc

    def save(self, state: LabState) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.path, json.dumps(state.to_json(), indent=1) + "\n")
        except OSError as exc:
            raise LabError(f"cannot write lab state `{self.path}`: {exc.strerror}") from exc

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lab's lock for one changing command; LabError at once if another holds it.
        Leaves no directory behind when the command ended without a lab."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = (self.directory / LOCK_FILE).open("w")
        except OSError as exc:
            raise LabError(f"cannot lock lab state `{self.directory}`: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabError(
                    f"another `kanal lab` command is changing the lab in `{self.directory}`: "
                    "wait for it to finish"
                ) from None
            yield
        finally:
            handle.close()
            if not self.exists():
                self.remove()

    def file(self, name: str) -> Path:
        """A file of the lab in the state directory (server specs, ready files, logs)."""
        return self.directory / name

    def remove(self) -> None:
        """Delete the state file and the lab's files (the datastore, the flow database, server,
        agent and collector files); the directory too once it is empty (files kanal did not
        write stay, and so does their directory)."""
        lab_files = [
            self.path, self.directory / LOCK_FILE, *self.directory.glob("servers-*"),
            *self.directory.glob("agent-*.log"), *self.directory.glob("collector-*"),
            *(self.directory / f"{name}{suffix}" for name in (STORE_FILE, FLOWS_FILE)
              for suffix in ("", "-wal", "-shm")),
        ]
        for path in lab_files:
            path.unlink(missing_ok=True)
        self.path.with_suffix(".tmp").unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # not empty: someone else's files live here too


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


__all__ = [
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "Document",
    "LabState",
    "Phase",
    "StateStore",
    "parse_union",
    "read_documents",
    "state_dir_from",
]
