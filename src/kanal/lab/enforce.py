"""Policy into the kernel: per node, engine -> `render_node` -> `table inet kanal`.

`up` loads each node's whole table in one transaction (`load_table_atomically`). Afterwards every
command is a new process, so "the last applied ruleset" is not in memory: it is rendered again
from the previous state (the documents, placement and addresses saved in the lab state are
exactly the inputs of the last render, and rendering is pure and deterministic), and checked
against the digest of the table text that was actually loaded, also saved in the state. Then
`plan_update(old, new)` decides:

- only set or map elements differ (a label change, a pod added or removed under the same
  policies): one buffer of `delete element`/`add element` commands, one transaction;
- the structure differs (a policy added, changed or removed), or the old render does not match
  the saved digest (another kanal version, an edited state): an atomic whole-table reload;
- nothing differs: nothing is sent.

A delta the kernel refuses (the table drifted: someone edited it by hand) falls back to a
whole reload, so the kernel always ends at the new render. Reading the kernel's table back
(`nft -j list table`) and diffing it was the alternative; its JSON cannot be loaded back as is
(LINUX-NOTES) and turning it into IR is more code than re-rendering, which costs milliseconds.
Neither path touches conntrack: established connections keep flowing (`ct state established`
is the first rule of every table version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kanal.dataplane.nft import Nft, load_table_atomically
from kanal.engine import PolicyEngine
from kanal.errors import DataplaneError
from kanal.render import RenderOptions, Ruleset, plan_update, render_node, table_text


@dataclass(frozen=True, slots=True)
class NodeUpdate:
    """What was sent to one node: `kind` is `load` (whole table), `delta` (elements only) or
    `unchanged`; `text` is what nft ran (without the atomic-replace preamble)."""

    node: str
    kind: str
    text: str
    reason: str = ""


def render_nodes(
    engine: PolicyEngine, nodes: Iterable[str], options: RenderOptions | None = None
) -> dict[str, Ruleset]:
    return {node: render_node(engine, node, options) for node in nodes}


def digest(ruleset: Ruleset) -> str:
    """Identifies the table text loaded for a ruleset (what the state remembers)."""
    return hashlib.sha256(table_text(ruleset).encode()).hexdigest()


def problems(rulesets: Mapping[str, Ruleset]) -> list[str]:
    """What the renderer could not express (it drops instead), per node, for warnings."""
    return [f"node `{node}`: {p}" for node, r in rulesets.items() for p in r.problems]


class Enforcer:
    """Sends rulesets to the nodes' namespaces (`netns_of`: node -> netns), one libnftables
    context per call, closed again so it does not keep a deleted namespace alive."""

    def __init__(self, netns_of: Mapping[str, str]) -> None:
        self.netns_of = dict(netns_of)

    def load(self, rulesets: Mapping[str, Ruleset]) -> list[NodeUpdate]:
        """Whole tables, each in one transaction."""
        return [self._load(node, ruleset, "first load") for node, ruleset in rulesets.items()]

    def update(
        self,
        old: Mapping[str, Ruleset],
        new: Mapping[str, Ruleset],
        applied: Mapping[str, str],
    ) -> list[NodeUpdate]:
        """Take every node from `old` (trusted only if its digest is `applied[node]`) to `new`."""
        updates = []
        for node, ruleset in new.items():
            previous = old.get(node)
            if previous is not None and digest(previous) != applied.get(node):
                updates.append(self._load(node, ruleset, "the last load is not the old render"))
                continue
            updates.append(self._update(node, previous, ruleset))
        return updates

    def _update(self, node: str, previous: Ruleset | None, ruleset: Ruleset) -> NodeUpdate:
        plan = plan_update(previous, ruleset)
        if plan.full:
            return self._load(node, ruleset, "structure changed")
        if not plan.text:
            return NodeUpdate(node, "unchanged", "")
        try:
            with Nft(self.netns_of[node]) as nft:
                nft.run(plan.text)
        except DataplaneError as exc:
            first = str(exc).splitlines()[0]
            return self._load(node, ruleset, f"delta refused ({first})")
        return NodeUpdate(node, "delta", plan.text)

    def _load(self, node: str, ruleset: Ruleset, reason: str) -> NodeUpdate:
        text = table_text(ruleset)
        with Nft(self.netns_of[node]) as nft:
            load_table_atomically(nft, text)
        return NodeUpdate(node, "load", text, reason)


__all__ = ["Enforcer", "NodeUpdate", "digest", "problems", "render_nodes"]
