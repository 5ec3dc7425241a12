"""quarantine: what the agent does for a local pod whose stored document it cannot read.

The engine keeps the last readable version of such a pod (other nodes' sets stay stable), but
this node cannot know the pod's current labels, so it cannot know which policies isolate it.
Failing closed means denying it: each of its addresses that the raw document names is mapped to
`drop` in both dispatch maps of the rendered ruleset, replacing whatever the last readable
version would have had, and the ruleset's problems say so (status, log line, metric). A pod
whose addresses cannot be read either has no traffic to deny yet; that is said too.

The store validates every write, so this happens only with a store written by another kanal
version, or a bug; the agent re-renders whenever the set of unreadable documents changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import replace

from kanal.model.objects import Direction, IPAddress
from kanal.render import Ruleset
from kanal.render.ruleset import map_name


def quarantine(
    ruleset: Ruleset, pods: Iterable[tuple[str, str, tuple[IPAddress, ...]]], *, node: str
) -> Ruleset:
    """`ruleset` with each address of `pods` ((name, reason, addresses) of local pods whose
    documents cannot be read) mapped to `drop` in both directions, and a problem for each."""
    pods = list(pods)
    if not pods:
        return ruleset
    drops: dict[str, IPAddress] = {str(ip): ip for _, _, ips in pods for ip in ips}
    maps = []
    for vmap in ruleset.maps:
        kept = [(k, v) for k, v in vmap.elements if k not in drops]
        family = 6 if vmap.name.endswith("v6") else 4
        added = [(k, "drop") for k, ip in drops.items() if ip.version == family]
        elements = sorted(kept + added, key=lambda e: int(ipaddress.ip_address(e[0])))
        maps.append(replace(vmap, elements=tuple(elements)))
    served = {m.name for m in ruleset.maps}
    problems = [
        f"{name} on node `{node}` cannot be read ({reason}): its traffic is dropped"
        + ("" if ips else " once it has an address (none is readable now)")
        for name, reason, ips in pods
    ]
    problems += [
        f"{name}: address {ip} has no verdict map here (IPv{ip.version} is not in use): "
        "it is not denied"
        for name, _, ips in pods for ip in ips
        if map_name(Direction.INGRESS, ip.version) not in served
    ]
    return replace(ruleset, maps=tuple(maps), problems=(*ruleset.problems, *problems))


__all__ = ["quarantine"]
