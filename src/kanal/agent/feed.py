"""EngineFeed: store events in, `PolicyEngine` updates out, one object at a time.

```
Event(ref, doc | None) ──► kind? ──► Pod / Namespace / Node / NetworkPolicy / ANP / BANP
                                      doc None: engine.delete_*      doc: parse ──► engine.upsert_*
                                                                     parse fails ──► Rejected:
                                                                       the engine keeps the last
                                                                       good version, a pod's raw
                                                                       node and addresses are kept
                           Lab, other kinds: ignored (they are not cluster state)
```

Each `apply` returns what the change was, for the agent to decide how much to recompute: a
`PodChange` carries the selectors that matched the pod's group before and after the update
(the agent's set patcher needs the "before", which the engine forgets); anything else is an
`ObjectChange` (policies, namespaces and nodes change the table's structure or many sets).

This stage does not render and does not decide what is local to a node. It never lets a
document it cannot read disappear silently: `rejected` lists every such object with the reason,
until a readable version (or a delete) replaces it. The store validates every write, so a
rejected object means a store written by another kanal version, or a bug.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kanal.engine import PolicyEngine
from kanal.engine.selectors import EndpointSelector
from kanal.errors import ManifestError
from kanal.model.objects import IPAddress, Manifests, Pod, PodKey, PolicyKey, pod_key
from kanal.model.parse import parse_documents
from kanal.store.api import Doc, Event, ObjectRef

POLICY_KINDS = frozenset({"NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"})
ENGINE_KINDS = POLICY_KINDS | {"Pod", "Namespace", "Node"}


@dataclass(frozen=True, slots=True)
class PodChange:
    """A pod added, changed or (new None) deleted; the selectors matching its group before
    and after (empty when it had or has no group)."""

    old: Pod | None
    new: Pod | None
    selectors_before: frozenset[EndpointSelector]
    selectors_after: frozenset[EndpointSelector]


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """Any other change the engine saw (a policy, namespace or node)."""

    ref: ObjectRef


@dataclass(frozen=True, slots=True)
class Ignored:
    """A change that is not cluster state (a `Lab`), or a document that could not be read."""

    ref: ObjectRef


Change = PodChange | ObjectChange | Ignored


@dataclass(frozen=True, slots=True)
class Rejected:
    """A stored document the agent could not read: why, and for a pod where it runs and its
    addresses as far as the raw document says (the agent denies such a pod's traffic)."""

    ref: ObjectRef
    reason: str
    node_name: str | None = None
    ips: tuple[IPAddress, ...] = ()


class EngineFeed:
    """Feeds one `PolicyEngine` from store events (see the module docstring)."""

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine
        self.rejected: dict[ObjectRef, Rejected] = {}
        self.rejections = 0
        """Bumped whenever `rejected` changes (the agent re-renders: local pods are denied)."""

    def apply(self, event: Event) -> Change:
        ref = event.ref
        if ref.kind not in ENGINE_KINDS:
            return Ignored(ref)
        if event.doc is None:
            self._accept(ref)
            return self._delete(ref)
        try:
            parsed = parse_documents([(f"<store> {ref}", event.doc)])
        except ManifestError as exc:
            self.rejected[ref] = _rejected(ref, event.doc, exc)
            self.rejections += 1
            return Ignored(ref)
        self._accept(ref)
        return self._upsert(ref, parsed)

    def _accept(self, ref: ObjectRef) -> None:
        if self.rejected.pop(ref, None) is not None:
            self.rejections += 1

    def apply_all(self, events: Iterable[Event]) -> list[Change]:
        return [self.apply(event) for event in events]

    # -- deletes ---------------------------------------------------------------------------------

    def _delete(self, ref: ObjectRef) -> Change:
        engine = self.engine
        if ref.kind == "Pod":
            return self._pod(pod_key(ref.namespace, ref.name), None)
        if ref.kind == "Namespace":
            engine.delete_namespace(ref.name)
        elif ref.kind == "Node":
            engine.delete_node(ref.name)
        elif ref.kind == "NetworkPolicy":
            engine.delete_policy(PolicyKey(f"{ref.namespace}/{ref.name}"))
        else:
            baseline = ref.kind == "BaselineAdminNetworkPolicy"
            engine.delete_admin_policy(ref.name, baseline=baseline)
        return ObjectChange(ref)

    # -- upserts ---------------------------------------------------------------------------------

    def _upsert(self, ref: ObjectRef, parsed: Manifests) -> Change:
        engine = self.engine
        if ref.kind == "Pod":
            return self._pod(pod_key(ref.namespace, ref.name), parsed.pods[0])
        if ref.kind == "Namespace":
            engine.upsert_namespace(next(n for n in parsed.namespaces if n.declared))
        elif ref.kind == "Node":
            engine.upsert_node(parsed.nodes[0])
        elif ref.kind == "NetworkPolicy":
            engine.upsert_policy(parsed.policies[0])
        elif ref.kind == "AdminNetworkPolicy":
            engine.upsert_admin_policy(parsed.admin_policies[0])
        else:
            assert parsed.baseline_policy is not None, "a BANP document parses to the baseline"
            engine.upsert_admin_policy(parsed.baseline_policy)
        return ObjectChange(ref)

    def _pod(self, key: PodKey, new: Pod | None) -> PodChange:
        engine = self.engine
        old = engine.pods().get(key)
        before = self._selectors_of(key) if old is not None else frozenset()
        if new is None:
            engine.delete_pod(key)
        else:
            engine.upsert_pod(new)
        after = self._selectors_of(key) if new is not None else frozenset()
        return PodChange(old, new, before, after)

    def _selectors_of(self, key: PodKey) -> frozenset[EndpointSelector]:
        engine = self.engine
        return engine.index().selectors_matching(engine.groups().group_of(key))


def _rejected(ref: ObjectRef, doc: Doc, exc: ManifestError) -> Rejected:
    reason = "; ".join(p.message for p in exc.problems) or str(exc)
    if ref.kind != "Pod":
        return Rejected(ref, reason)
    spec, status = doc.get("spec"), doc.get("status")
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return Rejected(
        ref, reason, node if isinstance(node, str) else None,
        _raw_ips(status if isinstance(status, dict) else {}),
    )


def _raw_ips(status: Doc) -> tuple[IPAddress, ...]:
    """Whatever addresses a pod's raw status names, skipping what does not parse."""
    values = [status.get("podIP")]
    entries = status.get("podIPs")
    if isinstance(entries, list):
        values += [e.get("ip") for e in entries if isinstance(e, dict)]
    found: list[IPAddress] = []
    for value in values:
        try:
            ip = ipaddress.ip_address(str(value))
        except ValueError:
            continue
        if ip not in found:
            found.append(ip)
    return tuple(found)


__all__ = [
    "ENGINE_KINDS",
    "Change",
    "EngineFeed",
    "Ignored",
    "ObjectChange",
    "PodChange",
    "Rejected",
]
