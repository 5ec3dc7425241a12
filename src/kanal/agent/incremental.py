"""SetPatcher: keep a node's ruleset current for a *remote* pod's change without rendering again.

Why: `render_node` recomputes every set of the node (at 10k pods and 1k policies, 67 sets with
28k elements: about 120 ms), while a pod on another node changes only its own entries in the
sets that match it, about a millisecond of work. Remote pod changes are the common case: a pod
is local to one node and a peer on every other one.

What may change when a remote pod is added, relabelled, readdressed or deleted:

```
rules, chains, set declarations, verdict maps   no: they depend on policies and *local* pods only
                                                (and on the address families in use, and on the
                                                numbers port names have: both checked)
selector set S, family f     the pod's f-addresses leave S if its old group matched S's selector,
                             and join it if its new group does
named-port set (name, f)     the pod's `address . proto . port` entries for that port name
range and port-list sets     no: named after their fixed content
node sets                    no: they change with Node objects (not handled here)
```

`patch` applies exactly that to the sets of the given ruleset, keeping each set's canonical
element order (what `render_node` produces), and returns None when its assumptions do not hold
(an element it must remove is missing, or one it must add is present): the agent then renders
from scratch. `eligible` says when a change may be patched at all: neither the old nor the new
pod is local, no address involved is shared with another pod, and the set of address families
in the cluster stays the same. The property tests compare every patched ruleset with a fresh
`render_node` of the same engine state.

This module does not talk to the kernel; the delta text comes from `kanal.render.delta_text`.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from kanal.engine.selectors import EndpointSelector
from kanal.model.objects import IPAddress, Pod, Protocol
from kanal.render import NamedSet, Ruleset
from kanal.render import names as set_names
from kanal.render.names import SetName
from kanal.render.sets import PROTOCOLS

from .feed import PodChange

FAMILIES = (4, 6)
Key = Callable[[str], Any]
"""An element's sort key, as the renderer orders the set (see `kanal.render.sets`)."""


class AddressBook:
    """How many pods claim each address, and how many pods have an IPv6 address (the renderer
    adds the IPv6 sets and maps when the first one appears); and how many declare each named
    port number: egress port classes hold every number a name has in the cluster
    (`kanal.render.network`), so a number's first or last pod changes the table's structure."""

    def __init__(self) -> None:
        self._owners: Counter[IPAddress] = Counter()
        self.v6_pods = 0
        self._named: Counter[tuple[str, Protocol, int]] = Counter()
        self.named_numbers_changed = False
        """Whether the last `update` gave a port name a number no pod had, or took one's last."""

    def families(self) -> tuple[int, ...]:
        return (4, 6) if self.v6_pods else (4,)

    def update(self, old: Pod | None, new: Pod | None) -> None:
        touched = {n for pod in (old, new) if pod is not None for n in _named_numbers(pod)}
        before = {n for n in touched if self._named[n] > 0}
        for pod, step in ((old, -1), (new, 1)):
            if pod is None:
                continue
            for ip in pod.ips:
                self._owners[ip] += step
                if self._owners[ip] <= 0:
                    del self._owners[ip]
            if any(ip.version == 6 for ip in pod.ips):
                self.v6_pods += step
            for number in _named_numbers(pod):
                self._named[number] += step
                if self._named[number] <= 0:
                    del self._named[number]
        self.named_numbers_changed = before != {n for n in touched if self._named[n] > 0}

    def shared(self, ips: Iterable[IPAddress]) -> bool:
        """Whether another pod claims one of `ips` too (call after `update`)."""
        return any(self._owners[ip] > 1 for ip in ips)

    def still_claimed(self, ips: Iterable[IPAddress]) -> bool:
        return any(self._owners[ip] > 0 for ip in ips)

    def clear(self) -> None:
        self._owners.clear()
        self.v6_pods = 0
        self._named.clear()
        self.named_numbers_changed = False


def _named_numbers(pod: Pod) -> set[tuple[str, Protocol, int]]:
    return {(p.name, p.protocol, p.port) for p in pod.ports if p.name}


def eligible(
    change: PodChange, *, node: str, book: AddressBook, families_before: tuple[int, ...]
) -> bool:
    """Whether `patch` may handle `change` (`book` already updated with it)."""
    if any(p is not None and p.node_name == node for p in (change.old, change.new)):
        return False
    return exclusive(change, book=book, families_before=families_before)


def exclusive(change: PodChange, *, book: AddressBook, families_before: tuple[int, ...]) -> bool:
    """Whether a pod change may be patched at all, local or remote: the cluster's address
    families stay, no port name gains or loses a number, and no address the pod had or has is
    claimed by another pod (`book` already updated with the change)."""
    old, new = change.old, change.new
    if book.families() != families_before or book.named_numbers_changed:
        return False
    old_ips = old.ips if old is not None else ()
    new_ips = new.ips if new is not None else ()
    gone = [ip for ip in old_ips if ip not in new_ips]
    return not book.shared(new_ips) and not book.still_claimed(gone)


def address_key(element: str) -> int:
    return int(ipaddress.ip_address(element))


def _named_port_key(element: str) -> tuple[int, str, int]:
    ip, proto, port = element.split(" . ")
    return int(ipaddress.ip_address(ip)), proto, int(port)


class SetPatcher:
    """Patches rulesets for eligible remote pod changes (see the module docstring)."""

    def __init__(self) -> None:
        self._selector_names: dict[tuple[EndpointSelector, int], SetName] = {}

    def patch(self, ruleset: Ruleset, change: PodChange) -> tuple[Ruleset, set[SetName]] | None:
        """The ruleset after `change`, and the names of the sets that changed; None when the
        ruleset does not look as the change's "before" must (render it again instead)."""
        position = {s.name: i for i, s in enumerate(ruleset.sets)}
        edits: dict[SetName, tuple[Key, list[str], list[str]]] = {}
        for name, gone, came in self._selector_edits(change, position):
            edits.setdefault(name, (address_key, [], []))
            edits[name][1].extend(gone)
            edits[name][2].extend(came)
        for name, gone, came in _named_port_edits(change, position):
            edits[name] = (_named_port_key, gone, came)
        sets = list(ruleset.sets)
        changed: set[SetName] = set()
        for name, (key, gone, came) in edits.items():
            before = sets[position[name]]
            after = edited_set(before, gone, came, key)
            if after is None:
                return None
            if after.elements != before.elements:
                sets[position[name]] = after
                changed.add(name)
        return replace(ruleset, sets=tuple(sets)), changed

    def _selector_edits(
        self, change: PodChange, position: dict[SetName, int]
    ) -> Iterable[tuple[SetName, list[str], list[str]]]:
        for selector in change.selectors_before | change.selectors_after:
            for family in FAMILIES:
                name = self._selector_set(selector, family)
                if name not in position:
                    continue
                gone = _ips(change.old, family) if selector in change.selectors_before else []
                came = _ips(change.new, family) if selector in change.selectors_after else []
                yield name, gone, came

    def _selector_set(self, selector: EndpointSelector, family: int) -> SetName:
        key = (selector, family)
        name = self._selector_names.get(key)
        if name is None:
            name = self._selector_names[key] = set_names.selector_set(selector.describe(), family)
        return name


def _ips(pod: Pod | None, family: int) -> list[str]:
    if pod is None:
        return []
    return [str(ip) for ip in pod.ips if ip.version == family]


def _named_port_edits(
    change: PodChange, position: dict[SetName, int]
) -> Iterable[tuple[SetName, list[str], list[str]]]:
    port_names = {p.name for pod in (change.old, change.new) if pod for p in pod.ports if p.name}
    for port_name in sorted(port_names):
        for family in FAMILIES:
            name = set_names.named_port_set(port_name, family)
            if name in position:
                gone = _port_entries(change.old, port_name, family)
                yield name, gone, _port_entries(change.new, port_name, family)


def _port_entries(pod: Pod | None, port_name: str, family: int) -> list[str]:
    """The pod's elements in the named-port set, as `ElementSource` writes them."""
    if pod is None:
        return []
    found = []
    for proto, proto_text in PROTOCOLS.items():
        number = pod.named_port(port_name, proto)
        if number is not None:
            found += [f"{ip} . {proto_text} . {number}" for ip in pod.ips if ip.version == family]
    return found


def edited_set(
    named: NamedSet, gone: list[str], came: list[str], key: Key
) -> NamedSet | None:
    """`named` without `gone` and with `came`, in canonical order; None if `gone` is not all
    there or `came` is there already (after the removals)."""
    common = set(gone) & set(came)
    gone = [e for e in dict.fromkeys(gone) if e not in common]
    came = [e for e in dict.fromkeys(came) if e not in common]
    if not gone and not came:
        return named
    elements = list(named.elements)
    for element in gone:
        i = bisect_left(elements, key(element), key=key)
        if i == len(elements) or elements[i] != element:
            return None
        del elements[i]
    for element in came:
        i = bisect_left(elements, key(element), key=key)
        if i < len(elements) and elements[i] == element:
            return None
        elements.insert(i, element)
    return replace(named, elements=tuple(elements))


__all__ = ["AddressBook", "SetPatcher", "address_key", "edited_set", "eligible", "exclusive"]
