"""The cluster of the flow tests, as manifests (what a collector loads) and as an engine.

    node 0: x/web (app=web; http=80/TCP, dns=53/UDP)   y/client-a (app=client)
    node 1: y/client-b (app=client)                     z/other (app=other)

    NetworkPolicy x/default-deny   every pod in x: ingress isolated, no rule
    NetworkPolicy x/allow-clients  app=web: ingress from namespace y on http and 53/UDP
    NetworkPolicy z/egress-only    app=other: egress only to namespace x on 80 (its other
                                   egress is default-denied at its own node)

`documents(nodes, ips)` places the four pods on the given node names with the given addresses
(minilab order), so the unit tests and the kernel tests share one cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kanal.engine import PolicyEngine
from kanal.model.parse import parse_documents

PODS = (  # (namespace, name, labels, ports), in minilab order: n0-p0, n0-p1, n1-p0, n1-p1
    ("x", "web", {"app": "web"}, [("http", 80, "TCP"), ("dns", 53, "UDP")]),
    ("y", "client-a", {"app": "client"}, []),
    ("y", "client-b", {"app": "client"}, []),
    ("z", "other", {"app": "other"}, []),
)
DEFAULT_NODES = ("node-0", "node-0", "node-1", "node-1")
DEFAULT_IPS = ("10.244.1.2", "10.244.1.3", "10.244.2.2", "10.244.2.3")


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _pod(index: int, node: str, ip: str) -> dict[str, Any]:
    namespace, name, labels, ports = PODS[index]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
            {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports
        ]}]},
        "status": {"podIPs": [{"ip": ip}]},
    }


def _policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def policies() -> list[dict[str, Any]]:
    from_y = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}
    to_x = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}}
    return [
        _policy("x", "default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}),
        _policy("x", "allow-clients", {
            "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [from_y], "ports": [{"port": "http"},
                                                     {"port": 53, "protocol": "UDP"}]}],
        }),
        _policy("z", "egress-only", {
            "podSelector": {"matchLabels": {"app": "other"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [to_x], "ports": [{"port": 80}]}],
        }),
    ]


def documents(
    nodes: Sequence[str] = DEFAULT_NODES, ips: Sequence[str] = DEFAULT_IPS
) -> list[dict[str, Any]]:
    pods = [_pod(i, node, ip) for i, (node, ip) in enumerate(zip(nodes, ips, strict=True))]
    return [_namespace("x"), _namespace("y"), _namespace("z"), *pods, *policies()]


def write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    return path


def engine(docs: list[dict[str, Any]] | None = None) -> PolicyEngine:
    return PolicyEngine.from_manifests(
        parse_documents(("cluster.py", d) for d in docs or documents()))
