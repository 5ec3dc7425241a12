"""Small clusters for semantic tests: manifest builders with tweak callables, a cluster that
goes through the validating parser, and the decision chain of one direction as one line of text.

```
cluster(
    pod("x/db", labels(app="db"), serves(5432, name="pg")),
    pod("y/web", labels(app="web")),
    netpol("x/allow-web", "podSelector: {matchLabels: {app: db}}, ingress: [{from: [...]}]"),
)
```

Policies are written as YAML (flow style fits on one line), the form users write them in. Pods
get addresses 10.0.0.1, 10.0.0.2, ... in order unless a tweak gives their own (`ips`, `no_ip`).
A `Case` is one rule's table row: the cluster, a flow (`x/web -> x/db 80/TCP`), the verdict and
the chain expected in each direction. A chain reads like the issue's example:
`[ANP pass-to-dev] Pass 'to-dev' (namespaces env=dev; any port) → [NetworkPolicy x/allow-web]
Allow #0 (pods app=web in namespace x; 80/TCP)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from kanal.engine import DirectionDecision, Outcome, PolicyEngine, Step
from kanal.engine.matrix import compute_matrix
from kanal.model.objects import Protocol
from kanal.model.parse import parse_documents

Doc = dict[str, Any]
Tweak = Callable[[Doc], None]


# -- tweaks ----------------------------------------------------------------------------------------


def labels(**values: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc["metadata"].setdefault("labels", {}).update(values)

    return tweak


def serves(port: int, protocol: str = "TCP", *, name: str | None = None) -> Tweak:
    """A container port of a pod."""

    def tweak(doc: Doc) -> None:
        entry: Doc = {"containerPort": port, "protocol": protocol}
        if name is not None:
            entry["name"] = name
        doc["spec"]["containers"][0]["ports"].append(entry)

    return tweak


def ips(*addresses: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc["status"] = {"podIP": addresses[0], "podIPs": [{"ip": ip} for ip in addresses]}

    return tweak


def on_node(name: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc["spec"]["nodeName"] = name

    return tweak


def no_ip(doc: Doc) -> None:
    """A pod not yet given an address (pending, or its status not exported)."""
    doc["status"] = {}


def node_ip(address: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        doc["status"] = {"addresses": [{"type": "InternalIP", "address": address}]}

    return tweak


# -- manifests -------------------------------------------------------------------------------------


def namespace(name: str, *tweaks: Tweak) -> Doc:
    doc: Doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    for tweak in tweaks:
        tweak(doc)
    return doc


def pod(key: str, *tweaks: Tweak) -> Doc:
    ns, name = key.split("/")
    doc: Doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "main", "ports": []}]},
    }
    for tweak in tweaks:
        tweak(doc)
    return doc


def node(name: str, *tweaks: Tweak) -> Doc:
    doc: Doc = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    for tweak in tweaks:
        tweak(doc)
    return doc


def netpol(key: str, spec: str) -> Doc:
    ns, name = key.split("/")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml.safe_load(spec),
    }


def anp(name: str, spec: str) -> Doc:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": yaml.safe_load(spec),
    }


def banp(spec: str) -> Doc:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": yaml.safe_load(spec),
    }


def cluster(*docs: Doc) -> PolicyEngine:
    """An engine over `docs`, read by the validating parser; pods without a `status` get the
    next address of 10.0.0.0/24."""
    numbered = 0
    for doc in docs:
        if doc["kind"] == "Pod" and "status" not in doc:
            numbered += 1
            ips(f"10.0.0.{numbered}")(doc)
    parsed = parse_documents((f"doc {i}", doc) for i, doc in enumerate(docs, start=1))
    return PolicyEngine.from_manifests(parsed)


# -- decision chains -------------------------------------------------------------------------------


def step_text(step: Step) -> str:
    """A rule's step names tier, policy, action, rule, peer and port; any other step is its
    outcome (`NotIsolated`, `NotAPod`, ...), the default deny with its isolating policies."""
    if step.outcome is Outcome.DEFAULT_DENY:
        return f"[NetworkPolicy] DefaultDeny (isolated by {', '.join(step.isolating)})"
    if step.policy is None:
        return step.outcome.value
    tier = step.tier.short if step.tier is not None else "?"
    return f"[{tier} {step.policy}] {step.outcome} {step.rule_label()} ({step.peer}; {step.port})"


def chain(decision: DirectionDecision) -> str:
    return " → ".join(step_text(s) for s in decision.steps)


NOT_ISOLATED = "NotIsolated"
NOT_A_POD = "NotAPod"


# -- one rule, one flow ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    docs: list[Doc]
    flow: str
    """`SOURCE -> DESTINATION PORT/PROTOCOL`, each end `ns/pod` or an address."""
    allowed: bool
    egress: str
    ingress: str

    @property
    def expected(self) -> tuple[bool, str, str]:
        return self.allowed, self.egress, self.ingress


def case(rule: str, docs: list[Doc], flow: str, *, allowed: bool, egress: str, ingress: str) -> Any:
    """One rule: its sentence (the test id), the cluster, the flow and the expected answer."""
    return pytest.param(Case(docs, flow, allowed, egress, ingress), id=rule)


def _flow(flow: str) -> tuple[str, str, int, Protocol]:
    source, destination, probe = flow.replace(" -> ", " ").split()
    port, protocol = probe.split("/")
    return source, destination, int(port), Protocol(protocol)


def answer(engine: PolicyEngine, flow: str) -> tuple[bool, str, str]:
    """What `explain` says of the flow: the verdict and each direction's chain."""
    verdict = engine.explain(*_flow(flow))
    return verdict.allowed, chain(verdict.egress), chain(verdict.ingress)


def matrix_cell(engine: PolicyEngine, flow: str) -> bool | None:
    """The truth table's cell for the flow, None unless both ends are pods."""
    source, destination, port, protocol = _flow(flow)
    if "/" not in source or "/" not in destination:
        return None
    matrix = compute_matrix(engine, port=port, protocol=protocol)
    return bool(matrix.allowed[matrix.pods.index(source), matrix.pods.index(destination)])
