"""One local pod's share of a node's render: its dispatch verdicts and what they need.

Why: the agent keeps a node's ruleset current for a *local* pod's change without rendering the
node again (at 10k pods and 1k policies a render is about 150 ms, most of it materialising every
set). A render's structure (chains, set declarations, log entries) is what the distinct dispatch
verdicts of the node's local pods reach (`kanal.render.reach`): a verdict names a
content-addressed dispatch chain, and that chain, the chains it calls and the sets they read
follow from its name. So one pod's verdicts, and the chains, sets and log entries behind them,
can be rendered alone:

```
render_with_dispatch(engine, node)  render_node's ruleset + each local pod's Dispatch (the
                                    verdicts that render computed; no extra work)
pod_fragment(engine, pod, node=)    a fresh renderer asked for this pod only: its Dispatch and
                                    every chain, set name and log entry its verdicts reach, and
                                    the problems met on the way
fragment.missing_from(ruleset)      what the fragment needs that the ruleset does not hold
                                    identically (empty: its verdicts can be patched in)
fragment.conflicts(ruleset)         what both hold under one name with different content
fragment.sets(engine, names)        the fragment's sets of those names, elements included
restructured(ruleset, chains=…)     chains, sets and log entries added and removed, each where
                                    a from-scratch render puts it
```

The renderer (`_NodeRenderer`) is used through a narrow surface: construct it, `render()`,
`_dispatch_verdict(pod, direction)`, `chains()`, `reached(roots)`, and read `log`, `problems`
and `catalog`. Every chain it produced is opaque here: a name and its content, compared with the
ruleset's chain of the same name by equality, so new kinds of chains inside the renderer need
no change here.

This module does not decide whether a change may be patched or what comes and goes, and does
not touch the verdict maps: `kanal.agent.local` does that.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from kanal.engine import PolicyEngine
from kanal.model.objects import Direction, Pod, PodKey
from kanal.render import names
from kanal.render.ir import Chain, LogEntry, NamedSet, Ruleset
from kanal.render.names import SetName
from kanal.render.reach import Item, verdict_target
from kanal.render.ruleset import RenderOptions, _NodeRenderer
from kanal.render.sets import PortNames, SetCatalog

DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A local pod's verdict-map verdicts (`jump`/`goto` a dispatch chain; "" = no entry)."""

    egress: str
    ingress: str

    def of(self, direction: Direction) -> str:
        return self.egress if direction is Direction.EGRESS else self.ingress

    def verdicts(self) -> tuple[tuple[Direction, str], ...]:
        """The non-empty verdicts by direction: what the pod makes the node render."""
        return tuple((d, v) for d in DIRECTIONS if (v := self.of(d)))


def _dispatch(renderer: _NodeRenderer, pod: Pod) -> Dispatch:
    return Dispatch(*(renderer._dispatch_verdict(pod, d) for d in DIRECTIONS))


def render_with_dispatch(
    engine: PolicyEngine, node: str, options: RenderOptions | None = None
) -> tuple[Ruleset, dict[PodKey, Dispatch]]:
    """`render_node(engine, node, options)`, and every local pod's verdicts in that render
    (asked again after `render()`, when the renderer has every answer at hand)."""
    renderer = _NodeRenderer(engine, node, options or RenderOptions())
    ruleset = renderer.render()
    dispatch = {
        pod.key: _dispatch(renderer, pod)
        for pod in engine.pods().values()
        if pod.node_name == node
    }
    return ruleset, dispatch


@dataclass(frozen=True, slots=True)
class PodFragment:
    """What one pod's verdicts make a render hold (what they reach, `kanal.render.reach`):
    chains (opaque), set names, log entries, and the problems met on the way; `catalog`
    materialises its sets."""

    dispatch: Dispatch
    chains: tuple[Chain, ...]
    set_names: tuple[SetName, ...]
    log: tuple[LogEntry, ...]
    problems: tuple[str, ...]
    catalog: SetCatalog = field(compare=False, repr=False, default_factory=SetCatalog)

    def sets(
        self, engine: PolicyEngine, names: Collection[SetName], *,
        declaring: PortNames | None = None,
    ) -> tuple[NamedSet, ...]:
        """The fragment's sets named in `names`, with the engine's current elements
        (`declaring`: the pods declaring each port name, if the caller keeps them)."""
        return self.catalog.materialize(engine, only=names, declaring=declaring)

    def conflicts(self, ruleset: Ruleset) -> list[str]:
        """What this fragment holds that `ruleset` holds otherwise under the same name, in
        words, and its problems (empty: whatever the ruleset lacks can simply be added)."""
        chains = {c.name: c for c in ruleset.chains}
        log = {e.id: e for e in ruleset.log}
        found = [f"chain {c.name}" for c in self.chains if chains.get(c.name, c) != c]
        found += [f"log entry {e.id}" for e in self.log if log.get(e.id, e) != e]
        found += [f"problem: {p}" for p in self.problems]
        return found

    def missing_from(self, ruleset: Ruleset) -> list[str]:
        """What this fragment needs that `ruleset` does not hold identically, in words (empty:
        the pod's verdicts point at nothing new). Set names are content-derived, so a set of
        that name is that set; its elements are not compared (they change with pods)."""
        chains = {c.name: c for c in ruleset.chains}
        sets = {s.name for s in ruleset.sets}
        log = set(ruleset.log)
        missing = [f"chain {c.name}" for c in self.chains if chains.get(c.name) != c]
        missing += [f"set {name}" for name in self.set_names if name not in sets]
        missing += [f"log entry {e.id}" for e in self.log if e not in log]
        missing += [f"problem: {p}" for p in self.problems]
        return missing


def pod_fragment(
    engine: PolicyEngine, pod: Pod, *, node: str, options: RenderOptions | None = None
) -> PodFragment:
    """`pod`'s verdicts on `node` and everything a render of `node` holds because of them,
    computed by a renderer that renders nothing else (a few policy chains, no set elements)."""
    renderer = _NodeRenderer(engine, node, options or RenderOptions())
    dispatch = _dispatch(renderer, pod)
    kept = renderer.reached(t for _, v in dispatch.verdicts() if (t := verdict_target(v)))
    return PodFragment(
        dispatch,
        chains=tuple(c for name, c in renderer.chains().items() if name in kept.chains),
        set_names=tuple(n for n in renderer.catalog.names() if n in kept.sets),
        log=tuple(e for i, e in renderer.log.items() if i in kept.logs),
        problems=tuple(dict.fromkeys(renderer.problems)),
        catalog=renderer.catalog,
    )


def restructured(
    ruleset: Ruleset, *, chains: Sequence[Chain] = (), sets: Sequence[NamedSet] = (),
    log: Sequence[LogEntry] = (), removed: Collection[Item] = (),
) -> Ruleset:
    """`ruleset` with the `removed` items gone and `chains`, `sets` and `log` entries added,
    each where a from-scratch render puts it (base chains first, then `names.chain_order`;
    sets by name; log entries by id). The caller says what comes and goes (`ReachCount`)."""
    gone = {name for _, name in removed}
    base = [c for c in ruleset.chains if c.hook is not None]
    rest = [c for c in ruleset.chains if c.hook is None and c.name not in gone]
    for chain in chains:
        insort(rest, chain, key=lambda c: names.chain_order(c.name))
    kept_sets = [s for s in ruleset.sets if s.name not in gone]
    for named in sets:
        insort(kept_sets, named, key=lambda s: s.name)
    entries = [e for e in ruleset.log if e.id not in gone]
    for entry in log:
        insort(entries, entry, key=lambda e: e.id)
    return replace(ruleset, chains=(*base, *rest), sets=tuple(kept_sets), log=tuple(entries))


__all__ = ["Dispatch", "PodFragment", "pod_fragment", "render_with_dispatch", "restructured"]
