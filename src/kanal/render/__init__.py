"""Engine state -> nftables: pure, deterministic, one table per node.

`render_node(engine, node)` builds the IR (`Ruleset`) of one node's `table inet kanal`;
`table_text` writes it for an atomic load, `plan_update` / `delta_text` turn two renders into
set-element commands when only memberships changed, and `patch_text` adds and removes whole
chains and sets besides. See `kanal.render.ruleset` for the chain and
tier design.
"""

from kanal.render.ir import Chain, Hook, LogEntry, NamedSet, Rule, Ruleset, VerdictMap
from kanal.render.nfttext import (
    Update,
    delta_text,
    only_elements_differ,
    patch_text,
    plan_update,
    rule_text,
    table_text,
)
from kanal.render.ruleset import RenderOptions, render_node

__all__ = [
    "Chain",
    "Hook",
    "LogEntry",
    "NamedSet",
    "RenderOptions",
    "Rule",
    "Ruleset",
    "Update",
    "VerdictMap",
    "delta_text",
    "only_elements_differ",
    "patch_text",
    "plan_update",
    "render_node",
    "rule_text",
    "table_text",
]
