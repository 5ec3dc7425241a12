"""Reading manifests from files, directories and stdin, as `kubectl apply -f` does.

Every document gets a source string, which every problem and note starts with:

- `path` for a file holding one document (empty documents do not count);
- `path:doc N` for a file holding several, N counting every YAML document of the file from 1,
  empty ones included, so that doc N is the Nth `---` section an editor shows;
- `<stdin>` (or `<stdin>:doc N`) for `-`;
- `:item N` appended (N from 1) for each entry of a `kind: List` (see `kanal.model.parse`);
- `path:LINE:COLUMN` (from 1) for a YAML or JSON syntax error, as compilers print them, and
  `path:LINE` for a file that is not UTF-8.

Files in a directory are read recursively, those ending in .yaml, .yml or .json, in sorted
order. `.json` files are read as one JSON value; everything else, stdin included, as YAML
(which also reads JSON). This module reads text and nothing else: validation is
`kanal.model.parse`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

import yaml

from kanal.errors import Problem
from kanal.model.objects import Manifests
from kanal.model.parse import ManifestAssembler, parse_documents

_Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader]
try:
    _Loader = yaml.CSafeLoader  # libyaml: about ten times faster on large manifests
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

__all__ = [
    "MANIFEST_SUFFIXES",
    "STDIN",
    "STDIN_SOURCE",
    "load_manifests",
    "parse_documents",
    "read_documents",
]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
STDIN_SOURCE = "<stdin>"


class DocumentSink(Protocol):
    """Where the readers put what they find: `ManifestAssembler` validates as it goes,
    `_Recorder` keeps the raw documents for `read_documents`."""

    def add_document(self, source: str, raw: object) -> None: ...

    def add_problem(self, problem: Problem) -> None: ...


def load_manifests(paths: Sequence[str], *, stdin: TextIO | None = None) -> Manifests:
    """Read and validate every manifest under `paths` (files, directories, `-` for `stdin`).

    Raises `ManifestError` listing every problem of every file (unreadable files and syntax
    errors included) if there is any: nothing is returned partially."""
    assembler = ManifestAssembler()
    _read(paths, assembler, stdin=stdin)
    return assembler.finish()


def read_documents(
    paths: Sequence[str], *, stdin: TextIO | None = None
) -> list[tuple[str, object]]:
    """The raw documents under `paths` as (source, raw), in reading order, not validated: for
    callers that keep documents (the datastore) and validate them with others.

    `kind: List` documents are returned whole (`parse_documents` expands them). A file that
    cannot be read or has a syntax error raises the `ManifestError` that `load_manifests`
    would raise for the same paths, every problem of every readable document included."""
    recorder = _Recorder()
    _read(paths, recorder, stdin=stdin)
    if recorder.failed:
        assembler = ManifestAssembler()
        recorder.replay(assembler)
        assembler.finish()
        raise AssertionError("finish() raises when a read problem was added")
    return recorder.documents()


class _Recorder:
    """Remembers documents and read problems in order, so a failure can be replayed into an
    assembler and reported exactly as `load_manifests` reports it."""

    def __init__(self) -> None:
        self._found: list[tuple[str, object] | Problem] = []
        self.failed = False

    def add_document(self, source: str, raw: object) -> None:
        self._found.append((source, raw))

    def add_problem(self, problem: Problem) -> None:
        self._found.append(problem)
        self.failed = True

    def documents(self) -> list[tuple[str, object]]:
        return [found for found in self._found if not isinstance(found, Problem)]

    def replay(self, sink: DocumentSink) -> None:
        for found in self._found:
            if isinstance(found, Problem):
                sink.add_problem(found)
            else:
                sink.add_document(*found)


def _read(paths: Sequence[str], sink: DocumentSink, *, stdin: TextIO | None) -> None:
    for path in paths:
        if path == STDIN:
            _add_text((stdin or sys.stdin).read(), STDIN_SOURCE, sink, is_json=False)
        elif Path(path).is_dir():
            _add_directory(Path(path), sink)
        else:
            _add_file(Path(path), sink)


def _file_problem(source: str, message: str) -> Problem:
    return Problem(source, kind="", name="", path="", message=message)


def _add_directory(root: Path, assembler: DocumentSink) -> None:
    try:
        files = sorted(p for p in root.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    except OSError as exc:
        assembler.add_problem(_file_problem(str(root), f"cannot list directory: {exc.strerror}"))
        return
    if not files:
        suffixes = ", ".join(MANIFEST_SUFFIXES)
        assembler.add_problem(_file_problem(str(root), f"no {suffixes} files in this directory"))
    for file in files:
        _add_file(file, assembler)


def _add_file(file: Path, assembler: DocumentSink) -> None:
    source = str(file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        assembler.add_problem(_file_problem(source, f"cannot read: {exc.strerror or exc}"))
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        message = f"is not UTF-8 text (byte {byte:#04x}): save the file as UTF-8"
        assembler.add_problem(_file_problem(f"{source}:{line}", message))
        return
    _add_text(text, source, assembler, is_json=file.suffix == ".json")


def _add_text(text: str, source: str, assembler: DocumentSink, *, is_json: bool) -> None:
    docs, problem = _json_documents(text, source) if is_json else _yaml_documents(text, source)
    several = sum(doc is not None for doc in docs) + (problem is not None) > 1
    for number, doc in enumerate(docs, start=1):
        assembler.add_document(f"{source}:doc {number}" if several else source, doc)
    if problem is not None:
        assembler.add_problem(problem)


def _yaml_documents(text: str, source: str) -> tuple[list[object], Problem | None]:
    """The documents read before a syntax error are kept, so they are validated too."""
    docs: list[object] = []
    try:
        for doc in yaml.load_all(text, Loader=_Loader):
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        detail = f"{exc.problem} ({exc.context})" if exc.context else str(exc.problem)
        return docs, _file_problem(where, f"invalid YAML: {detail}")
    except yaml.YAMLError as exc:
        return docs, _file_problem(source, f"invalid YAML: {exc}")
    return docs, None


def _json_documents(text: str, source: str) -> tuple[list[object], Problem | None]:
    if not text.strip():
        return [], None
    try:
        return [json.loads(text)], None
    except json.JSONDecodeError as exc:
        return [], _file_problem(f"{source}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")
