"""LocalPatcher: keep a node's ruleset current for a *local* pod's change without rendering it.

Why: a local pod's label change used to re-render the node (at 10k pods / 1k policies about
200 ms, 372 ms p99 label → kernel). A render's structure (chains, set declarations, log
entries) is what the dispatch verdicts of the node's local pods reach (`kanal.render.reach`):
every local pod's verdicts are rendered, with or without an address, and the renderer keeps only
what its roots reach. So one pod's change is the difference of what its old and new verdicts
keep in the table, whether or not the structure changes:

```
record: local pod -> Dispatch (from the last render, kept up to date by every patch)
users:  (direction, verdict) -> how many local pods have it
reach:  chain, set, log id -> how many live verdicts (and base chains) reach it

local pod added / changed / deleted (or moved to or from this node)
  new pod local ──► pod_fragment: its new verdicts and what they reach (chains, sets, log
                    entries); same-named chains and log entries must equal the ruleset's
  verdicts gaining their first local pod / losing their last ──► ReachCount.plan:
      items no live root reached before: added (chains and log entries from the fragment,
      sets materialised from the engine, only those);  items no root reaches after: removed
  ──► SetPatcher: its addresses in selector and named-port sets (exactly as for a remote pod)
  ──► local pod sets (the pod guard), verdict maps: old entries out, new entries in
  ──► restructured: chains, sets and log entries out and in, where a render puts them
  anything else ──► None: render from scratch
```

The preconditions the agent checks first are those of the remote path (`incremental.exclusive`:
the cluster's address families stay, no address involved is shared). Besides, a ruleset with
problems is never patched (their order follows the render's order over pods, and quarantined
pods are among them), and neither is a change whose fragment has problems. The property tests
compare every patched ruleset with `render_node`; `kanal.render.patch_text` writes the kernel
transaction.

This module does not talk to the kernel and does not decide when to render.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kanal.engine import PolicyEngine
from kanal.model.objects import Direction, Pod, PodKey
from kanal.render import Chain, LogEntry, NamedSet, RenderOptions, Ruleset, VerdictMap, names
from kanal.render.guard import guard_elements
from kanal.render.names import ChainName, SetName
from kanal.render.partial import DIRECTIONS, Dispatch, PodFragment, pod_fragment, restructured
from kanal.render.reach import Item, ReachCount, verdict_target
from kanal.render.ruleset import map_name
from kanal.render.sets import port_name_index

from .feed import PodChange
from .incremental import SetPatcher, address_key, edited_set

Entry = tuple[str, str]
"""A verdict-map element: (address text, verdict)."""
Use = tuple[Direction, str]


def is_local(change: PodChange, node: str) -> bool:
    """Whether the pod is (or was) on `node`."""
    return any(p is not None and p.node_name == node for p in (change.old, change.new))


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a patch does, computed before anything is changed."""

    before: Dispatch | None
    after: Dispatch | None
    gained: tuple[Use, ...]
    lost: tuple[Use, ...]
    counts: Counter[Item]
    chains: tuple[Chain, ...] = ()
    sets: tuple[NamedSet, ...] = ()
    log: tuple[LogEntry, ...] = ()
    removed: tuple[Item, ...] = ()

    @property
    def structural(self) -> bool:
        return bool(self.chains or self.sets or self.log or self.removed)


class LocalPatcher:
    """Patches rulesets for local pod changes (see the module docstring)."""

    def __init__(self, node: str, options: RenderOptions, sets: SetPatcher) -> None:
        self.node = node
        self.options = options
        self._sets = sets
        self._dispatch: dict[PodKey, Dispatch] | None = None
        self._users: Counter[Use] = Counter()
        self._reach = ReachCount()
        self._declaring: dict[str, dict[PodKey, Pod]] | None = None
        """Port name -> pods declaring it, cluster-wide: built from the engine at the first
        render of it, then kept by `observe` (a pass over every pod takes longer than the rest
        of a patch); `_indexed` is the engine it describes."""
        self._indexed: PolicyEngine | None = None
        self.why_not = ""
        """Why the last `patch` returned None (for the agent's debug log and the tests)."""
        self.structural = False
        """Whether the last successful `patch` added or removed chains, sets or log entries."""

    def reset(
        self, ruleset: Ruleset, dispatch: dict[PodKey, Dispatch], *, engine: PolicyEngine
    ) -> None:
        """Start from a fresh render of `engine` and its local verdicts
        (`render_with_dispatch`)."""
        self._dispatch = dict(dispatch)
        self._users = Counter(use for d in dispatch.values() for use in d.verdicts())
        roots = [c.name for c in ruleset.chains if c.hook is not None]
        roots += [t for _, v in self._users if (t := verdict_target(v))]
        self._reach.reset(roots, {c.name: c for c in ruleset.chains})
        if self._indexed is not engine:  # a new engine (the agent's first, or rebuilt)
            self._declaring, self._indexed = port_name_index(engine.pods()), engine

    def observe(self, old: Pod | None, new: Pod | None) -> None:
        """Every pod change the engine takes, local or not (keeps the port name index)."""
        if self._declaring is None:
            return
        if old is not None:
            for name in {p.name for p in old.ports if p.name}:
                self._declaring.get(name, {}).pop(old.key, None)
        if new is not None:
            for name in {p.name for p in new.ports if p.name}:
                self._declaring.setdefault(name, {})[new.key] = new

    def patch(
        self, ruleset: Ruleset, change: PodChange, *, engine: PolicyEngine
    ) -> tuple[Ruleset, set[SetName]] | None:
        """The ruleset after `change` (the engine already has it) and the names of the sets and
        maps whose elements changed; None when only a render can say (`why_not` says why)."""
        plan = self._plan(ruleset, change, engine)
        if isinstance(plan, str):
            self.why_not = plan
            return None
        patched = self._sets.patch(ruleset, change)
        if patched is None:
            self.why_not = "the sets do not hold the pod's old entries"
            return None
        ruleset, changed = patched
        if self.options.pod_interfaces is not None:
            guarded = _guard_edits(ruleset, change, node=self.node)
            if guarded is None:
                self.why_not = "the local pod sets do not hold the pod's old addresses"
                return None
            ruleset, changed = guarded[0], changed | guarded[1]
        maps = _map_edits(ruleset, change, plan.before, plan.after)
        if maps is None:
            self.why_not = "the verdict maps do not hold the pod's old entries"
            return None
        ruleset = replace(ruleset, maps=tuple(maps[0]))
        if plan.structural:
            ruleset = restructured(ruleset, chains=plan.chains, sets=plan.sets, log=plan.log,
                                   removed=plan.removed)
        self._commit(change, plan)
        structure = {SetName(n) for kind, n in plan.removed if kind == "set"}
        structure |= {s.name for s in plan.sets}  # a set gone and back: its elements may differ
        return ruleset, changed | maps[1] | structure

    def _plan(self, ruleset: Ruleset, change: PodChange, engine: PolicyEngine) -> _Plan | str:
        """What the change does to the pod's verdicts and the structure, or why it cannot be
        patched."""
        if self._dispatch is None:
            return "no render to start from"
        if ruleset.problems:
            return "the ruleset has problems (their order follows a render)"
        old, new = (self._local(p) for p in (change.old, change.new))
        before = self._dispatch.get(old.key) if old is not None else None
        if old is not None and before is None:
            return f"no verdicts recorded for `{old.key}`"
        fragment = None
        if new is not None:
            fragment = pod_fragment(engine, new, node=self.node, options=self.options)
        after = fragment.dispatch if fragment is not None else None
        gained, lost = self._use_changes(before, after)
        if new is not None and fragment is not None:
            # verdicts kept: everything they reach is there; else only what is there is checked
            wrong = fragment.conflicts(ruleset) if gained or lost else fragment.missing_from(
                ruleset)
            if wrong:
                return f"`{new.key}` does not fit the ruleset: {', '.join(wrong[:3])}"
        plan = self._structure(ruleset, fragment, gained=gained, lost=lost, engine=engine)
        if isinstance(plan, str):
            return plan
        return replace(plan, before=before, after=after)

    def _local(self, pod: Pod | None) -> Pod | None:
        return pod if pod is not None and pod.node_name == self.node else None

    def _use_changes(
        self, before: Dispatch | None, after: Dispatch | None
    ) -> tuple[tuple[Use, ...], tuple[Use, ...]]:
        """The verdicts that gain their first local pod, and those that lose their last."""
        delta: Counter[Use] = Counter()
        delta.subtract(before.verdicts() if before else ())
        delta.update(after.verdicts() if after else ())
        gained = tuple(u for u, step in delta.items() if step > 0 and self._users[u] == 0)
        lost = tuple(u for u, step in delta.items() if step < 0 and self._users[u] + step == 0)
        return gained, lost

    def _structure(
        self, ruleset: Ruleset, fragment: PodFragment | None, *, gained: tuple[Use, ...],
        lost: tuple[Use, ...], engine: PolicyEngine,
    ) -> _Plan | str:
        """The items that come (from the fragment) and go with the verdicts gained and lost."""
        empty = _Plan(None, None, gained, lost, Counter())
        if not gained and not lost:
            return empty
        chains = {c.name: c for c in ruleset.chains}
        known = set(chains)
        chains.update((c.name, c) for c in (fragment.chains if fragment else ()))
        counts, came, removed = self._reach.plan(_targets(gained), _targets(lost), chains)
        added = set(came)
        new_chains = [chains[ChainName(n)] for kind, n in added if kind == "chain"]
        if any(c.name in known for c in new_chains):
            return "a chain no verdict reached is still in the ruleset"
        new_sets = sorted(SetName(n) for kind, n in added if kind == "set")
        materialised: tuple[NamedSet, ...] = ()
        if fragment and new_sets:
            declaring = self._declaring if self._indexed is engine else None
            materialised = fragment.sets(engine, new_sets, declaring=declaring)
        new_log = [e for e in (fragment.log if fragment else ()) if ("log", e.id) in added]
        if len(materialised) != len(new_sets) or len(new_log) != sum(
                1 for kind, _ in added if kind == "log"):
            return "the pod's fragment does not hold every set and log entry it reaches"
        return replace(empty, counts=counts, chains=tuple(new_chains),
                       sets=tuple(materialised), log=tuple(new_log), removed=tuple(removed))

    def _commit(self, change: PodChange, plan: _Plan) -> None:
        assert self._dispatch is not None
        self._users.subtract(plan.before.verdicts() if plan.before else ())
        self._users.update(plan.after.verdicts() if plan.after else ())
        self._users = +self._users
        self._reach.commit(plan.counts)
        self.structural = plan.structural
        if plan.before is not None and change.old is not None:
            del self._dispatch[change.old.key]
        if plan.after is not None and change.new is not None:
            self._dispatch[change.new.key] = plan.after


def _targets(uses: Iterable[Use]) -> list[ChainName]:
    return [t for _, verdict in uses if (t := verdict_target(verdict))]


def _guard_edits(
    ruleset: Ruleset, change: PodChange, *, node: str
) -> tuple[Ruleset, set[SetName]] | None:
    """The local pod sets (`kanal.render.guard`) without the pod's old local addresses and with
    its new ones; None if a set is missing or does not hold what it must."""
    sets = list(ruleset.sets)
    position = {s.name: i for i, s in enumerate(sets)}
    old, new = (p if p is not None and p.node_name == node else None
                for p in (change.old, change.new))
    changed: set[SetName] = set()
    for family in ruleset.families:
        name = names.local_pods_set(family)
        if name not in position:
            return None
        before = sets[position[name]]
        after = edited_set(before, list(guard_elements([old] if old else [], family)),
                           list(guard_elements([new] if new else [], family)), address_key)
        if after is None:
            return None
        if after is not before:
            sets[position[name]] = after
            changed.add(name)
    return replace(ruleset, sets=tuple(sets)), changed


def _map_edits(
    ruleset: Ruleset, change: PodChange, before: Dispatch | None, after: Dispatch | None
) -> tuple[list[VerdictMap], set[SetName]] | None:
    """The maps with the pod's old entries replaced by its new ones, and the changed names."""
    maps = list(ruleset.maps)
    position = {m.name: i for i, m in enumerate(maps)}
    changed: set[SetName] = set()
    for direction in DIRECTIONS:
        for family in ruleset.families:
            gone = _entries(change.old, before, direction, family)
            came = _entries(change.new, after, direction, family)
            if not gone and not came:
                continue
            name = map_name(direction, family)
            if name not in position:
                return None
            edited = _edited(maps[position[name]], gone, came)
            if edited is None:
                return None
            if edited is not maps[position[name]]:
                maps[position[name]] = edited
                changed.add(name)
    return maps, changed


def _entries(
    pod: Pod | None, dispatch: Dispatch | None, direction: Direction, family: int
) -> list[Entry]:
    if pod is None or dispatch is None or not (verdict := dispatch.of(direction)):
        return []
    return [(str(ip), verdict) for ip in pod.ips if ip.version == family]


def _key(entry: Entry) -> int:
    return int(ipaddress.ip_address(entry[0]))


def _edited(vmap: VerdictMap, gone: Iterable[Entry], came: Iterable[Entry]) -> VerdictMap | None:
    """`vmap` without `gone` and with `came`, addresses in order (as the renderer sorts them);
    None if an entry of `gone` is not there or an address of `came` is (after the removals)."""
    gone_set, came_set = set(gone), set(came)
    common = gone_set & came_set
    if gone_set == came_set:
        return vmap
    elements = list(vmap.elements)
    for entry in sorted(gone_set - common, key=_key):
        i = bisect_left(elements, _key(entry), key=_key)
        if i == len(elements) or elements[i] != entry:
            return None
        del elements[i]
    for entry in sorted(came_set - common, key=_key):
        i = bisect_left(elements, _key(entry), key=_key)
        if i < len(elements) and _key(elements[i]) == _key(entry):
            return None
        elements.insert(i, entry)
    return replace(vmap, elements=tuple(elements))


__all__ = ["LocalPatcher", "is_local"]
