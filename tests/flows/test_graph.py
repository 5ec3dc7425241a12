"""The group graph in its three formats, edges labelled by verdict and deciding rule."""

from __future__ import annotations

import json
from pathlib import Path

from kanal.flows.filters import FlowFilter
from kanal.flows.graph import Edge, render
from kanal.flows.store import FlowStore

from .builders import ALLOW_WEB, DEFAULT_DENY_WEB, denied, record

EDGES = [
    Edge("y", "x (x/allow-clients, x/default-deny)", ALLOW_WEB, 3, 1200),
    Edge("z (z/egress-only)", "x (x/allow-clients, x/default-deny)", DEFAULT_DENY_WEB, 2, 0),
]


def test_dot() -> None:
    assert render(EDGES, "dot") == "\n".join([
        "digraph kanal {",
        "  rankdir=LR;",
        "  node [shape=box, style=rounded];",
        '  g0 [label="x (x/allow-clients, x/default-deny)"];',
        '  g1 [label="y"];',
        '  g2 [label="z (z/egress-only)"];',
        '  g1 -> g0 [label="allowed: [NetworkPolicy x/allow-clients] rule #0 Allow (3)", '
        'color="darkgreen"];',
        '  g2 -> g0 [label="denied: default deny (isolated by x/allow-clients, '
        'x/default-deny) (2)", color="red", style=dashed];',
        "}",
    ])


def test_mermaid() -> None:
    assert render(EDGES, "mermaid").splitlines() == [
        "flowchart LR",
        '  g0["x (x/allow-clients, x/default-deny)"]',
        '  g1["y"]',
        '  g2["z (z/egress-only)"]',
        '  g1 -->|"allowed: [NetworkPolicy x/allow-clients] rule #0 Allow (3)"| g0',
        '  g2 -.->|"denied: default deny (isolated by x/allow-clients, x/default-deny) (2)"| g0',
    ]


def test_json_edges_carry_the_decision_like_a_record() -> None:
    found = json.loads(render(EDGES, "json"))
    assert found["nodes"][1] == {"id": "g1", "label": "y"}
    assert found["edges"][0] == {
        "from": "g1", "to": "g0", "verdict": "allowed", "direction": "ingress",
        "decision": "[NetworkPolicy x/allow-clients] rule #0 Allow",
        "policy": {"tier": "NetworkPolicy", "namespace": "x", "name": "allow-clients",
                   "rule": 0, "rule_name": "", "action": "Allow"},
        "flows": 3, "bytes": 1200}
    assert found["edges"][1]["default_deny"]["isolated_by"][0]["name"] == "allow-clients"


def test_the_store_groups_flows_into_edges(tmp_path: Path) -> None:
    store = FlowStore(tmp_path / "flows.db")
    store.insert([record(), record(), record(denied)])
    edges = sorted(store.edges(FlowFilter()), key=lambda e: e.src)
    assert [(e.src, e.dst, e.decision, e.flows) for e in edges] == [
        ("y", "x (x/allow-clients, x/default-deny)", ALLOW_WEB, 2),
        ("z (z/egress-only)", "x (x/allow-clients, x/default-deny)", DEFAULT_DENY_WEB, 1)]
    store.close()
