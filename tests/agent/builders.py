"""Store documents for agent tests, as the lab writes them (pods carry node and address).

```
pod("x/a", node="n1", ip="10.0.1.2", app="web")          ports default: 80/TCP named http
netpol("x/allow", select(app="web"), ingress=[peer(app="client")])
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Doc = dict[str, Any]
PortSpec = tuple[int, str] | tuple[int, str, str]

HTTP: tuple[PortSpec, ...] = ((80, "TCP", "http"),)


def namespace(name: str, **labels: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def node(name: str, ip: str, **labels: str) -> Doc:
    return {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def pod(
    key: str,
    *,
    node: str | None = None,
    ip: str | Sequence[str] | None = None,
    ports: Sequence[PortSpec] = HTTP,
    **labels: str,
) -> Doc:
    ns, name = key.split("/")
    entries = []
    for spec in ports:
        entry: Doc = {"containerPort": spec[0], "protocol": spec[1]}
        if len(spec) == 3:
            entry["name"] = spec[2]
        entries.append(entry)
    doc: Doc = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": entries}]},
    }
    if node is not None:
        doc["spec"]["nodeName"] = node
    if isinstance(ip, str):
        doc["status"] = {"podIP": ip}
    elif ip:
        doc["status"] = {"podIP": ip[0], "podIPs": [{"ip": a} for a in ip]}
    return doc


def select(**labels: str) -> dict[str, Any]:
    return {"matchLabels": labels}


def peer(namespaces: Mapping[str, str] | None = None, **labels: str) -> dict[str, Any]:
    found: dict[str, Any] = {"podSelector": select(**labels)}
    if namespaces is not None:
        found["namespaceSelector"] = {"matchLabels": dict(namespaces)}
    return found


def netpol(
    key: str,
    subject: Mapping[str, Any] | None = None,
    *,
    ingress: Sequence[Mapping[str, Any]] | None = None,
    egress: Sequence[Mapping[str, Any]] | None = None,
    ports: Sequence[Mapping[str, Any]] = (),
) -> Doc:
    """Ingress and egress rules from peers (each list one rule, with `ports`); a direction
    given as [] isolates without allowing."""
    ns, name = key.split("/")
    spec: dict[str, Any] = {"podSelector": dict(subject or {}), "policyTypes": []}
    for direction, peers, side in (("Ingress", ingress, "from"), ("Egress", egress, "to")):
        if peers is None:
            continue
        spec["policyTypes"].append(direction)
        rule: dict[str, Any] = {side: [dict(p) for p in peers]}
        if ports:
            rule["ports"] = [dict(p) for p in ports]
        spec[direction.lower()] = [rule] if peers else []
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }


def anp(name: str, priority: int, spec: Mapping[str, Any]) -> Doc:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
        "metadata": {"name": name}, "spec": {"priority": priority, **spec},
    }


def banp(spec: Mapping[str, Any]) -> Doc:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"}, "spec": dict(spec),
    }
