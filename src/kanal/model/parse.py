"""Raw manifest documents in, one validated `Manifests` out, or a `ManifestError` with every
problem of every document.

```
(source, raw) ──► ManifestAssembler.add_document ──► kind: List / FooList? ──► each item again,
                      │                                                        as `source:item N`
                      └─► KINDS[(apiVersion, kind)] ──► metadata ──► kind parser ──► object
                            unknown kind: a note        (meta.py)    (core.py, networkpolicy.py,
                            known kind, other                          adminpolicy.py, lab.py,
                            apiVersion: a problem                      alertrule.py)
ManifestAssembler.finish ──► duplicates, implicit namespaces, deterministic order ──► Manifests
```

This module does not read files (`kanal.model.load` does) and decides nothing about what a policy
allows (`kanal.engine` does). A new kind is a `KindSpec` in `KINDS` plus its place in
`Manifests`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import groupby

from kanal.errors import ManifestError, Problem
from kanal.model.adminpolicy import baseline_name, parse_admin_policy, parse_baseline_policy
from kanal.model.alertrule import AlertRule, parse_alert_rule
from kanal.model.core import parse_namespace, parse_node, parse_pod
from kanal.model.fields import At, Raw, Report, as_mapping, as_str
from kanal.model.lab import LabSpec, parse_lab
from kanal.model.meta import NameRule, ObjectMeta, parse_metadata
from kanal.model.networkpolicy import parse_network_policy
from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    AdminNetworkPolicy,
    Labels,
    Manifests,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
)
from kanal.model.validate import dns1123_label, dns1123_subdomain

Parsed = Namespace | Pod | Node | NetworkPolicy | AdminNetworkPolicy | LabSpec | AlertRule
KindParser = Callable[[Raw, ObjectMeta, At], Parsed]

CORE_V1 = "v1"
NETWORKING_V1 = "networking.k8s.io/v1"
POLICY_V1ALPHA1 = "policy.networking.k8s.io/v1alpha1"
KANAL_V1ALPHA1 = "kanal.io/v1alpha1"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How to read one kind: where it lives, how its name is checked, which parser builds it."""

    api_version: str
    kind: str
    parse: KindParser
    namespaced: bool = False
    name_rule: NameRule = dns1123_subdomain


KINDS: dict[tuple[str, str], KindSpec] = {
    (spec.api_version, spec.kind): spec
    for spec in (
        KindSpec(CORE_V1, "Namespace", parse_namespace, name_rule=dns1123_label),
        KindSpec(CORE_V1, "Pod", parse_pod, namespaced=True),
        KindSpec(CORE_V1, "Node", parse_node),
        KindSpec(NETWORKING_V1, "NetworkPolicy", parse_network_policy, namespaced=True),
        KindSpec(POLICY_V1ALPHA1, "AdminNetworkPolicy", parse_admin_policy),
        KindSpec(
            POLICY_V1ALPHA1,
            "BaselineAdminNetworkPolicy",
            parse_baseline_policy,
            name_rule=baseline_name,
        ),
        KindSpec(KANAL_V1ALPHA1, "Lab", parse_lab),
        KindSpec(KANAL_V1ALPHA1, "AlertRule", parse_alert_rule),
    )
}

ObjectKey = tuple[str, str, str]
"""(kind, namespace, name): what must be unique across all documents."""


def parse_documents(docs: Iterable[tuple[str, object]]) -> Manifests:
    """Validate already-decoded documents, given as (source, raw); see `ManifestAssembler`."""
    assembler = ManifestAssembler()
    for source, raw in docs:
        assembler.add_document(source, raw)
    return assembler.finish()


class ManifestAssembler:
    """Collects documents in order into one `Manifests`, keeping every problem of every one.

    Nothing is returned partially: `finish` raises if any document had a problem. Empty
    documents (None) are skipped; kinds kanal does not use are skipped with a note."""

    def __init__(self) -> None:
        self._objects: dict[ObjectKey, tuple[str, Parsed]] = {}
        self._problems: list[Problem] = []
        self._notes: list[str] = []

    def add_problem(self, problem: Problem) -> None:
        """A problem found before parsing (an unreadable file, a YAML syntax error)."""
        self._problems.append(problem)

    def add_document(self, source: str, raw: object) -> None:
        if raw is None:
            return
        report = Report(source, kind="")
        at = At(report)
        doc = as_mapping(raw, at)
        if doc is not None:
            self._add(doc, at)
        self._problems.extend(report.problems)

    def _add(self, doc: Raw, at: At) -> None:
        api_version, kind = _type_meta(doc, at)
        if kind is not None and _is_list(kind, doc):
            self._add_items(doc, at, api_version=api_version, kind=kind)
            return
        spec = KINDS.get((api_version or "", kind or ""))
        if spec is None:
            self._unknown(doc, at, api_version=api_version, kind=kind)
            return
        at.report.kind = spec.kind
        meta = parse_metadata(
            doc,
            at,
            namespaced=spec.namespaced,
            name_rule=spec.name_rule,
            namespace_rule=dns1123_label,
        )
        parsed = spec.parse(doc, meta, at)
        if meta.name:
            self._keep(spec.kind, meta, parsed, at)

    def _add_items(self, doc: Raw, at: At, *, api_version: str | None, kind: str) -> None:
        """`kind: List` (kubectl's) or a typed list such as `PodList` (the API's, whose items
        carry no apiVersion/kind: they inherit them from the list)."""
        items = doc.get("items")
        if not isinstance(items, list):
            at.field("items").problem("must be a list of objects")
            return
        inherited = {"apiVersion": api_version, "kind": kind.removesuffix("List")}
        for index, item in enumerate(items, start=1):
            source = f"{at.report.source}:item {index}"
            if kind != "List" and isinstance(item, dict):
                self.add_document(source, {**inherited, **item})
            else:
                self.add_document(source, item)

    def _unknown(self, doc: Raw, at: At, *, api_version: str | None, kind: str | None) -> None:
        if kind is None or api_version is None:
            return
        expected = sorted(api for api, known in KINDS if known == kind)
        if expected:
            at.report.kind, at.report.name = kind, _display_name(doc).strip()
            at.field("apiVersion").problem(
                f"{api_version!r} is not supported for {kind}: use {' or '.join(expected)}"
            )
            return
        self._notes.append(
            f"{at.report.source}: skipped {kind}{_display_name(doc)} (kanal does not use this kind)"
        )

    def _keep(self, kind: str, meta: ObjectMeta, parsed: Parsed, at: At) -> None:
        """Remember the object under its key; an invalid one claims its name too, so a
        duplicate of it is still reported."""
        key = (kind, meta.namespace, meta.name)
        first = self._objects.get(key)
        if first is not None:
            at.problem(f"is defined twice, also in {first[0]}: remove or rename one")
        else:
            self._objects[key] = (at.report.source, parsed)

    def finish(self) -> Manifests:
        """The validated manifests, in deterministic order; raises `ManifestError` if any
        document had a problem."""
        if self._problems:
            raise ManifestError(self._problems)
        objects = [parsed for _, parsed in self._objects.values()]
        pods = sorted((o for o in objects if isinstance(o, Pod)), key=_namespaced_order)
        policies = sorted(
            (o for o in objects if isinstance(o, NetworkPolicy)), key=_namespaced_order
        )
        admin = [o for o in objects if isinstance(o, AdminNetworkPolicy)]
        ranked = sorted((p for p in admin if p.priority is not None), key=_priority_order)
        baseline = [p for p in admin if p.priority is None]
        return Manifests(
            namespaces=_namespaces(objects, pods=pods, policies=policies),
            pods=tuple(pods),
            policies=tuple(policies),
            admin_policies=tuple(ranked),
            baseline_policy=baseline[0] if baseline else None,
            nodes=tuple(sorted((o for o in objects if isinstance(o, Node)), key=lambda n: n.name)),
            lab=_single_lab(objects),
            alert_rules=tuple(
                sorted((o for o in objects if isinstance(o, AlertRule)), key=lambda r: r.name)
            ),
            notes=(*self._notes, *_shared_priority_notes(ranked)),
        )


def _single_lab(objects: list[Parsed]) -> LabSpec | None:
    labs = [o for o in objects if isinstance(o, LabSpec)]
    if len(labs) > 1:
        names = ", ".join(f"`{lab.name}`" for lab in labs)
        raise ManifestError(
            [Problem("", "Lab", "", "", f"one Lab per set of manifests, got {names}")]
        )
    return labs[0] if labs else None


def _type_meta(doc: Raw, at: At) -> tuple[str | None, str | None]:
    """apiVersion and kind; both are required, as kubectl requires them."""
    values: list[str | None] = []
    for key, example in (("apiVersion", "v1"), ("kind", "Pod")):
        value = doc.get(key)
        if value is None or value == "":
            at.field(key).problem(f"is required (e.g. {key}: {example})")
            values.append(None)
        else:
            values.append(as_str(value, at.field(key)))
    return values[0], values[1]


def _is_list(kind: str, doc: Raw) -> bool:
    return kind == "List" or (kind.endswith("List") and "items" in doc)


def _display_name(doc: Raw) -> str:
    """` ns/name` of a document of an unknown kind, from whatever metadata it has."""
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return ""
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str) or not name:
        return ""
    return f" {namespace}/{name}" if isinstance(namespace, str) and namespace else f" {name}"


def _namespaces(
    objects: list[Parsed], *, pods: list[Pod], policies: list[NetworkPolicy]
) -> tuple[Namespace, ...]:
    """Declared namespaces, plus one `declared=False` namespace, carrying only the name label,
    for each namespace a pod or policy lives in without a Namespace document."""
    declared = {o.name: o for o in objects if isinstance(o, Namespace)}
    used = {p.namespace for p in pods} | {p.namespace for p in policies}
    implicit = {
        name: Namespace(name, Labels({NAMESPACE_NAME_LABEL: name}), declared=False)
        for name in used - declared.keys()
    }
    every = declared | implicit
    return tuple(every[name] for name in sorted(every))


def _namespaced_order(obj: Pod | NetworkPolicy) -> tuple[str, str]:
    return (obj.namespace, obj.name)


def _priority_order(policy: AdminNetworkPolicy) -> tuple[int, str]:
    return (policy.priority or 0, policy.name)


def _shared_priority_notes(ranked: list[AdminNetworkPolicy]) -> list[str]:
    """Upstream leaves the order of two AdminNetworkPolicies with one priority undefined."""
    notes = []
    for priority, group in groupby(ranked, key=lambda p: p.priority):
        names = [p.name for p in group]
        if len(names) > 1:
            notes.append(
                f"AdminNetworkPolicies {', '.join(names)} share priority {priority}: their "
                "order is undefined upstream, kanal evaluates them by name; give each its own"
            )
    return notes
