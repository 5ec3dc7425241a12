"""The traffic graph between policy groups, as dot, JSON or Mermaid. Pure.

Groups are what policies select, as attribution named them (`kanal.flows.attribute`): a pod's
namespace with the policies selecting it (`x (x/web)`, or just `x`), `node NAME`, the ipBlock or
networks peer an external address matched, or `world`. One edge per (source group, destination
group, deciding rule): an allowed pod-to-pod connection usually has an egress and an ingress
record, so it appears on the egress rule's edge and on the ingress rule's edge. Denied edges are
drawn dashed and red.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kanal.flows.records import Decision

FORMATS = ("dot", "json", "mermaid")


@dataclass(frozen=True, slots=True)
class Edge:
    """Flows from one group to another decided by one decision, and their bytes."""

    src: str
    dst: str
    decision: Decision
    flows: int
    bytes: int

    @property
    def label(self) -> str:
        return f"{self.decision.verdict.value}: {self.decision.describe()}"

    def to_json(self, ids: dict[str, str]) -> dict[str, Any]:
        return {
            "from": ids[self.src], "to": ids[self.dst],
            "verdict": self.decision.verdict.value,
            "direction": self.decision.direction.value.lower(),
            "decision": self.decision.describe(),
            **self.decision.to_json(),
            "flows": self.flows, "bytes": self.bytes,
        }


def _sorted(edges: Sequence[Edge]) -> list[Edge]:
    return sorted(edges, key=lambda e: (e.src, e.dst, e.label))


def _node_ids(edges: Sequence[Edge]) -> dict[str, str]:
    names = sorted({e.src for e in edges} | {e.dst for e in edges})
    return {name: f"g{i}" for i, name in enumerate(names)}


def to_json(edges: Sequence[Edge]) -> dict[str, Any]:
    ids = _node_ids(edges)
    return {
        "nodes": [{"id": i, "label": name} for name, i in ids.items()],
        "edges": [e.to_json(ids) for e in _sorted(edges)],
    }


def to_dot(edges: Sequence[Edge]) -> str:
    ids = _node_ids(edges)
    lines = ["digraph kanal {", "  rankdir=LR;", '  node [shape=box, style=rounded];']
    lines.extend(f"  {i} [label={_quoted(name)}];" for name, i in ids.items())
    for edge in _sorted(edges):
        style = 'color="darkgreen"' if edge.decision.allowed else 'color="red", style=dashed'
        label = _quoted(f"{edge.label} ({edge.flows})")
        lines.append(f"  {ids[edge.src]} -> {ids[edge.dst]} [label={label}, {style}];")
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(edges: Sequence[Edge]) -> str:
    ids = _node_ids(edges)
    lines = ["flowchart LR"]
    lines.extend(f'  {i}["{_mermaid_text(name)}"]' for name, i in ids.items())
    for edge in _sorted(edges):
        arrow = "-->" if edge.decision.allowed else "-.->"
        label = _mermaid_text(f"{edge.label} ({edge.flows})")
        lines.append(f'  {ids[edge.src]} {arrow}|"{label}"| {ids[edge.dst]}')
    return "\n".join(lines)


def render(edges: Sequence[Edge], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(edges), indent=2)
    if fmt == "mermaid":
        return to_mermaid(edges)
    if fmt == "dot":
        return to_dot(edges)
    raise ValueError(f"unknown graph format {fmt!r}: one of {', '.join(FORMATS)}")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


__all__ = ["FORMATS", "Edge", "render", "to_dot", "to_json", "to_mermaid"]
