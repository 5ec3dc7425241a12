"""Typed access to raw manifest data, reporting every problem at its field path.

A manifest arrives as plain YAML/JSON data. These helpers narrow it to the shapes the parsers
expect and, instead of raising at the first mismatch, record a `Problem` and return None, so one
pass over a document finds everything wrong with it. A null value counts as absent, as it does
for the API server. They know no Kubernetes kind: `kanal.model.meta` handles metadata, labels
and selectors, and one module per kind handles the rest.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from kanal.errors import Problem

Raw = Mapping[str, object]
"""A decoded JSON/YAML object whose keys are known to be strings."""

class Report:
    """The problems of one document; `name` is filled in as soon as metadata is read."""

    def __init__(self, source: str, kind: str, name: str = "") -> None:
        self.source = source
        self.kind = kind
        self.name = name
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, self.kind, self.name, path, message))


@dataclass(frozen=True, slots=True)
class At:
    """A field path inside one document (`spec.ingress[0].from`), and where its problems go."""

    report: Report
    path: str = ""

    def field(self, key: str) -> At:
        return At(self.report, f"{self.path}.{key}" if self.path else key)

    def item(self, index: int) -> At:
        return At(self.report, f"{self.path}[{index}]")

    def key(self, key: str) -> At:
        """A map entry, as upstream's `field.Path.Key`: `metadata.labels[app]`."""
        return At(self.report, f"{self.path}[{key}]")

    def problem(self, message: str) -> None:
        self.report.add(self.path, message)

    def problems(self, messages: Collection[str], *, prefix: str = "") -> bool:
        """Report each message (with `prefix`); True if there were none."""
        for message in messages:
            self.problem(f"{prefix}{message}")
        return not messages


def type_name(value: object) -> str:
    """How a YAML/JSON value is called in messages: a user wrote YAML, not Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date):
        return "a date"
    return type(value).__name__


def _scalar_text(value: object) -> str:
    """The YAML text of a scalar, for a `quote it` hint (`on` became True, `1.10` became 1.1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def as_mapping(value: object, at: At) -> Raw | None:
    if not isinstance(value, Mapping):
        at.problem(f"must be an object (key: value pairs), not {type_name(value)}")
        return None
    bad = [k for k in value if not isinstance(k, str)]
    for key in bad:
        at.problem(f"field name {_scalar_text(key)!r} must be a string: quote it")
    return None if bad else value


def as_list(value: object, at: At) -> list[object] | None:
    if not isinstance(value, list):
        at.problem(f"must be a list, not {type_name(value)}")
        return None
    return value


def as_str(value: object, at: At) -> str | None:
    if isinstance(value, str):
        return value
    hint = ""
    if isinstance(value, bool | int | float | datetime.date):
        hint = f": quote it (\"{_scalar_text(value)}\")"
    at.problem(f"must be a string, not {type_name(value)}{hint}")
    return None


def as_int(value: object, at: At) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    at.problem(f"must be an integer, not {type_name(value)}")
    return None


def as_int_or_str(value: object, at: At) -> int | str | None:
    """An IntOrString field, such as a policy port (80 or "http")."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    at.problem(f"must be an integer or a string, not {type_name(value)}")
    return None


def _get(raw: Raw, key: str, at: At, *, required: bool) -> object:
    value = raw.get(key)
    if value is None and required:
        at.field(key).problem("is required")
    return value


def get_mapping(raw: Raw, key: str, at: At, *, required: bool = False) -> Raw | None:
    """`raw[key]` as an object; None when absent, null or invalid (each getter alike)."""
    value = _get(raw, key, at, required=required)
    return None if value is None else as_mapping(value, at.field(key))


def get_list(raw: Raw, key: str, at: At, *, required: bool = False) -> list[object] | None:
    value = _get(raw, key, at, required=required)
    return None if value is None else as_list(value, at.field(key))


def get_str(raw: Raw, key: str, at: At, *, required: bool = False) -> str | None:
    value = _get(raw, key, at, required=required)
    return None if value is None else as_str(value, at.field(key))


def get_int(raw: Raw, key: str, at: At, *, required: bool = False) -> int | None:
    value = _get(raw, key, at, required=required)
    return None if value is None else as_int(value, at.field(key))


def get_int_or_str(raw: Raw, key: str, at: At, *, required: bool = False) -> int | str | None:
    value = _get(raw, key, at, required=required)
    return None if value is None else as_int_or_str(value, at.field(key))


def each_mapping(items: list[object], at: At) -> list[tuple[Raw, At]]:
    """The entries of a list of objects with their paths; entries of another type are reported."""
    result: list[tuple[Raw, At]] = []
    for index, item in enumerate(items):
        item_at = at.item(index)
        mapping = as_mapping(item, item_at)
        if mapping is not None:
            result.append((mapping, item_at))
    return result


def items_of(raw: Raw, key: str, at: At) -> list[tuple[Raw, At]]:
    """The objects listed under `raw[key]` with their paths (none when absent)."""
    return each_mapping(get_list(raw, key, at) or [], at.field(key))


def check_fields(raw: Raw, known: Collection[str], at: At) -> None:
    """Report fields that are not in `known`, as the API server's strict field validation does.

    This matters most in policies: a misspelled `from` would otherwise leave the rule without
    peers, which means "every peer", and silently open the very traffic it was meant to limit."""
    for key in raw:
        if key in known:
            continue
        close = difflib.get_close_matches(key, list(known), n=1)
        expected = ", ".join(sorted(known))
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {expected}"
        at.field(key).problem(f"unknown field: {hint}")
