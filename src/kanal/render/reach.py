"""What a node's table holds follows from its roots: chains, sets and log ids they reach.

A rendered table is a graph: the base chains and every local pod's dispatch verdict (`jump
egress_<h>`, `goto ingress_<h>`) are the roots; a rule reaches the chains it jumps to (also from
an inline verdict map), the named sets it looks up (`@name`) and its log id. `render_node` keeps
only what its roots reach (`reach`), so a table never holds a chain no packet can enter, a set
no rule reads or a log id no rule writes, and two renders agree on the structure exactly when
their roots do. That is what lets the agent add and remove structure for one pod's change
(`kanal.agent.local`): what a verdict keeps in the table is the closure of that verdict, and an
item goes when no live root reaches it any more (`ReachCount`).

Rules are kept as nft text in the IR, so references are read from that text: a chain target
follows `jump` or `goto`, a set name follows `@`. Names are nft identifiers, so the patterns
are exact for what Kanal renders.

This module does not decide which roots are live (the renderer, the agent's `LocalPatcher`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kanal.render.ir import Chain
from kanal.render.names import ChainName, LogId, SetName

_TARGET = re.compile(r"\b(?:jump|goto) ([A-Za-z][A-Za-z0-9_.-]*)")
_SET = re.compile(r"@([A-Za-z][A-Za-z0-9_.-]*)")

Item = tuple[str, str]
"""("chain" | "set" | "log", name): one thing a table holds."""


@dataclass(frozen=True, slots=True)
class Refs:
    """What the rules of one chain name: chains they enter, sets they read (maps too), logs."""

    chains: tuple[ChainName, ...]
    sets: tuple[SetName, ...]
    logs: tuple[LogId, ...]


def refs(chain: Chain) -> Refs:
    targets: dict[ChainName, None] = {}
    sets: dict[SetName, None] = {}
    logs: dict[LogId, None] = {}
    for rule in chain.rules:
        targets.update((ChainName(t), None) for t in _TARGET.findall(rule.verdict))
        for text in (*rule.matches, *rule.statements, rule.verdict):
            sets.update((SetName(s), None) for s in _SET.findall(text))
        if rule.log is not None:
            logs[rule.log] = None
    return Refs(tuple(targets), tuple(sets), tuple(logs))


def verdict_target(verdict: str) -> ChainName | None:
    """The chain a dispatch verdict enters (`jump x` / `goto x`), None for `drop` or ""."""
    found = _TARGET.fullmatch(verdict.strip())
    return ChainName(found.group(1)) if found else None


@dataclass
class Reached:
    chains: set[ChainName] = field(default_factory=set)
    sets: set[SetName] = field(default_factory=set)
    logs: set[LogId] = field(default_factory=set)

    def items(self) -> list[Item]:
        return [*(("chain", c) for c in self.chains), *(("set", s) for s in self.sets),
                *(("log", entry) for entry in self.logs)]


def reach(
    roots: Iterable[ChainName], chains: Mapping[ChainName, Chain],
    *, cache: dict[ChainName, Refs] | None = None,
) -> Reached:
    """Everything `roots` reach through `chains`; KeyError names a jump to a chain that is not
    there (a broken table). `cache` keeps each chain's `refs` across calls."""
    cache = {} if cache is None else cache
    found = Reached()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in found.chains:
            continue
        found.chains.add(name)
        chain_refs = cache.get(name)
        if chain_refs is None:
            chain_refs = cache[name] = refs(chains[name])
        found.sets.update(chain_refs.sets)
        found.logs.update(chain_refs.logs)
        stack.extend(chain_refs.chains)
    return found


class ReachCount:
    """How many live roots reach each item of a table (a root is counted once however many
    pods have it: the caller counts pods per root). Chains' references are cached by name,
    which is sound while no chain of that name changes content: content-named chains never
    do, and a policy's chains change only with a policy, i.e. with a new render."""

    def __init__(self) -> None:
        self._count: Counter[Item] = Counter()
        self._cache: dict[ChainName, Refs] = {}

    def reset(self, roots: Iterable[ChainName], chains: Mapping[ChainName, Chain]) -> None:
        self._count.clear()
        self._cache.clear()
        for root in roots:
            self._count.update(reach([root], chains, cache=self._cache).items())

    def plan(
        self, gained: Iterable[ChainName], lost: Iterable[ChainName],
        chains: Mapping[ChainName, Chain],
    ) -> tuple[Counter[Item], list[Item], list[Item]]:
        """(the change of counts, items no root reached before, items no root reaches after)
        when the roots `gained` come and `lost` go; nothing changes until `commit`."""
        delta: Counter[Item] = Counter()
        for root in gained:
            delta.update(reach([root], chains, cache=self._cache).items())
        for root in lost:
            delta.subtract(reach([root], chains, cache=self._cache).items())
        added = [i for i, step in delta.items() if step > 0 and self._count[i] == 0]
        removed = [i for i, step in delta.items() if step < 0 and self._count[i] + step == 0]
        if any(self._count[i] + step < 0 for i, step in delta.items()):
            raise RuntimeError("a root was removed that was never counted")
        return delta, added, removed

    def commit(self, delta: Counter[Item]) -> None:
        self._count.update(delta)
        self._count = +self._count


__all__ = ["Item", "ReachCount", "Reached", "Refs", "reach", "refs", "verdict_target"]
