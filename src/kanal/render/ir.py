"""The nftables IR: what one node's `table inet kanal` must contain, as plain frozen data.

The IR sits between the engine (which knows policies and pods) and the text (which knows nft's
syntax). It is deterministic (sorted, content-named) so two renders of the same state compare
equal, and it separates *structure* (sets' and maps' declarations, chains and rules) from
*elements* (set members and verdict-map entries), because only structural changes need a whole
table reload: membership changes are element deltas (see `kanal.render.nfttext`).

Rule matches and verdicts are kept as nft expression text: the IR does not model nft's grammar,
only the parts Kanal needs to diff, count and explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from kanal.engine import Outcome, Tier
from kanal.model.objects import Direction, PolicyKey
from kanal.render.names import ChainName, LogId, SetName


@dataclass(frozen=True, slots=True)
class NamedSet:
    """A named set; `elements` are nft element text in a canonical order (addresses by value)."""

    name: SetName
    key_type: str
    interval: bool = False
    comment: str = ""
    elements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VerdictMap:
    """A verdict map `key : verdict` (pod address -> `jump`/`goto` its dispatch chain)."""

    name: SetName
    key_type: str
    elements: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Hook:
    """What makes a chain a base chain."""

    hook: str
    priority: str
    kind: str = "filter"
    policy: str = "accept"


@dataclass(frozen=True, slots=True)
class Rule:
    """`matches` (ANDed) then `statements` then `verdict`. `log` names the decision this rule
    ends with; it becomes an NFLOG statement only when the ruleset has a log group."""

    matches: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    verdict: str = ""
    log: LogId | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Chain:
    name: ChainName
    rules: tuple[Rule, ...] = ()
    hook: Hook | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What an NFLOG prefix means: the decision of one direction, as the engine's `Step` says it
    (`fail_closed`: a rule that could not be rendered and drops instead)."""

    id: LogId
    direction: Direction
    outcome: Outcome
    tier: Tier | None = None
    policy: PolicyKey | None = None
    rule_index: int | None = None
    rule_name: str = ""
    isolating: tuple[PolicyKey, ...] = ()
    fail_closed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction.value,
            "outcome": self.outcome.value,
            "tier": self.tier.value if self.tier else None,
            "policy": self.policy,
            "rule": self.rule_index,
            "rule_name": self.rule_name,
            "isolated_by": list(self.isolating),
            "fail_closed": self.fail_closed,
        }


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Everything one node's table holds, plus what the renderer could not express."""

    node: str
    families: tuple[int, ...]
    sets: tuple[NamedSet, ...]
    maps: tuple[VerdictMap, ...]
    chains: tuple[Chain, ...]
    log: tuple[LogEntry, ...] = ()
    log_group: int | None = None
    problems: tuple[str, ...] = field(default=())
    table: str = "kanal"
    family: str = "inet"

    def skeleton(self) -> Ruleset:
        """This ruleset without elements or problems: equal skeletons mean a delta suffices."""
        return replace(
            self,
            sets=tuple(replace(s, elements=()) for s in self.sets),
            maps=tuple(replace(m, elements=()) for m in self.maps),
            problems=(),
        )

    def log_table(self) -> dict[LogId, LogEntry]:
        return {entry.id: entry for entry in self.log}

    def to_json(self) -> dict[str, Any]:
        """What the rest of Kanal reads besides the nft text: sizes (`kanal lab status`), the
        NFLOG id table (the flow collector) and the problems (never silently dropped)."""
        return {
            "node": self.node,
            "families": list(self.families),
            "stats": self.stats(),
            "log_group": self.log_group,
            "log": [entry.to_json() for entry in self.log],
            "problems": list(self.problems),
        }

    def stats(self) -> dict[str, int]:
        """Sizes for `kanal lab status` and the benchmark: what grows with what."""
        return {
            "chains": len(self.chains),
            "rules": sum(len(c.rules) for c in self.chains),
            "sets": len(self.sets),
            "set_elements": sum(len(s.elements) for s in self.sets),
            "map_elements": sum(len(m.elements) for m in self.maps),
        }
