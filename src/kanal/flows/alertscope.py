"""Which flows an AlertRule watches (its scope) and whom each one is counted for (its key).
Pure: decided from the record's own fields (the deciding policy, both ends' namespaces and pod
labels), plus the namespaces' labels for `namespaceSelector`.

- no scope: every flow the collector records;
- `policy`: the record was decided by a rule of that policy, or by a default deny it takes
  part in (it isolates the pod): what `kanal flows --policy` shows;
- `namespace`: either end is a pod of that namespace;
- `podSelector`/`namespaceSelector`: either end is a selected pod.

Keys: `Source` counts for the record's source, `Destination` for its destination (a pod, or
an address outside the cluster), `Scope` counts the whole scope as one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kanal.flows.records import FlowRecord, Peer
from kanal.model.alertparts import AlertScope, NamespaceScope, PodScope, PolicyScope
from kanal.model.alertrule import GroupBy
from kanal.model.objects import NAMESPACE_NAME_LABEL

ScopeMatch = Callable[[FlowRecord], bool]
NamespaceLabels = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class AlertKey:
    """Whom an alert is about: a pod (`namespace`, `pod`), an address (`ip` only), or the
    whole scope (neither)."""

    text: str
    namespace: str | None = None
    pod: str | None = None
    ip: str | None = None

    @property
    def is_pod(self) -> bool:
        return self.pod is not None

    @staticmethod
    def of(peer: Peer) -> AlertKey:
        return AlertKey(peer.describe(), peer.namespace, peer.pod, peer.ip)


def describe_scope(scope: AlertScope) -> str:
    return "every flow" if scope is None else scope.describe()


def scope_match(scope: AlertScope, namespaces: NamespaceLabels) -> ScopeMatch:
    """A test of one record against `scope`; `namespaces` labels namespaces by name (one not
    in it has only its name label, as an implicit namespace has)."""
    if scope is None:
        return lambda record: True
    if isinstance(scope, PolicyScope):
        return _policy_match(scope)
    if isinstance(scope, NamespaceScope):
        name = scope.namespace
        return lambda r: name in (r.src.namespace, r.dst.namespace)
    return _pods_match(scope, namespaces)


def _policy_match(scope: PolicyScope) -> ScopeMatch:
    key, kind = scope.policy, scope.kind

    def match(record: FlowRecord) -> bool:
        decision = record.decision
        if decision.policy == key:
            return kind is None or (decision.tier is not None and decision.tier.value == kind)
        return key in decision.isolating and kind in (None, "NetworkPolicy")

    return match


def _pods_match(scope: PodScope, namespaces: NamespaceLabels) -> ScopeMatch:
    pods, spaces = scope.pod_selector, scope.namespace_selector

    def selected(peer: Peer) -> bool:
        if peer.pod is None or peer.namespace is None:
            return False
        if pods is not None and not pods.matches(peer.labels):
            return False
        if spaces is None:
            return True
        labels = namespaces.get(peer.namespace) or {NAMESPACE_NAME_LABEL: peer.namespace}
        return spaces.matches(labels)

    return lambda record: selected(record.src) or selected(record.dst)


def key_of(record: FlowRecord, group_by: GroupBy) -> Peer | None:
    """The end of `record` counted for, None for the whole scope."""
    if group_by is GroupBy.SOURCE:
        return record.src
    if group_by is GroupBy.DESTINATION:
        return record.dst
    return None


__all__ = ["AlertKey", "ScopeMatch", "describe_scope", "key_of", "scope_match"]
