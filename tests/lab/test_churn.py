"""Churn: 1,000 pods created and deleted through `kanal lab apply/delete` (in batches, the agents
enforcing every step) leave nothing behind: each node's table lists exactly as before (no stale
set or map element), no pod netns, veth, route or permanent neighbour entry remains, and IPAM
holds only the pods that stayed.

The lab uses vxlan and namespace IPAM, the mode that touches the most state: every pod is a /32
route and a neighbour entry on every other node. The churned pods are selected by a policy's
peer and carry a named port, so they are elements of selector and named-port sets everywhere.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kanal.dataplane.netns import list_netns
from kanal.dataplane.nft import Nft

from .docs import Doc, lab, namespace, pod, policy
from .running import Running, running_lab

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

PODS = 1000
BATCH = 250
BASE = [
    namespace("x", ns="x"),
    namespace("churn", ns="churn"),
    pod("x/server", node="node-1", ports=((80, "TCP", "http"),), role="server"),
    pod("x/peer", node="node-2", ports=((80, "TCP", "http"),), role="server"),
    policy("x/from-churn", {
        "podSelector": {"matchLabels": {"role": "server"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "churn"}},
                               "podSelector": {"matchLabels": {"app": "churn"}}}]}],
        "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}],
        "policyTypes": ["Ingress", "Egress"],
    }),
    lab(backend="vxlan", ipam="namespace", blockPrefix=21),  # 2,046 pods per namespace
]


def churned(first: int, count: int) -> list[Doc]:
    """Pods without served ports (no server restarts), but with a named port for the sets."""
    return [
        {**pod(f"churn/p{i:04d}", app="churn"),
         "spec": {"containers": [{"name": "c", "ports": [
             {"containerPort": 8080, "name": "http", "protocol": "TCP"}]}]}}
        for i in range(first, first + count)
    ]


def node_state(running: Running) -> dict[str, Any]:
    """Per node: the table as the kernel lists it (elements sorted, handles dropped), routes,
    permanent neighbours and links."""
    found: dict[str, Any] = {}
    for node in running.lab.status().nodes:
        with Nft(node.netns) as nft:
            listed = nft.run_json("list table inet kanal")
        found[node.name] = {
            "table": _normalized(listed),
            "routes": _ip(node.netns, "-4", "route", "show"),
            "neighbours": _ip(node.netns, "neigh", "show", "nud", "permanent"),
            "links": sorted(line.split(":")[1].split("@")[0].strip()
                            for line in _ip(node.netns, "-o", "link", "show")),
        }
    return found


def _ip(netns: str, *args: str) -> list[str]:
    out = subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True, text=True)
    return sorted(out.stdout.splitlines())


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if k not in ("handle", "metainfo")}
    if isinstance(value, list):
        items = [_normalized(v) for v in value]
        return sorted(items, key=json.dumps) if all(not isinstance(i, dict) or "rule" not in i
                                                    for i in items) else items
    return value


def test_creating_and_deleting_1000_pods_leaves_no_stale_state(
    netns_prefix: str, tmp_path: Path
) -> None:
    with running_lab(netns_prefix, tmp_path, BASE) as running:
        before = node_state(running)
        addresses = dict(running.lab.store.load().ipam.addresses)  # type: ignore[union-attr]
        for first in range(0, PODS, BATCH):
            change = running.apply(churned(first, BATCH))
            assert len(change.added) == BATCH
        status = running.lab.status()
        assert len(status.pods) == PODS + 2 and status.problems == ()
        for node, during in node_state(running).items():
            listed = json.dumps(during["table"])
            missing = [p.name for p in status.pods if p.name.startswith("churn/")
                       and f'"{p.ip}"' not in listed]
            assert missing == [], f"node {node}: churned pods missing from the sets"
        for first in range(0, PODS, BATCH):
            change = running.delete(churned(first, BATCH))
            assert len(change.removed) == BATCH
        assert node_state(running) == before
        assert list_netns(f"{netns_prefix}p-churn.") == []
        state = running.lab.store.load()
        assert state is not None and state.ipam.addresses == addresses
