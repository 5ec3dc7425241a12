"""Realise a `LabPlan` in the kernel through `kanal.dataplane`, and remove it again.

Order of `up` (the caller loads each node's table between `build_fabric` and `add_pods`, so a pod
is enforced from its first packet):

```
build_fabric:  underlay netns + bridge ─► per node: netns, lo, forwarding, eth0 on the bridge,
                                          VTEP (vxlan) ─► every peer route of the plan (node
                                          IPAM: a block per peer; namespace IPAM: a /32 per
                                          remote pod)
add_pods:      per pod: netns, routed /32 veth (pods added later under namespace IPAM: also
               their /32 on every peer)
ServerFleet:   one `python -m kanal.lab.servers` per node, detached, PID saved in the state
```

Peer routes per backend and IPAM mode (see `LabPlan.routes`):

- vxlan: `add_vxlan_peer` (FDB peer MAC -> underlay IP, neighbour, route onlink). With namespace
  IPAM each remote pod is its own next hop: `pod/32 via pod dev vxlan.kanal onlink`, with a
  permanent neighbour pod -> the peer's VTEP MAC (the FDB entry is the same for every pod of
  that peer; appending it again is a no-op).
- host-gw: `add_host_gw_route` (the peer's block, or each remote pod's /32, via its underlay IP).

A pod removed under namespace IPAM takes its /32 (and, with vxlan, its neighbour entry) off
every peer, so its address can be given to a pod on another node in the same change. Node IPAM
routes whole blocks, which never change while the lab runs.

Teardown needs nothing but the prefix (and the state directory, for server processes): stop the
servers, kill any process left inside a lab netns, delete every netns the lab could have named
(`<prefix>underlay`, `<prefix>n-*`, `<prefix>p-*`; not any name with the prefix, so lab `a`,
prefix `kl-a-`, never takes lab `a-b`'s `kl-a-b-*` with it). Links, routes and tables live in
those namespaces and go with them. Idempotent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from kanal.agent import process
from kanal.agent.process import alive, reap
from kanal.dataplane import links
from kanal.dataplane.netns import create_netns, delete_netns, list_netns, netns_pids
from kanal.errors import DataplaneError, LabError
from kanal.lab.plan import (
    BRIDGE,
    NODE_UNDERLAY_IFNAME,
    VNI,
    VXLAN_IFNAME,
    LabPlan,
    NodePlan,
    PeerRoute,
    PodPlan,
    Served,
)
from kanal.lab.servers import ServedPod, dump_spec
from kanal.model.lab import Backend, IpamMode

SERVER_MODULE = "kanal.lab.servers"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


# -- the fabric: underlay, nodes, backend -------------------------------------------------------


def build_fabric(plan: LabPlan) -> None:
    """The underlay, every node, and every node's peer routes (`LabPlan.routes`)."""
    create_netns(plan.underlay_netns)
    links.add_bridge(plan.underlay_netns, BRIDGE)
    for node in plan.nodes:
        _build_node(plan, node)
    for node in plan.nodes:
        add_peer_routes(plan, node.name, plan.routes(node.name))


def _build_node(plan: LabPlan, node: NodePlan) -> None:
    create_netns(node.netns)
    links.bring_up_loopback(node.netns)
    links.enable_routing(node.netns)
    _attach(plan, node)
    if plan.spec.backend is Backend.VXLAN:
        _add_vtep(plan, node)


def _attach(plan: LabPlan, node: NodePlan) -> None:
    links.attach_to_underlay(
        node.netns,
        plan.underlay_netns,
        bridge=BRIDGE,
        port_ifname=node.underlay_port,
        address=node.underlay_ip,
        node_ifname=NODE_UNDERLAY_IFNAME,
    )


def _add_vtep(plan: LabPlan, node: NodePlan) -> None:
    links.add_vxlan(
        node.netns,
        ifname=VXLAN_IFNAME,
        vni=VNI,
        local_ip=node.underlay_ip.ip,
        underlay_ifname=NODE_UNDERLAY_IFNAME,
        vtep_ip=node.vtep_ip,
        mac=node.vtep_mac,
        mtu=plan.mtu,
    )


def add_peer_routes(plan: LabPlan, node: str, routes: Iterable[PeerRoute]) -> None:
    """Route each `dst` to its peer node, the backend's way (see the module docstring)."""
    here = plan.node(node)
    for route in routes:
        peer = plan.node(route.peer)
        if plan.spec.backend is Backend.HOST_GW:
            links.add_host_gw_route(
                here.netns, peer_pod_cidr=route.dst, peer_underlay_ip=peer.underlay_ip.ip
            )
        else:
            hop = peer.vtep_ip if plan.spec.ipam is IpamMode.NODE else route.dst.network_address
            links.add_vxlan_peer(
                here.netns,
                ifname=VXLAN_IFNAME,
                peer_mac=peer.vtep_mac,
                peer_underlay_ip=peer.underlay_ip.ip,
                peer_vtep_ip=hop,
                peer_pod_cidr=route.dst,
            )


# -- pods ---------------------------------------------------------------------------------------


def add_pods(plan: LabPlan, pods: Sequence[PodPlan], *, peer_routes: bool) -> None:
    """Create and wire `pods`; with `peer_routes` (namespace IPAM), route each on its peers.

    A pod answers every packet to a closed port with an ICMP error (`icmp_ratelimit` 0): the
    kernel's default of about one per second per peer would turn the refusals of a burst of
    probes into silence, which looks like a policy drop."""
    for pod in pods:
        create_netns(pod.netns)
        links.write_sysctl(pod.netns, "net.ipv4.icmp_ratelimit", "0")
        links.add_pod_link(
            plan.node(pod.node).netns,
            pod.netns,
            host_ifname=pod.host_ifname,
            pod_ip=pod.ip,
            mtu=plan.mtu,
        )
    if peer_routes:
        for node in plan.nodes:
            route = [
                PeerRoute(IPv4Network(f"{p.ip}/32"), p.node) for p in pods if p.node != node.name
            ]
            add_peer_routes(plan, node.name, route)


def remove_pods(plan: LabPlan, pods: Sequence[PodPlan]) -> None:
    """Unwire and delete `pods` (planned in `plan`, the lab they were built in). The host veth
    is deleted first: deleting a netns frees its links only later, asynchronously."""
    for pod in pods:
        with contextlib.suppress(DataplaneError):  # already gone (an earlier, failed attempt)
            links.delete_link(plan.node(pod.node).netns, pod.host_ifname)
        _kill(_pids_in([pod.netns]))
        delete_netns(pod.netns, missing_ok=True)
        if plan.spec.ipam is IpamMode.NAMESPACE:
            _remove_peer_routes(plan, pod)


def _remove_peer_routes(plan: LabPlan, pod: PodPlan) -> None:
    for node in plan.nodes:
        if node.name == pod.node:
            continue
        links.delete_route(node.netns, IPv4Network(f"{pod.ip}/32"), missing_ok=True)
        if plan.spec.backend is Backend.VXLAN:
            links.delete_neighbour(node.netns, ifname=VXLAN_IFNAME, ip=pod.ip, missing_ok=True)


# -- teardown -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Teardown:
    """What `teardown` removed."""

    netns: tuple[str, ...]
    processes: tuple[int, ...]


def teardown(prefix: str, *, fleet: ServerFleet | None, pids: Iterable[int] = ()) -> Teardown:
    """Remove everything with `prefix`: server processes (`pids` and any found by `fleet`),
    processes inside lab namespaces, then the namespaces (pods, nodes, underlay)."""
    if not prefix:
        raise ValueError("refusing to tear down an empty prefix: it would match every netns")
    stopped = list(fleet.stop(pids, strays=True) if fleet is not None else ())
    names = lab_netns(prefix)
    leftover = _pids_in(names)
    _kill(leftover)
    for name in sorted(names, key=_teardown_order(prefix)):
        delete_netns(name, missing_ok=True)
    return Teardown(tuple(names), tuple(sorted({*stopped, *leftover})))


def lab_netns(prefix: str) -> list[str]:
    """The namespaces that exist and have a name this lab's plan can give (see `kanal.lab.plan`)."""
    return [
        name
        for name in list_netns(prefix)
        if (rest := name.removeprefix(prefix)) == "underlay" or rest.startswith(("n-", "p-"))
    ]


def _teardown_order(prefix: str) -> Callable[[str], tuple[int, str]]:
    """Pods first, then nodes, the underlay last (the reverse of building)."""

    def key(name: str) -> tuple[int, str]:
        rest = name.removeprefix(prefix)
        return (0 if rest.startswith("p-") else 1 if rest.startswith("n-") else 2, name)

    return key


def _pids_in(names: Iterable[str]) -> list[int]:
    found: set[int] = set()
    for name in names:
        with contextlib.suppress(DataplaneError):  # deleted meanwhile
            found.update(netns_pids(name))
    found.discard(os.getpid())
    return sorted(found)


def _kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        reap(pid)


# -- server processes ---------------------------------------------------------------------------


class ServerFleet:
    """The pod server processes of one lab: one detached `python -m kanal.lab.servers` per node
    with pods, spec/ready/log files `servers-<node>.*` in the state directory.

    Ports cannot be handed from an old process to a new one (two TCP listeners cannot share an
    address), so a node's server is restarted by stopping the old process first: its pods do not
    answer for the ~0.3 s the new one needs to start. `apply` does this only for nodes whose
    served pods or ports changed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, node: str, suffix: str) -> Path:
        return self.directory / f"servers-{node}.{suffix}"

    def start(self, plan: LabPlan, nodes: Iterable[str]) -> dict[str, int]:
        """Start the servers of `nodes` (those with served pods), wait until every one is ready;
        returns node -> PID. LabError with the server's own message if one fails."""
        started: dict[str, int] = {}
        for node in nodes:
            served = plan.served(node)
            if served:
                started[node] = self._spawn(node, served)
        try:
            self._await_ready(started)
        except LabError:
            self.stop(started.values())
            raise
        return started

    def _spawn(self, node: str, served: Sequence[Served]) -> int:
        pods = [ServedPod(key, netns, ip, ports) for key, netns, ip, ports in served]
        spec, ready, log = (self._file(node, s) for s in ("json", "ready", "log"))
        self.directory.mkdir(parents=True, exist_ok=True)
        spec.write_text(dump_spec(pods))
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", SERVER_MODULE, "--spec", str(spec)]
        argv += ["--ready-file", str(ready)]
        try:
            return process.spawn_detached(argv, log, truncate=True)
        except OSError as exc:
            raise LabError(f"cannot start the pod servers of node `{node}`: {exc}") from exc

    def _await_ready(self, started: Mapping[str, int]) -> None:
        why = process.wait_ready_files(
            started, lambda node: self._file(node, "ready"), timeout=READY_TIMEOUT_S
        )
        if why is not None and why.exited is not None:
            last = process.tail(self._file(why.exited, "log"), lines=1)
            raise LabError(f"the pod servers of node `{why.exited}` failed: {last}")
        if why is not None:
            nodes = ", ".join(f"`{n}`" for n in why.late)
            raise LabError(f"the pod servers of {nodes} did not start in {READY_TIMEOUT_S} s")

    def stop(self, pids: Iterable[int], *, strays: bool = False) -> list[int]:
        """SIGTERM `pids` that are still this lab's servers and, with `strays`, every server of
        this lab (found by its spec path, e.g. after a crash before its PID was saved); SIGKILL
        after a grace period. Returns the PIDs signalled."""
        found = self.strays() if strays else []
        targets = sorted({p for p in pids if self._owns(p)} | set(found))
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(alive(p) for p in targets) and time.monotonic() < deadline:
            time.sleep(0.01)
        _kill(p for p in targets if alive(p))
        return targets

    def strays(self) -> list[int]:
        """Every running server process whose spec lives in this lab's directory."""
        return [pid for pid in process.all_pids() if self._owns(pid)]

    def _owns(self, pid: int) -> bool:
        argv = process.cmdline(pid)
        if SERVER_MODULE not in argv or "--spec" not in argv:
            return False
        spec = Path(argv[argv.index("--spec") + 1]) if argv[-1] != "--spec" else None
        return spec is not None and spec.parent == self.directory


__all__ = [
    "ServerFleet",
    "Teardown",
    "add_peer_routes",
    "add_pods",
    "build_fabric",
    "lab_netns",
    "remove_pods",
    "teardown",
]
