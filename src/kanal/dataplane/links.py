"""Links, addresses, routes and sysctls for a pod network built from network namespaces.

The building blocks of `kanal lab` (and of the CNI plugin): each function does one kernel change
in named namespaces through pyroute2 and raises DataplaneError naming the namespace when the
kernel refuses. None of them plans addresses or names: the caller (the lab builder, IPAM) does.

Pod wiring is Calico's routed /32 veth, with no bridge, so that every pod-to-pod packet, on the
same node or not, crosses the node's inet forward hook:

    pod netns                         node netns
    eth0 10.244.1.2/32  <--veth-->    <host_ifname> (no address, MAC ee:ee:ee:ee:ee:ee)
    169.254.1.1 dev eth0 scope link   10.244.1.2/32 dev <host_ifname> scope link
    default via 169.254.1.1           rp_filter=1 on <host_ifname> (anti-spoofing, as Felix)
    neigh 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee PERMANENT

The pod reaches its gateway through a *permanent neighbour entry* rather than Calico's proxy_arp:
proxy_arp answers only for addresses the node has a unicast route to through another interface,
and a node netns has no route for 169.254.1.1 (no default route; we never want one into the host).
A static entry needs no ARP at all, so a pod's first packet is never delayed or lost to ARP.
All host-side veths share one MAC, as in Calico: each veth is its own L2 segment.

Nodes are joined by an underlay: one bridge in a per-lab underlay netns, one veth per node.
Backends, both Flannel style: `vxlan` (one VXLAN device per node, learning off, static FDB and
neighbour entries per peer, peer pod CIDR routed via the peer VTEP IP onlink) and `host-gw`
(peer pod CIDR routed via the peer's underlay IP). VXLAN costs 50 bytes of MTU (`VXLAN_OVERHEAD`):
give pods `underlay_mtu - VXLAN_OVERHEAD`, or raise the underlay MTU.

Every function opens its own short-lived netlink socket inside the netns (see `_ipr`); none
of them creates a missing netns. They are not transactional: a failure part-way leaves what
was done (except `add_pod_link`, which removes its veth again); tearing down the namespaces is
the cleanup that always works.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ndmsg import states as _nud_states

from kanal.dataplane.netns import entered, netns_path
from kanal.errors import DataplaneError

HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
POD_GATEWAY = IPv4Address("169.254.1.1")
POD_IFNAME = "eth0"
VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50
_IFNAMSIZ = 15
_SCOPE_LINK = 253
_RTNH_F_ONLINK = 4
_NUD_PERMANENT = _nud_states["permanent"]


def _check_ifname(name: str) -> None:
    if not name or len(name) > _IFNAMSIZ or "/" in name or " " in name:
        raise ValueError(f"invalid interface name {name!r} (1-{_IFNAMSIZ} chars, no / or space)")


@contextlib.contextmanager
def _ipr(netns: str, what: str) -> Iterator[Any]:
    """An IPRoute in `netns`; kernel and lookup failures become DataplaneError naming `what`.

    The socket is opened (and used) with this thread inside the netns, not with
    `IPRoute(netns=...)`, which forks a child to open it: 1.8 ms instead of 12.7 ms per call
    here, and no fork in a process that may be running other threads. Like `flags=0`, a
    missing netns is an error (from `entered`), never silently created.
    """
    with entered(netns):
        try:
            with IPRoute() as ipr:
                yield ipr
        except (NetlinkError, OSError) as exc:
            raise DataplaneError(f"{what} in netns `{netns}` failed: {exc}") from exc


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise OSError(f"no interface `{ifname}`")
    return int(found[0])


# --- sysctls ---------------------------------------------------------------------------------


def _sysctl_path(key: str) -> str:
    """Like sysctl(8): `a.b.c` or, when a component (an interface name) has dots, `a/b/c`."""
    parts = key.split("/") if "/" in key else key.split(".")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid sysctl key {key!r}")
    return "/proc/sys/" + "/".join(parts)


def write_sysctl(netns: str, key: str, value: str) -> None:
    """Write sysctl `key` (dotted, e.g. `net.ipv4.ip_forward`) inside `netns`.

    /proc/sys/net resolves to the namespace of the *thread* that opens it, so entering is enough.
    """
    try:
        with entered(netns), open(_sysctl_path(key), "w") as f:
            f.write(value)
    except OSError as exc:
        raise DataplaneError(f"cannot set sysctl {key}={value} in netns `{netns}`: {exc}") from exc


def read_sysctl(netns: str, key: str) -> str:
    """Read sysctl `key` inside `netns` (stripped)."""
    try:
        with entered(netns), open(_sysctl_path(key)) as f:
            return f.read().strip()
    except OSError as exc:
        raise DataplaneError(f"cannot read sysctl {key} in netns `{netns}`: {exc}") from exc


def enable_routing(netns: str) -> None:
    """Make `netns` a router: IPv4 forwarding on (for every current and future interface)."""
    write_sysctl(netns, "net.ipv4.ip_forward", "1")


# --- links -----------------------------------------------------------------------------------


def bring_up_loopback(netns: str) -> None:
    """Set `lo` up: a new namespace has it down, and pods talk to themselves through it."""
    with _ipr(netns, "bringing up lo") as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")


def link_mac(netns: str, ifname: str) -> str:
    """The MAC address of interface `ifname` in `netns`."""
    with _ipr(netns, f"reading the MAC of `{ifname}`") as ipr:
        link = ipr.link("get", index=_index(ipr, ifname))[0]
        return str(link.get_attr("IFLA_ADDRESS"))


def delete_link(netns: str, ifname: str) -> None:
    """Delete `ifname` (for a veth also its peer, and with them their routes and neighbours)."""
    with _ipr(netns, f"deleting `{ifname}`") as ipr:
        ipr.link("del", index=_index(ipr, ifname))


def add_pod_link(
    node_netns: str, pod_netns: str, *, host_ifname: str, pod_ip: IPv4Address, mtu: int = 1500
) -> None:
    """Wire a pod to its node with a routed /32 veth (see the module docstring for the picture).

    The pod end is created directly inside the pod netns as `eth0`, so it never appears in the
    node netns under a temporary name. If configuring fails the veth is deleted again, so a
    failed call leaves nothing behind. Remove with `delete_link(node_netns, host_ifname)`.
    """
    _check_ifname(host_ifname)
    with _ipr(node_netns, f"creating veth `{host_ifname}` for pod netns `{pod_netns}`") as ipr:
        ipr.link(
            "add",
            ifname=host_ifname,
            kind="veth",
            address=HOST_VETH_MAC,
            mtu=mtu,
            peer={"ifname": POD_IFNAME, "net_ns_fd": netns_path(pod_netns), "mtu": mtu},
        )
    try:
        _configure_pod_side(pod_netns, pod_ip)
        _configure_host_side(node_netns, host_ifname, pod_ip)
    except DataplaneError:
        with contextlib.suppress(DataplaneError):
            delete_link(node_netns, host_ifname)
        raise


def _configure_pod_side(pod_netns: str, pod_ip: IPv4Address) -> None:
    with _ipr(pod_netns, f"configuring {POD_IFNAME} {pod_ip}/32") as ipr:
        eth0 = _index(ipr, POD_IFNAME)
        ipr.link("set", index=_index(ipr, "lo"), state="up")
        ipr.link("set", index=eth0, state="up")
        ipr.addr("add", index=eth0, address=str(pod_ip), prefixlen=32)
        ipr.route("add", dst=str(POD_GATEWAY), dst_len=32, oif=eth0, scope=_SCOPE_LINK)
        ipr.route("add", dst="0.0.0.0", dst_len=0, gateway=str(POD_GATEWAY), oif=eth0)
        ipr.neigh(
            "add", dst=str(POD_GATEWAY), lladdr=HOST_VETH_MAC, ifindex=eth0, state=_NUD_PERMANENT
        )


def _configure_host_side(node_netns: str, host_ifname: str, pod_ip: IPv4Address) -> None:
    with _ipr(node_netns, f"routing {pod_ip}/32 to `{host_ifname}`") as ipr:
        veth = _index(ipr, host_ifname)
        ipr.link("set", index=veth, state="up")
        ipr.route("add", dst=str(pod_ip), dst_len=32, oif=veth, scope=_SCOPE_LINK)
    write_sysctl(node_netns, f"net/ipv4/conf/{host_ifname}/rp_filter", "1")


# --- underlay --------------------------------------------------------------------------------


def add_bridge(netns: str, bridge: str) -> None:
    """Create bridge `bridge` in `netns` (the underlay switch joining the nodes) and set it up."""
    _check_ifname(bridge)
    with _ipr(netns, f"creating bridge `{bridge}`") as ipr:
        ipr.link("add", ifname=bridge, kind="bridge")
        ipr.link("set", index=_index(ipr, bridge), state="up")


def attach_to_underlay(
    node_netns: str,
    underlay_netns: str,
    *,
    bridge: str,
    port_ifname: str,
    address: IPv4Interface,
    node_ifname: str = "eth0",
    mtu: int = 1500,
) -> None:
    """Plug a node into the underlay bridge: veth `port_ifname` (bridge port, in the underlay
    netns) to `node_ifname` (in the node netns) carrying the node's underlay `address`."""
    _check_ifname(port_ifname)
    _check_ifname(node_ifname)
    with _ipr(underlay_netns, f"plugging node netns `{node_netns}` into `{bridge}`") as ipr:
        ipr.link(
            "add",
            ifname=port_ifname,
            kind="veth",
            mtu=mtu,
            peer={"ifname": node_ifname, "net_ns_fd": netns_path(node_netns), "mtu": mtu},
        )
        port = _index(ipr, port_ifname)
        ipr.link("set", index=port, master=_index(ipr, bridge), state="up")
    with _ipr(node_netns, f"configuring underlay `{node_ifname}` {address}") as ipr:
        link = _index(ipr, node_ifname)
        ipr.addr("add", index=link, address=str(address.ip), prefixlen=address.network.prefixlen)
        ipr.link("set", index=link, state="up")


# --- host-gw backend -------------------------------------------------------------------------


def add_host_gw_route(
    node_netns: str, *, peer_pod_cidr: IPv4Network, peer_underlay_ip: IPv4Address
) -> None:
    """Route a peer node's pod CIDR via its underlay IP (needs L2 adjacency on the underlay)."""
    with _ipr(node_netns, f"routing {peer_pod_cidr} via {peer_underlay_ip}") as ipr:
        ipr.route(
            "add",
            dst=str(peer_pod_cidr.network_address),
            dst_len=peer_pod_cidr.prefixlen,
            gateway=str(peer_underlay_ip),
        )


# --- vxlan backend ---------------------------------------------------------------------------


def add_vxlan(
    node_netns: str,
    *,
    ifname: str,
    vni: int,
    local_ip: IPv4Address,
    underlay_ifname: str,
    vtep_ip: IPv4Address,
    mac: str | None = None,
    mtu: int = 1500 - VXLAN_OVERHEAD,
) -> str:
    """Create the node's VTEP: VXLAN `vni` on UDP 4789 from `local_ip`, learning off (peers come
    from `add_vxlan_peer`, never from flooding), address `vtep_ip`/32. Returns its MAC, which the
    peers need; pass `mac` to choose it (deterministic labs), else the kernel picks one."""
    _check_ifname(ifname)
    extra = {"address": mac} if mac is not None else {}
    with _ipr(node_netns, f"creating vxlan `{ifname}` vni {vni}") as ipr:
        ipr.link(
            "add",
            ifname=ifname,
            kind="vxlan",
            vxlan_id=vni,
            vxlan_local=str(local_ip),
            vxlan_link=_index(ipr, underlay_ifname),
            vxlan_port=VXLAN_PORT,
            vxlan_learning=0,
            mtu=mtu,
            **extra,
        )
        index = _index(ipr, ifname)
        ipr.addr("add", index=index, address=str(vtep_ip), prefixlen=32)
        ipr.link("set", index=index, state="up")
        return str(ipr.link("get", index=index)[0].get_attr("IFLA_ADDRESS"))


def add_vxlan_peer(
    node_netns: str,
    *,
    ifname: str,
    peer_mac: str,
    peer_underlay_ip: IPv4Address,
    peer_vtep_ip: IPv4Address,
    peer_pod_cidr: IPv4Network,
) -> None:
    """Teach the local VTEP one peer node, Flannel style, with three permanent entries:
    FDB (peer VTEP MAC -> peer underlay IP), neighbour (peer VTEP IP -> MAC), and the route
    `peer_pod_cidr via peer_vtep_ip dev ifname onlink`."""
    with _ipr(node_netns, f"adding vxlan peer {peer_underlay_ip} to `{ifname}`") as ipr:
        vxlan = _index(ipr, ifname)
        ipr.fdb("append", ifindex=vxlan, lladdr=peer_mac, dst=str(peer_underlay_ip))
        ipr.neigh(
            "add", dst=str(peer_vtep_ip), lladdr=peer_mac, ifindex=vxlan, state=_NUD_PERMANENT
        )
        ipr.route(
            "add",
            dst=str(peer_pod_cidr.network_address),
            dst_len=peer_pod_cidr.prefixlen,
            gateway=str(peer_vtep_ip),
            oif=vxlan,
            flags=_RTNH_F_ONLINK,
        )


# --- removing single entries ------------------------------------------------------------------


@contextlib.contextmanager
def _tolerating_absence(missing_ok: bool) -> Iterator[None]:
    """With `missing_ok`, swallow only "no such entry" (ESRCH for routes, ENOENT otherwise)."""
    try:
        yield
    except NetlinkError as exc:
        if not (missing_ok and exc.code in (errno.ESRCH, errno.ENOENT)):
            raise


def delete_route(netns: str, dst: IPv4Network, *, missing_ok: bool = False) -> None:
    """Delete the main-table route to `dst` (a pod /32, a peer's pod CIDR, host-gw or vxlan)."""
    with _ipr(netns, f"deleting the route to {dst}") as ipr, _tolerating_absence(missing_ok):
        ipr.route("del", dst=str(dst.network_address), dst_len=dst.prefixlen)


def delete_neighbour(
    netns: str, *, ifname: str, ip: IPv4Address, missing_ok: bool = False
) -> None:
    """Delete the neighbour entry for `ip` on `ifname` (a peer VTEP's, from `add_vxlan_peer`)."""
    with _ipr(netns, f"deleting neighbour {ip} on `{ifname}`") as ipr:
        index = _index(ipr, ifname)
        with _tolerating_absence(missing_ok):
            ipr.neigh("del", dst=str(ip), ifindex=index)


def delete_fdb_entry(
    netns: str, *, ifname: str, mac: str, dst_ip: IPv4Address, missing_ok: bool = False
) -> None:
    """Delete the FDB entry `mac -> dst_ip` of VXLAN device `ifname`.

    Remove it only when the peer node itself goes: every route via that peer's VTEP uses it.
    Undoing `add_vxlan_peer` for one pod CIDR is `delete_route` + `delete_neighbour`.
    """
    with _ipr(netns, f"deleting FDB entry {mac} -> {dst_ip} on `{ifname}`") as ipr:
        index = _index(ipr, ifname)
        with _tolerating_absence(missing_ok):
            ipr.fdb("del", ifindex=index, lladdr=mac, dst=str(dst_ip))


__all__ = [
    "HOST_VETH_MAC",
    "POD_GATEWAY",
    "POD_IFNAME",
    "VXLAN_OVERHEAD",
    "VXLAN_PORT",
    "add_bridge",
    "add_host_gw_route",
    "add_pod_link",
    "add_vxlan",
    "add_vxlan_peer",
    "attach_to_underlay",
    "bring_up_loopback",
    "delete_fdb_entry",
    "delete_link",
    "delete_neighbour",
    "delete_route",
    "enable_routing",
    "link_mac",
    "read_sysctl",
    "write_sysctl",
]
