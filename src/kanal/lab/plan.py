"""LabPlan: what the lab must look like, computed from manifests, the Lab and the saved state.

Pure: no kernel, no files. The builder (`kanal.lab.build`) realises a plan; `plan_change`
says what differs between two plans, so `kanal lab apply` touches only that.

```
underlay netns <prefix>underlay: bridge br0, port p<i> per node
node netns <prefix>n-<node>:   eth0 = underlay address (192.168.100.<i+1>/24; another /24 if
                               the cluster CIDR overlaps it), forwarding on, table inet kanal,
                               vxlan: VTEP `vxlan.kanal` (VNI 1, deterministic MAC 02:6b:61:6e:..)
pod netns <prefix>p-<ns>.<pod>: eth0 = the pod's /32, behind host veth k<11 hex of sha1(ns/pod)>
```

Placement: a pod runs where its `spec.nodeName` says, else on the node with the fewest pods
(ties: the node listed first), new pods in order of their key; so `up` is round-robin and a
later `apply` never moves a pod (nodeName is immutable, as in Kubernetes).

Addresses come from `kanal.ipam`: `ipam: node` gives each node a block (Flannel: the VTEP is
the block's first address and a peer block is one route), `ipam: namespace` gives each
namespace a block wherever its pods run (Nuage), so each node routes every remote pod by its /32.
An address written in a manifest (`status.podIP(s)`) is ignored, with a note: the lab owns its
addresses, and the engine sees the lab's (so predictions and packets agree).

Manifest `Node` objects lend their labels to the lab node of the same name (for admin `nodes`
peers); the lab's node addresses are their underlay addresses. Other Node objects are skipped.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from kanal.errors import LabError
from kanal.ipam import Ipam, IpamState
from kanal.ipam.allocator import gateway_of
from kanal.model.lab import Backend, IpamMode, LabSpec
from kanal.model.objects import Labels, Manifests, Node, Pod, Protocol

VXLAN_IFNAME = "vxlan.kanal"
VNI = 1
BRIDGE = "br0"
NODE_UNDERLAY_IFNAME = "eth0"
UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = 50
HOSTNAME_LABEL = "kubernetes.io/hostname"
NETWORK_CANDIDATES = tuple(
    IPv4Network(n)
    for n in ("192.168.100.0/24", "192.168.101.0/24", "172.31.100.0/24", "172.31.101.0/24")
)
"""Underlay and VTEP networks: the first two of these that do not overlap the cluster CIDR.
They exist only inside the lab's namespaces, so they cannot clash with the host's."""
NAME_MAX = 255

ServedPorts = tuple[tuple[int, Protocol], ...]
Served = tuple[str, str, IPv4Address, ServedPorts]
"""What a pod server serves for one pod: (pod key, netns, address, ports)."""


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    index: int
    netns: str
    underlay_port: str
    """The node's bridge port in the underlay netns."""
    underlay_ip: IPv4Interface
    vtep_ip: IPv4Address
    vtep_mac: str
    block: IPv4Network | None
    """`ipam: node`: the node's pod CIDR (None with `ipam: namespace`)."""


@dataclass(frozen=True, slots=True)
class PodPlan:
    key: str
    node: str
    netns: str
    host_ifname: str
    ip: IPv4Address
    ports: ServedPorts


@dataclass(frozen=True, slots=True)
class PeerRoute:
    """A route on some node: `dst` (a peer's block, or a remote pod's /32) lives on `peer`."""

    dst: IPv4Network
    peer: str


@dataclass(frozen=True)
class LabPlan:
    spec: LabSpec
    prefix: str
    underlay_netns: str
    underlay_network: IPv4Network
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    manifests: Manifests
    """What the engine sees: every pod with its node and lab address, the lab's nodes."""
    ipam: IpamState
    placement: dict[str, str]
    notes: tuple[str, ...] = field(default=())

    @property
    def mtu(self) -> int:
        """Pod MTU: the underlay's, less the VXLAN header with that backend."""
        if self.spec.backend is Backend.VXLAN:
            return UNDERLAY_MTU - VXLAN_OVERHEAD
        return UNDERLAY_MTU

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def pods_on(self, node: str) -> tuple[PodPlan, ...]:
        return tuple(p for p in self.pods if p.node == node)

    def routes(self, node: str) -> tuple[PeerRoute, ...]:
        """What `node` must route to its peers (its own pods are routed by their veths)."""
        if self.spec.ipam is IpamMode.NODE:
            return tuple(
                PeerRoute(n.block, n.name)
                for n in self.nodes
                if n.name != node and n.block is not None
            )
        return tuple(
            PeerRoute(IPv4Network(f"{p.ip}/32"), p.node) for p in self.pods if p.node != node
        )

    def served(self, node: str) -> tuple[Served, ...]:
        """What the node's server process serves: (pod, netns, address, ports) of its pods."""
        return tuple((p.key, p.netns, p.ip, p.ports) for p in self.pods_on(node) if p.ports)

    def all_netns(self) -> list[str]:
        return [p.netns for p in self.pods] + [n.netns for n in self.nodes] + [self.underlay_netns]


def default_prefix(lab_name: str) -> str:
    return f"kl-{lab_name}-"


def node_netns(prefix: str, node: str) -> str:
    return f"{prefix}n-{node}"


def underlay_netns(prefix: str) -> str:
    return f"{prefix}underlay"


def pod_netns(prefix: str, key: str) -> str:
    """`<prefix>p-<ns>.<pod>` (namespaces have no dots, so the split is unambiguous); names
    longer than a file name may be are cut and made unique with a hash."""
    namespace, _, name = key.partition("/")
    full = f"{prefix}p-{namespace}.{name}"
    if len(full) <= NAME_MAX:
        return full
    return f"{full[: NAME_MAX - 11]}-{_digest(key)[:10]}"


HOST_IFNAME_PREFIX = "k"
"""Every host-side pod veth starts with it, and no other interface of a node netns does: the
agents drop what such an interface carries for an address they do not know (`pod_guard`)."""


def host_ifname(key: str) -> str:
    """Calico-style: a fixed letter and a hash of the pod, 12 characters (IFNAMSIZ is 15)."""
    return f"{HOST_IFNAME_PREFIX}{_digest(key)[:11]}"


def vtep_mac(index: int) -> str:
    """Deterministic, locally administered, unicast: 02:6b:61:6e ("kan") + the node number."""
    number = index + 1
    return f"02:6b:61:6e:{number >> 8:02x}:{number & 0xFF:02x}"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def lab_networks(spec: LabSpec) -> tuple[IPv4Network, IPv4Network]:
    """(underlay, vtep): the first two candidates clear of the cluster CIDR."""
    free = [n for n in NETWORK_CANDIDATES if not n.overlaps(spec.cluster_cidr)]
    return free[0], free[1]


# -- planning ----------------------------------------------------------------------------------


def plan_lab(
    spec: LabSpec,
    prefix: str,
    manifests: Manifests,
    *,
    placement: Mapping[str, str],
    ipam: IpamState,
) -> LabPlan:
    """The lab for `manifests`, keeping the saved placement and addresses of pods that stay.

    Raises LabError for a pod on an unknown node, a pod asked to move, an exhausted block
    (`IpamExhaustedError`), or two pods whose veth names collide. Does not change its inputs.
    """
    networks = lab_networks(spec)
    pods = manifests.pods
    placed = _place(spec, pods, placement)
    allocator = Ipam(spec.cluster_cidr, spec.block_prefix, _copy_ipam(ipam))
    _release_gone(allocator, spec, {p.key for p in pods})
    nodes = tuple(
        _node_plan(spec, prefix, i, name=name, allocator=allocator, networks=networks)
        for i, name in enumerate(spec.nodes)
    )
    pod_plans = tuple(_pod_plan(spec, prefix, pod, placed[pod.key], allocator) for pod in pods)
    _check_ifnames(pod_plans)
    lab_nodes = _lab_nodes(nodes, manifests.nodes)
    by_key = {p.key: p for p in pod_plans}
    engine_pods = tuple(
        replace(p, node_name=by_key[p.key].node, ips=(by_key[p.key].ip,)) for p in pods
    )
    return LabPlan(
        spec=spec,
        prefix=prefix,
        underlay_netns=underlay_netns(prefix),
        underlay_network=networks[0],
        nodes=nodes,
        pods=pod_plans,
        manifests=replace(manifests, pods=engine_pods, nodes=lab_nodes, lab=spec, notes=()),
        ipam=allocator.state,
        placement=placed,
        notes=tuple(_notes(pods, manifests.nodes, spec)),
    )


def _copy_ipam(state: IpamState) -> IpamState:
    return IpamState(blocks=dict(state.blocks), addresses=dict(state.addresses))


def _place(spec: LabSpec, pods: Sequence[Pod], saved: Mapping[str, str]) -> dict[str, str]:
    problems: list[str] = []
    placed: dict[str, str] = {}
    for pod in pods:
        before = saved.get(pod.key)
        if pod.node_name is not None and pod.node_name not in spec.nodes:
            problems.append(
                f"pod `{pod.key}`: spec.nodeName `{pod.node_name}` is not a node of lab "
                f"`{spec.name}` (nodes: {', '.join(spec.nodes)})"
            )
        elif before is not None and pod.node_name not in (None, before):
            problems.append(
                f"pod `{pod.key}` runs on `{before}`, spec.nodeName says `{pod.node_name}`: "
                "nodeName cannot change; delete the pod, then apply it again"
            )
        elif before is not None or pod.node_name is not None:
            placed[pod.key] = before or pod.node_name or ""
    if problems:
        raise LabError("\n".join(problems))
    load = Counter(placed.values())
    for pod in pods:
        if pod.key not in placed:
            node = min(spec.nodes, key=lambda n: (load[n], spec.nodes.index(n)))
            placed[pod.key] = node
            load[node] += 1
    return placed


def _owner(spec: LabSpec, pod_key: str, node: str) -> str:
    return node if spec.ipam is IpamMode.NODE else pod_key.partition("/")[0]


def _release_gone(allocator: Ipam, spec: LabSpec, keep: set[str]) -> None:
    for key in [k for k in allocator.state.addresses if k not in keep]:
        allocator.release(key)
    if spec.ipam is IpamMode.NAMESPACE:
        in_use = {k.partition("/")[0] for k in allocator.state.addresses}
        for owner in [o for o in allocator.state.blocks if o not in in_use]:
            allocator.release_block(owner)


def _node_plan(
    spec: LabSpec,
    prefix: str,
    index: int,
    *,
    name: str,
    allocator: Ipam,
    networks: tuple[IPv4Network, IPv4Network],
) -> NodePlan:
    underlay, vtep = networks
    block = allocator.block(name) if spec.ipam is IpamMode.NODE else None
    return NodePlan(
        name=name,
        index=index,
        netns=node_netns(prefix, name),
        underlay_port=f"p{index}",
        underlay_ip=IPv4Interface(f"{underlay.network_address + index + 1}/{underlay.prefixlen}"),
        vtep_ip=gateway_of(block) if block is not None else vtep.network_address + index + 1,
        vtep_mac=vtep_mac(index),
        block=block,
    )


def _pod_plan(spec: LabSpec, prefix: str, pod: Pod, node: str, allocator: Ipam) -> PodPlan:
    ip = allocator.assign(pod.key, _owner(spec, pod.key, node))
    ports = tuple(dict.fromkeys((p.port, p.protocol) for p in pod.ports))
    return PodPlan(pod.key, node, pod_netns(prefix, pod.key), host_ifname(pod.key), ip, ports)


def _check_ifnames(pods: Sequence[PodPlan]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for pod in pods:
        other = seen.setdefault((pod.node, pod.host_ifname), pod.key)
        if other != pod.key:  # 44 bits of sha1: practically never
            raise LabError(
                f"pods `{other}` and `{pod.key}` would share veth `{pod.host_ifname}` on node "
                f"`{pod.node}`: rename one of them"
            )


def _lab_nodes(nodes: Sequence[NodePlan], declared: Sequence[Node]) -> tuple[Node, ...]:
    labels = {n.name: n.labels for n in declared}
    return tuple(
        Node(
            n.name,
            Labels({HOSTNAME_LABEL: n.name, **labels.get(n.name, Labels())}),
            (n.underlay_ip.ip,),
        )
        for n in nodes
    )


def _notes(pods: Sequence[Pod], declared: Sequence[Node], spec: LabSpec) -> list[str]:
    notes: list[str] = []
    with_ips = [p.key for p in pods if p.ips]
    if with_ips:
        shown = ", ".join(f"`{k}`" for k in with_ips[:3]) + (", ..." if len(with_ips) > 3 else "")
        notes.append(
            f"ignored status.podIP(s) of {len(with_ips)} pod(s) ({shown}): the lab assigns "
            f"addresses from {spec.cluster_cidr}"
        )
    notes.extend(
        f"skipped Node `{n.name}`: not a node of lab `{spec.name}`"
        for n in declared
        if n.name not in spec.nodes
    )
    return notes


# -- changes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanChange:
    """What `apply`/`delete` must do to the topology to get from `old` to `new`."""

    removed: tuple[PodPlan, ...]
    added: tuple[PodPlan, ...]
    servers: tuple[str, ...]
    """Nodes whose server process must be restarted (their served pods or ports changed)."""

    @property
    def topology_changed(self) -> bool:
        return bool(self.removed or self.added)


def plan_change(old: LabPlan, new: LabPlan) -> PlanChange:
    before = {p.key: p for p in old.pods}
    after = {p.key: p for p in new.pods}
    removed = tuple(p for k, p in before.items() if _moved(p, after.get(k)))
    added = tuple(p for k, p in after.items() if _moved(p, before.get(k)))
    servers = tuple(n.name for n in new.nodes if old.served(n.name) != new.served(n.name))
    return PlanChange(removed, added, servers)


def _moved(pod: PodPlan, other: PodPlan | None) -> bool:
    """True when `other` is not the same wired pod (absent, or elsewhere, or readdressed)."""
    if other is None:
        return True
    return (pod.node, pod.netns, pod.ip, pod.host_ifname) != (
        other.node,
        other.netns,
        other.ip,
        other.host_ifname,
    )


__all__ = [
    "BRIDGE",
    "NODE_UNDERLAY_IFNAME",
    "VNI",
    "VXLAN_IFNAME",
    "LabPlan",
    "NodePlan",
    "PeerRoute",
    "PlanChange",
    "PodPlan",
    "Served",
    "default_prefix",
    "host_ifname",
    "node_netns",
    "plan_change",
    "plan_lab",
    "pod_netns",
    "underlay_netns",
]
