"""The pod guard: traffic of a pod interface whose address is not a known local pod is dropped.

Why: a pod is wired (veth up, routes) by its runtime, and its node's agent learns it from the
datastore; in between, or for a pod the agent never learns, the dispatch maps have no entry for
its address and the forward chain's policy accepts: the pod would be unpoliced. With
`RenderOptions.pod_interfaces` set to the name prefix of the host side of pod veths (Calico's
`cali`, the lab's `k`), a base chain ahead of the policy decides first:

```
hook forward priority filter - 5   chain pod_guard
  iifname "<prefix>*" ip saddr != @local_pods_v4 drop      from a pod the agent does not know
  oifname "<prefix>*" ip daddr != @local_pods_v4 drop      to a pod the agent does not know
  the same for ip6 and @local_pods_v6 when IPv6 is in use; else every IPv6 packet of a pod
  interface is dropped (no pod may have an IPv6 address the agent does not know about)
  (policy accept: then `forward` decides, with the pod's dispatch verdicts)
set local_pods_v4 / _v6   every local pod's address (elements: a pod added or removed is an
                          element delta, kept by `kanal.agent.local` as a render would)
```

Fail closed, not open: a pod is only reachable once its address is in the node's table, so
`kanal lab` wires a pod only after every agent has applied the store revision that names it.
Established connections are dropped too once the pod is gone (the guard runs before `ct state`).
The guard does not log (no engine decision names it) and does not look at other interfaces
(the underlay, VXLAN): traffic from remote pods is policed at their own node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kanal.model.objects import Pod
from kanal.render import names
from kanal.render.ir import Chain, Hook, NamedSet, Rule
from kanal.render.matches import FAMILY_KEYWORD
from kanal.render.names import ChainName
from kanal.render.sets import ADDRESS_TYPE

GUARD_CHAIN = ChainName("pod_guard")
GUARD_PRIORITY = "filter - 5"
"""Before the policy chain (`filter`), so an unknown pod's packets never reach a dispatch map."""

_INTERFACE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,14}")


def check_prefix(prefix: str) -> None:
    """ValueError unless `prefix` can start an interface name (at most 14 characters, so that
    a name with it is still possible; letters, digits, `_`, `.`, `-`)."""
    if not _INTERFACE_PREFIX.fullmatch(prefix):
        raise ValueError(
            f"pod interface prefix `{prefix}` must be 1-14 letters, digits, `_`, `.` or `-`"
        )


def guard_chain(prefix: str, families: tuple[int, ...]) -> Chain:
    rules: list[Rule] = []
    for family in (4, 6):
        if family in families:
            keyword, name = FAMILY_KEYWORD[family], names.local_pods_set(family)
            rules += [
                Rule((f'iifname "{prefix}*"', f"{keyword} saddr != @{name}"), verdict="drop"),
                Rule((f'oifname "{prefix}*"', f"{keyword} daddr != @{name}"), verdict="drop"),
            ]
        else:
            rules += [
                Rule((f'{side} "{prefix}*"', "meta nfproto ipv6"), verdict="drop")
                for side in ("iifname", "oifname")
            ]
    return Chain(GUARD_CHAIN, tuple(rules), Hook("forward", GUARD_PRIORITY),
                 comment="pod interfaces: only addresses of pods this node knows")


def guard_sets(local: Iterable[Pod], families: tuple[int, ...]) -> list[NamedSet]:
    """One set per family in use with every address of the node's pods `local`."""
    pods = list(local)
    return [
        NamedSet(names.local_pods_set(family), ADDRESS_TYPE[family], comment="local pods",
                 elements=guard_elements(pods, family))
        for family in families
    ]


def guard_elements(pods: Iterable[Pod], family: int) -> tuple[str, ...]:
    """The addresses of `pods` of `family`, as the set holds them (by value, once each)."""
    return tuple(str(ip) for ip in sorted({ip for p in pods for ip in p.ips
                                           if ip.version == family}))


__all__ = ["GUARD_CHAIN", "check_prefix", "guard_chain", "guard_elements", "guard_sets"]
