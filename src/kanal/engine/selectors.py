"""Endpoint selectors: every way a policy picks pods, as one conjunction over one label space.

A pod is seen by the engine through its *view*: its own labels under the prefix `pod:` and its
namespace's labels under `ns:` (Calico's `pcns.` idea). Every selector form then becomes a
plain conjunction of requirements over that view:

- a NetworkPolicy's `podSelector` in namespace x   -> ns:kubernetes.io/metadata.name=x ∧ pod:…
- a peer's `namespaceSelector` alone               -> ns:…
- a peer with both                                 -> ns:… ∧ pod:…
- an admin policy's `namespaces` / `pods` subject  -> ns:… (∧ pod:…)

so one label index serves all of them, and two policies that say the same thing in different
words share one selector (and one kernel set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    LabelSelector,
    Operator,
    Requirement,
)

POD = "pod:"
NS = "ns:"


@dataclass(frozen=True, slots=True)
class EndpointSelector:
    """A conjunction of requirements over a pod's view; the empty one selects every pod."""

    requirements: frozenset[Requirement]

    def matches(self, view: Mapping[str, str]) -> bool:
        # `In` inline: nearly every requirement is one, and this is the label index's inner loop.
        for r in self.requirements:
            if r.operator is Operator.IN:
                if view.get(r.key) not in r.values:
                    return False
            elif not r.matches(view):
                return False
        return True

    def describe(self) -> str:
        """A stable, human-readable form, also used to name kernel sets deterministically."""
        if not self.requirements:
            return "all pods"
        return " && ".join(sorted(_describe_requirement(r) for r in self.requirements))


def _describe_requirement(r: Requirement) -> str:
    values = ",".join(sorted(r.values))
    match r.operator:
        case Operator.IN if len(r.values) == 1:
            return f"{r.key}={values}"
        case Operator.IN:
            return f"{r.key} in ({values})"
        case Operator.NOT_IN:
            return f"{r.key} notin ({values})"
        case Operator.EXISTS:
            return f"has({r.key})"
        case Operator.DOES_NOT_EXIST:
            return f"!has({r.key})"


def _qualified(prefix: str, selector: LabelSelector) -> Iterable[Requirement]:
    for r in selector.requirements():
        yield Requirement(prefix + r.key, r.operator, r.values)


def endpoint_selector(
    *,
    namespace: str | None = None,
    namespace_selector: LabelSelector | None = None,
    pod_selector: LabelSelector | None = None,
) -> EndpointSelector:
    """Pods in `namespace` (a fixed name) and/or namespaces matching `namespace_selector`, whose
    own labels match `pod_selector`; None means no constraint from that part."""
    reqs: set[Requirement] = set()
    if namespace is not None:
        reqs.add(Requirement(NS + NAMESPACE_NAME_LABEL, Operator.IN, frozenset((namespace,))))
    if namespace_selector is not None:
        reqs.update(_qualified(NS, namespace_selector))
    if pod_selector is not None:
        reqs.update(_qualified(POD, pod_selector))
    return EndpointSelector(frozenset(reqs))


def pod_view(namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels an endpoint selector is matched against."""
    view = {NS + k: v for k, v in namespace_labels.items()}
    view.update((POD + k, v) for k, v in pod_labels.items())
    return view
