"""`kanal.io/v1alpha1` Lab: how `kanal lab` lays out the cluster network on one machine.

```yaml
apiVersion: kanal.io/v1alpha1
kind: Lab
metadata: {name: demo}
spec:
  nodes: [node-1, node-2]      # or a count: 3 -> node-1, node-2, node-3      (default 2)
  backend: vxlan               # vxlan (Flannel style) | host-gw (routes)     (default vxlan)
  ipam: node                   # node: a block per node | namespace: a block per namespace
  clusterCIDR: 10.244.0.0/16   # IPv4; the lab's pods get addresses from here
  blockPrefix: 24              # size of each node's / namespace's block
```
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import TypeVar

from kanal.model.fields import At, Raw, as_int, as_str, check_fields, get_int, get_mapping, get_str
from kanal.model.meta import ObjectMeta, parse_cidr
from kanal.model.validate import dns1123_subdomain

MAX_NODES = 16
DEFAULT_CLUSTER_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
E = TypeVar("E", bound=enum.StrEnum)
_SPEC_FIELDS = ("nodes", "backend", "ipam", "clusterCIDR", "blockPrefix")


class Backend(enum.StrEnum):
    VXLAN = "vxlan"
    HOST_GW = "host-gw"


class IpamMode(enum.StrEnum):
    NODE = "node"
    NAMESPACE = "namespace"


@dataclass(frozen=True, slots=True)
class LabSpec:
    name: str = "kanal"
    nodes: tuple[str, ...] = ("node-1", "node-2")
    backend: Backend = Backend.VXLAN
    ipam: IpamMode = IpamMode.NODE
    cluster_cidr: ipaddress.IPv4Network = DEFAULT_CLUSTER_CIDR
    block_prefix: int = 24


def parse_lab(raw: Raw, meta: ObjectMeta, at: At) -> LabSpec:
    spec_at = at.field("spec")
    spec = get_mapping(raw, "spec", at) or {}
    check_fields(spec, _SPEC_FIELDS, spec_at)
    default = LabSpec()
    cluster = _cluster_cidr(spec, spec_at) or default.cluster_cidr
    prefix = get_int(spec, "blockPrefix", spec_at)
    if prefix is not None and not cluster.prefixlen < prefix <= 30:
        spec_at.field("blockPrefix").problem(
            f"{prefix} must be longer than the cluster prefix /{cluster.prefixlen} and at most 30"
        )
    return LabSpec(
        name=meta.name,
        nodes=_nodes(spec, spec_at) or default.nodes,
        backend=_choice(spec, "backend", Backend, spec_at) or default.backend,
        ipam=_choice(spec, "ipam", IpamMode, spec_at) or default.ipam,
        cluster_cidr=cluster,
        block_prefix=prefix if prefix is not None else default.block_prefix,
    )


def _nodes(spec: Raw, at: At) -> tuple[str, ...] | None:
    value = spec.get("nodes")
    field_at = at.field("nodes")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        count = as_int(value, field_at)
        if count is None or not 1 <= count <= MAX_NODES:
            field_at.problem(f"{value} nodes: a lab has 1 to {MAX_NODES} nodes")
            return None
        return tuple(f"node-{i}" for i in range(1, count + 1))
    if not isinstance(value, list) or not value:
        field_at.problem("must be a node count or a non-empty list of node names")
        return None
    names = [as_str(v, field_at.item(i)) for i, v in enumerate(value)]
    for i, name in enumerate(names):
        if name is not None:
            field_at.item(i).problems(
                dns1123_subdomain(name), prefix=f"invalid node name {name!r}: "
            )
    if len(set(names)) != len(names) or len(names) > MAX_NODES:
        field_at.problem(f"node names must be unique, at most {MAX_NODES}")
    return tuple(n for n in names if n is not None)


def _choice(spec: Raw, key: str, kind: type[E], at: At) -> E | None:
    text = get_str(spec, key, at)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        allowed = " or ".join(e.value for e in kind)
        at.field(key).problem(f"unsupported value {text!r}: use {allowed}")
        return None


def _cluster_cidr(spec: Raw, at: At) -> ipaddress.IPv4Network | None:
    if "clusterCIDR" not in spec:
        return None
    network = parse_cidr(spec["clusterCIDR"], at.field("clusterCIDR"))
    if network is not None and not isinstance(network, ipaddress.IPv4Network):
        at.field("clusterCIDR").problem("the lab supports IPv4 cluster CIDRs only")
        return None
    return network
