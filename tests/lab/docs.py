"""Raw manifest documents for lab tests, as `-f` files hold them (the lab keeps raw documents).

Builders take the essentials positionally and the rest by keyword; `write` puts documents into a
YAML file for the `paths` the lab commands take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]
PortSpec = tuple[int, str] | tuple[int, str, str]
"""(port, protocol) or (port, protocol, name)."""

WEB: tuple[PortSpec, ...] = ((80, "TCP", "http"), (80, "UDP"), (80, "SCTP"))


def namespace(name: str, **labels: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    key: str,
    *,
    ports: Sequence[PortSpec] = WEB,
    node: str | None = None,
    ip: str | None = None,
    **labels: str,
) -> Doc:
    ns, name = key.split("/")
    container_ports = []
    for spec in ports:
        entry: Doc = {"containerPort": spec[0], "protocol": spec[1]}
        if len(spec) == 3:
            entry["name"] = spec[2]
        container_ports.append(entry)
    doc: Doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"pod": name}},
        "spec": {"containers": [{"name": "c", "ports": container_ports}]},
    }
    if node is not None:
        doc["spec"]["nodeName"] = node
    if ip is not None:
        doc["status"] = {"podIP": ip}
    return doc


def lab(
    name: str = "t",
    *,
    nodes: int | Sequence[str] = 2,
    backend: str = "vxlan",
    ipam: str = "node",
    **extra: Any,
) -> Doc:
    spec: Doc = {"nodes": nodes if isinstance(nodes, int) else list(nodes),
                 "backend": backend, "ipam": ipam, **extra}
    return {"apiVersion": "kanal.io/v1alpha1", "kind": "Lab", "metadata": {"name": name},
            "spec": spec}


def policy(key: str, spec: Mapping[str, Any]) -> Doc:
    ns, name = key.split("/")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": dict(spec),
    }


def deny_ingress(key: str, **selector: str) -> Doc:
    return policy(key, {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"]})


def model(
    namespaces: Sequence[str] = ("x", "y", "z"),
    pods: Sequence[str] = ("a", "b", "c"),
    ports: Sequence[PortSpec] = WEB,
) -> list[Doc]:
    """The classic model's shape (`ns: x`, `pod: a` labels), without nodes or addresses: the
    lab places and addresses the pods."""
    docs = [namespace(ns, ns=ns) for ns in namespaces]
    docs += [pod(f"{ns}/{p}", ports=ports, pod=p) for ns in namespaces for p in pods]
    return docs


def write(path: Path, docs: Iterable[Doc]) -> str:
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return str(path)
