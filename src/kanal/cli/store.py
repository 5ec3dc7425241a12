"""`kanal apply|delete|get|label`: kubectl's verbs on the lab's datastore.

Each command opens the store (`--store`, else `$KANAL_LAB_DIR/store.db`), makes one call and
prints what happened in kubectl's words (`pod/a created`, `pod "a" deleted`). Validation,
merging and transactions are the store's: a bad document rejects the whole command and stores
nothing (exit 2).
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from kanal.cli.analysis import add_filename_argument
from kanal.cli.output import Terminal
from kanal.errors import NotFoundError
from kanal.model.load import read_documents
from kanal.model.meta import DEFAULT_NAMESPACE
from kanal.store.api import Datastore, Doc, ObjectRef, StoredObject, StoreError
from kanal.store.documents import prepare, validate
from kanal.store.kinds import BY_KIND, Resource, labels, resource
from kanal.store.labels import Relabeled, parse_label_args, relabel
from kanal.store.sqlite import Clock, SqliteStore, SystemClock, default_store_path

Command = Callable[[argparse.Namespace, Terminal], int]

CLOCK: Clock = SystemClock()
"""The store's clock and now for AGE; tests replace it."""

STORE_HELP = "the datastore file (default $KANAL_LAB_DIR/store.db, /var/lib/kanal/lab/store.db)"
EXAMPLES = {
    "apply": "kanal apply -f examples/three-tier\n  kubectl get pods -A -o yaml | kanal apply -f -",
    "delete": "kanal delete -f policy.yaml\n  kanal delete pod x/a x/b\n  kanal delete anp block",
    "get": "kanal get pods -A -o wide\n  kanal get netpol -n x\n  kanal get pod x/a -o yaml",
    "label": "kanal label pod x/a app=web tier-\n  kanal label ns x team=blue --overwrite",
}


def register(subparsers: Any) -> None:
    """Add `apply`, `delete`, `get` and `label` to the `kanal` parser."""
    parser = _command(subparsers, "apply", apply, "create or update objects in the datastore")
    add_filename_argument(parser)
    parser = _command(subparsers, "delete", delete, "delete objects from the datastore")
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="extend",
        nargs="+",
        metavar="PATH",
        help="delete the objects of these manifests",
    )
    _add_object_arguments(parser, kind="optional", names="*")
    parser.add_argument(
        "--ignore-not-found", action="store_true", help="a missing object is not an error"
    )
    parser = _command(subparsers, "get", get, "list objects of one kind")
    _add_object_arguments(parser, kind="required", names="*")
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    parser.add_argument("-o", "--output", choices=("text", "wide", "yaml", "json"), default="text")
    parser = _command(subparsers, "label", label, "set or remove labels of one object")
    _add_object_arguments(parser, kind="required", names=1)
    parser.add_argument("labels", nargs="+", metavar="KEY=VALUE|KEY-")
    parser.add_argument("--overwrite", action="store_true", help="replace existing values")


def _command(subparsers: Any, name: str, run: Command, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=f"examples:\n  {EXAMPLES[name]}\n\nexit status: 0 done, 2 bad input (nothing "
        "was changed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", type=Path, metavar="PATH", help=STORE_HELP)
    parser.set_defaults(run=run)
    return parser


def _add_object_arguments(parser: argparse.ArgumentParser, *, kind: str, names: str | int) -> None:
    """KIND, [NS/]NAME arguments and -n; `kind` "optional" when -f can name objects instead."""
    parser.add_argument(
        "kind",
        nargs="?" if kind == "optional" else None,
        metavar="KIND",
        help="pods (po), namespaces (ns), nodes (no), networkpolicies (netpol), "
        "adminnetworkpolicies (anp), baselineadminnetworkpolicies (banp), labs, alertrules",
    )
    parser.add_argument("names", nargs=names, metavar="[NS/]NAME")
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help=f"namespace of NAMEs given without one (default {DEFAULT_NAMESPACE})",
    )


# -- commands --------------------------------------------------------------------------------------


def apply(args: argparse.Namespace, term: Terminal) -> int:
    documents = read_documents(args.filenames)
    if not any(raw is not None for _, raw in documents):
        term.abort(f"no objects passed to apply: {', '.join(args.filenames)} holds no document")
    with _open(args, create=True) as store:
        result = store.apply(documents)
    for note in result.notes:
        term.note(note)
    for written in result.objects:
        term.write(f"{_qualified(written.ref)} {written.outcome}")
    return 0


def delete(args: argparse.Namespace, term: Terminal) -> int:
    if bool(args.filenames) == bool(args.kind):
        term.abort("give the objects to delete either with -f PATH or as KIND NAME..., not both")
    refs = _refs_of_files(args.filenames, term) if args.filenames else _refs(args)
    with _open(args) as store:
        result = store.delete(refs, missing_ok=args.ignore_not_found)
    for written in result.objects:
        term.write(f'{BY_KIND[written.ref.kind].qualified} "{written.ref.name}" deleted')
    return 0


def label(args: argparse.Namespace, term: Terminal) -> int:
    changes = parse_label_args(args.labels)
    (ref,) = _refs(args)
    done: list[Relabeled] = []

    def change(doc: Doc) -> Doc:
        done.append(relabel(doc, changes, overwrite=args.overwrite))
        return done[-1].doc

    with _open(args) as store:
        store.update(ref, change)
    for key in done[-1].missing:
        term.note(f'label "{key}" not found')
    term.write(f"{_qualified(ref)} {done[-1].outcome}")
    return 0


def get(args: argparse.Namespace, term: Terminal) -> int:
    if args.all_namespaces and args.namespace:
        term.abort("give -n NS or -A, not both")
    kind = resource(args.kind)
    with _open(args) as store:
        objects = _select(store, kind, args)
    if args.output in ("yaml", "json"):
        _write_documents(
            term, objects, single=len(args.names) == 1, yaml_output=args.output == "yaml"
        )
    elif not objects:
        term.note(_nothing_found(kind, args))
    else:
        term.write(
            _table(kind, objects, all_namespaces=args.all_namespaces, wide=args.output == "wide")
        )
    return 0


# -- objects ---------------------------------------------------------------------------------------


def _open(args: argparse.Namespace, *, create: bool = False) -> SqliteStore:
    return SqliteStore(args.store or default_store_path(), create=create, clock=CLOCK)


def _refs(args: argparse.Namespace) -> list[ObjectRef]:
    kind = resource(args.kind)
    if not args.names:
        raise StoreError(f"name the {kind.plural} to change: `KIND [NS/]NAME...`")
    return [_ref(kind, name, args.namespace) for name in args.names]


def _ref(kind: Resource, text: str, namespace: str | None) -> ObjectRef:
    """`ns/name`, or `name` in -n's namespace (else default); no namespace if cluster-scoped."""
    ns, _, name = text.rpartition("/")
    if not kind.namespaced:
        if ns or namespace:
            raise StoreError(f"{kind.plural} are cluster-scoped: give `{name}` without a namespace")
        return ObjectRef(kind.kind, "", name)
    return ObjectRef(kind.kind, ns or namespace or DEFAULT_NAMESPACE, name)


def _refs_of_files(paths: Sequence[str], term: Terminal) -> list[ObjectRef]:
    """The objects the manifests name; documents that name none are reported as `-f` reports
    them (a problem without a name, a note for kinds kanal does not store)."""
    incoming, problems = prepare(read_documents(paths))
    unnamed = [(i.source, i.doc) for i in incoming if i.ref is None]
    for note in validate(unnamed, problems=problems):
        term.note(note)
    return [i.ref for i in incoming if i.ref is not None]


def _select(store: Datastore, kind: Resource, args: argparse.Namespace) -> list[StoredObject]:
    if args.names:
        found = [store.get(ref) for ref in _refs(args)]
        missing = [ref for ref, obj in zip(_refs(args), found, strict=True) if obj is None]
        if missing:
            raise NotFoundError(
                "\n".join(f"{r.kind} `{r.display()}` does not exist" for r in missing)
            )
        return [obj for obj in found if obj is not None]
    namespace = (
        None if args.all_namespaces or not kind.namespaced else args.namespace or DEFAULT_NAMESPACE
    )
    objects, _ = store.list(kind.kind, namespace)
    return list(objects)


def _qualified(ref: ObjectRef) -> str:
    return f"{BY_KIND[ref.kind].qualified}/{ref.name}"


def _nothing_found(kind: Resource, args: argparse.Namespace) -> str:
    if not kind.namespaced or args.all_namespaces:
        return "No resources found"
    return f"No resources found in {args.namespace or DEFAULT_NAMESPACE} namespace."


# -- output ----------------------------------------------------------------------------------------


def _table(
    kind: Resource, objects: Sequence[StoredObject], *, all_namespaces: bool, wide: bool
) -> str:
    now = CLOCK.time()
    header = ["NAME", *(title for title, _ in kind.columns), "AGE"]
    rows = []
    for obj in objects:
        cells = [
            obj.ref.name,
            *(cell(obj.doc) for _, cell in kind.columns),
            age(now - obj.created_at),
        ]
        rows.append(cells)
    if all_namespaces and kind.namespaced:
        header.insert(0, "NAMESPACE")
        for obj, row in zip(objects, rows, strict=True):
            row.insert(0, obj.ref.namespace)
    if wide:
        header.append("LABELS")
        for obj, row in zip(objects, rows, strict=True):
            row.append(labels(obj.doc))
    return _align([header, *rows])


def _align(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl's tabwriter does."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def age(seconds: float) -> str:
    """kubectl's AGE (apimachinery's HumanDuration): `45s`, `5m30s`, `3h10m`, `4d2h`, `400d`."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if days < 2920 and days % 365 else f"{years}y"


def _output_document(obj: StoredObject) -> Doc:
    """The stored document with the metadata the store owns, as the API server shows it."""
    doc: Doc = json.loads(json.dumps(obj.doc))
    created = datetime.datetime.fromtimestamp(obj.created_at, tz=datetime.UTC)
    doc["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["metadata"]["resourceVersion"] = str(obj.revision)
    return doc


def _write_documents(
    term: Terminal, objects: Sequence[StoredObject], *, single: bool, yaml_output: bool
) -> None:
    """One object as itself when one was named, else a `kind: List` (kubectl's shapes)."""
    docs = [_output_document(obj) for obj in objects]
    value: Doc = (
        docs[0]
        if single
        else {
            "apiVersion": "v1",
            "items": docs,
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
    )
    if yaml_output:
        term.write(yaml.safe_dump(value, sort_keys=True), end="")
    else:
        term.write_json(value)
