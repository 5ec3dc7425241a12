"""LocalPatcher: keep a node's ruleset current for a *local* pod's change without rendering it.

Why: a local pod's label change used to re-render the node (at 10k pods / 1k policies about
200 ms, 372 ms p99 label → kernel), while most such changes move the pod between dispatch
verdicts the node already has, or keep its verdicts: only element changes reach the kernel.

A from-scratch render's structure (chains, set declarations, log entries) is what the *distinct*
dispatch verdicts of the node's local pods reach (`kanal.render.partial`): every local pod's
verdicts are rendered, with or without an address. So a change may be patched when no verdict
gains its first local pod or loses its last one:

```
record: local pod -> Dispatch (from the last render, kept up to date by every patch)
users:  (direction, verdict) -> how many local pods have it

local pod added / changed / deleted (or moved to or from this node)
  new pod local ──► pod_fragment: its new verdicts, and every chain, set and log entry they
                    need must already be in the ruleset identically
  users after == users before, as a set (no verdict appears or disappears)
  ──► SetPatcher: its addresses in selector and named-port sets (exactly as for a remote pod)
  ──► verdict maps: old addresses' entries out, new addresses' entries in (canonical order)
  anything else ──► None: render from scratch (a structural change is a table reload anyway)
```

The preconditions the agent checks first are those of the remote path (`incremental.exclusive`:
the cluster's address families stay, no address involved is shared). Besides, a ruleset with
problems is never patched: their order follows the render's order over pods, and quarantined
pods are among them. The property tests compare every patched ruleset with `render_node`.

This module does not talk to the kernel and does not decide when to render.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from kanal.engine import PolicyEngine
from kanal.model.objects import Direction, Pod, PodKey
from kanal.render import RenderOptions, Ruleset, VerdictMap, names
from kanal.render.guard import guard_elements
from kanal.render.names import SetName
from kanal.render.partial import DIRECTIONS, Dispatch, pod_fragment
from kanal.render.ruleset import map_name

from .feed import PodChange
from .incremental import SetPatcher, address_key, edited_set

Entry = tuple[str, str]
"""A verdict-map element: (address text, verdict)."""
Use = tuple[Direction, str]


def is_local(change: PodChange, node: str) -> bool:
    """Whether the pod is (or was) on `node`."""
    return any(p is not None and p.node_name == node for p in (change.old, change.new))


class LocalPatcher:
    """Patches rulesets for local pod changes that keep the node's structure (module doc)."""

    def __init__(self, node: str, options: RenderOptions, sets: SetPatcher) -> None:
        self.node = node
        self.options = options
        self._sets = sets
        self._dispatch: dict[PodKey, Dispatch] | None = None
        self._users: Counter[Use] = Counter()
        self.why_not = ""
        """Why the last `patch` returned None (for the agent's debug log and the tests)."""

    def reset(self, dispatch: dict[PodKey, Dispatch]) -> None:
        """Start from a fresh render's local verdicts (`render_with_dispatch`)."""
        self._dispatch = dict(dispatch)
        self._users = Counter(use for d in dispatch.values() for use in d.verdicts())

    def patch(
        self, ruleset: Ruleset, change: PodChange, *, engine: PolicyEngine
    ) -> tuple[Ruleset, set[SetName]] | None:
        """The ruleset after `change` (the engine already has it) and the names of the sets and
        maps that changed; None when only a render can say (`why_not` says why)."""
        found = self._plan(ruleset, change, engine)
        if isinstance(found, str):
            self.why_not = found
            return None
        before, after = found
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
        maps = _map_edits(ruleset, change, before, after)
        if maps is None:
            self.why_not = "the verdict maps do not hold the pod's old entries"
            return None
        ruleset = replace(ruleset, maps=tuple(maps[0]))
        self._commit(change, before, after)
        return ruleset, changed | maps[1]

    def _plan(
        self, ruleset: Ruleset, change: PodChange, engine: PolicyEngine
    ) -> tuple[Dispatch | None, Dispatch | None] | str:
        """The pod's verdicts before and after, or why the change cannot be patched."""
        if self._dispatch is None:
            return "no render to start from"
        if ruleset.problems:
            return "the ruleset has problems (their order follows a render)"
        old, new = (self._local(p) for p in (change.old, change.new))
        before = self._dispatch.get(old.key) if old is not None else None
        if old is not None and before is None:
            return f"no verdicts recorded for `{old.key}`"
        after = None
        if new is not None:
            fragment = pod_fragment(engine, new, node=self.node, options=self.options)
            missing = fragment.missing_from(ruleset)
            if missing:
                return f"`{new.key}` needs what the ruleset lacks: {', '.join(missing[:3])}"
            after = fragment.dispatch
        appears = self._structure_change(before, after)
        if appears:
            return appears
        return before, after

    def _local(self, pod: Pod | None) -> Pod | None:
        return pod if pod is not None and pod.node_name == self.node else None

    def _structure_change(self, before: Dispatch | None, after: Dispatch | None) -> str:
        """"" when every verdict keeps some local pod and none gains its first."""
        delta: Counter[Use] = Counter()
        delta.subtract(before.verdicts() if before else ())
        delta.update(after.verdicts() if after else ())
        for use, step in delta.items():
            count = self._users[use]
            if (count > 0) != (count + step > 0):
                what = "loses its last" if step < 0 else "gains its first"
                return f"{use[0].value.lower()} verdict `{use[1]}` {what} local pod"
        return ""

    def _commit(self, change: PodChange, before: Dispatch | None, after: Dispatch | None) -> None:
        assert self._dispatch is not None
        self._users.subtract(before.verdicts() if before else ())
        self._users.update(after.verdicts() if after else ())
        self._users = +self._users
        if before is not None and change.old is not None:
            del self._dispatch[change.old.key]
        if after is not None and change.new is not None:
            self._dispatch[change.new.key] = after


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
