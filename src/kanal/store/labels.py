"""`kubectl label` on a stored document: `key=value` sets, `key-` removes, `--overwrite`.

As kubectl does: a key that already has a *different* value is only changed with `overwrite`
(the same value is fine); a key both set and removed in one command is refused; removing a key
that is not there changes nothing and is reported. Keys and values are checked with the
model's validators (`kanal.model.validate`), so what `label` accepts, the parser accepts.

Pure: the store runs `relabel` inside its transaction (`Datastore.update`).
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kanal.errors import KanalError
from kanal.model.validate import label_key, label_value
from kanal.store.api import Doc


class LabelError(KanalError):
    """A label argument is malformed or invalid, or would overwrite without `--overwrite`."""


class LabelOutcome(enum.StrEnum):
    """kubectl's words for what a label command did."""

    LABELED = "labeled"
    UNLABELED = "unlabeled"
    NOT_LABELED = "not labeled"


@dataclass(frozen=True, slots=True)
class LabelChanges:
    """Parsed arguments: keys to set (with values) and keys to remove, in argument order."""

    set: Mapping[str, str]
    remove: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Relabeled:
    doc: Doc
    outcome: LabelOutcome
    missing: tuple[str, ...]
    """Keys to remove that the object did not have (kubectl: `label "x" not found.`)."""


def parse_label_args(args: Sequence[str]) -> LabelChanges:
    """`key=value` and `key-` arguments; `LabelError` listing every bad one."""
    to_set: dict[str, str] = {}
    remove: list[str] = []
    errors: list[str] = []
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            errors.extend(_check(arg, key, value))
            to_set[key] = value
        elif arg.endswith("-"):
            errors.extend(_check(arg, arg[:-1], None))
            remove.append(arg[:-1])
        else:
            errors.append(f"invalid label `{arg}`: use KEY=VALUE to set it or KEY- to remove it")
    errors.extend(
        f"label `{key}` is both set and removed: give one of `{key}=...` and `{key}-`"
        for key in remove
        if key in to_set
    )
    if errors:
        raise LabelError("\n".join(errors))
    return LabelChanges(to_set, tuple(remove))


def _check(arg: str, key: str, value: str | None) -> list[str]:
    problems = [f"key {message}" for message in label_key(key)]
    if value is not None:
        problems += [f"value {message}" for message in label_value(value)]
    return [f"invalid label `{arg}`: {problem}" for problem in problems]


def relabel(doc: Doc, changes: LabelChanges, *, overwrite: bool) -> Relabeled:
    """A copy of `doc` with `changes` applied to `metadata.labels` (`doc` is not modified)."""
    labels = _labels(doc)
    conflicts = [
        f"label `{key}` already has a value ({labels[key]}): pass --overwrite to replace it"
        for key, value in changes.set.items()
        if key in labels and labels[key] != value and not overwrite
    ]
    if conflicts:
        raise LabelError("\n".join(conflicts))
    new_labels = {k: v for k, v in labels.items() if k not in changes.remove} | dict(changes.set)
    missing = tuple(key for key in changes.remove if key not in labels)
    outcome = _outcome(labels, new_labels)
    new_doc = copy.deepcopy(doc)
    if outcome is not LabelOutcome.NOT_LABELED:
        _set_labels(new_doc, new_labels)
    return Relabeled(new_doc, outcome, missing)


def _labels(doc: Doc) -> dict[str, str]:
    labels = doc["metadata"].get("labels") or {}
    return {str(k): "" if v is None else str(v) for k, v in labels.items()}


def _set_labels(doc: Doc, labels: dict[str, str]) -> None:
    """An object left without labels loses the field, rather than keeping an empty map."""
    if labels:
        doc["metadata"]["labels"] = labels
    else:
        doc["metadata"].pop("labels", None)


def _outcome(old: dict[str, str], new: dict[str, str]) -> LabelOutcome:
    if old == new:
        return LabelOutcome.NOT_LABELED
    if new.items() <= old.items():
        return LabelOutcome.UNLABELED
    return LabelOutcome.LABELED
