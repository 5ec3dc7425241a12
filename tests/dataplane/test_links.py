"""Pod wiring, underlay and both overlay backends, checked with real connections.

Topology from `minilab` (2 nodes x 2 pods, host-gw or vxlan); a `PodServers` in this process
serves TCP/UDP on every pod and the prober connects between every pair. The kernel state the
functions promise (routes, neighbours, FDB, sysctls) is read back with `ip -j`, independently of
the code under test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

import minilab
from kanal.dataplane import links
from kanal.dataplane.netns import create_netns, delete_netns, entered, list_netns
from kanal.errors import DataplaneError
from kanal.lab.prober import Probe, probe_many
from kanal.lab.servers import PodServers, ServedPod
from kanal.model.objects import Protocol

pytestmark = pytest.mark.kernel

TIMEOUT_S = 0.5


@pytest.fixture(params=["vxlan", "host-gw"])
def lab(request: pytest.FixtureRequest, netns_prefix: str) -> Iterator[minilab.MiniLab]:
    built = minilab.build(netns_prefix, backend=request.param)
    try:
        yield built
    finally:
        minilab.teardown(built)


@pytest.fixture
def servers(lab: minilab.MiniLab) -> Iterator[PodServers]:
    ports = ((80, Protocol.TCP), (53, Protocol.UDP))
    pod_servers = PodServers([ServedPod(p.name, p.netns, p.ip, ports) for p in lab.pods])
    pod_servers.bind()
    thread = threading.Thread(target=pod_servers.serve)
    thread.start()
    try:
        yield pod_servers
    finally:
        pod_servers.stop()
        thread.join(timeout=5)
        pod_servers.close()
    assert not thread.is_alive()


def _ip_json(netns: str, *args: str) -> Any:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "-d", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out) if out.strip() else []


@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.UDP])
def test_every_pod_reaches_every_other_pod(
    lab: minilab.MiniLab, servers: PodServers, protocol: Protocol
) -> None:
    port = 80 if protocol is Protocol.TCP else 53
    pairs = [(s, d) for s in lab.pods for d in lab.pods if s != d]
    results = probe_many(
        [Probe(s.netns, d.ip, port, protocol) for s, d in pairs], timeout_s=TIMEOUT_S
    )
    for (src, dst), result in zip(pairs, results, strict=True):
        assert result.connected, f"{src.name} -> {dst.name}: {result.detail}"
        assert f"{dst.name} {port}/{protocol}" in result.detail


def test_a_pod_has_its_ip_as_a_32_and_a_static_gateway(lab: minilab.MiniLab) -> None:
    pod = lab.pods[0]
    (eth0,) = _ip_json(pod.netns, "addr", "show", "dev", "eth0")
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"] == [
        (str(pod.ip), 32)
    ]
    routes = {r["dst"]: r for r in _ip_json(pod.netns, "route", "show")}
    assert routes["default"]["gateway"] == "169.254.1.1"
    assert routes["169.254.1.1"]["scope"] == "link"
    (gateway,) = _ip_json(pod.netns, "neigh", "show", "dev", "eth0")
    assert (gateway["dst"], gateway["lladdr"]) == ("169.254.1.1", links.HOST_VETH_MAC)
    assert gateway["state"] == ["PERMANENT"]


def test_a_node_routes_each_local_pod_to_its_veth_and_forwards(lab: minilab.MiniLab) -> None:
    node = lab.nodes[0]
    routes = {r["dst"]: r for r in _ip_json(node, "route", "show")}
    for j, pod in enumerate(p for p in lab.pods if p.node == node):
        assert routes[str(pod.ip)]["dev"] == f"cali{j}"
        assert links.read_sysctl(node, f"net.ipv4.conf.cali{j}.rp_filter") == "1"
    assert links.read_sysctl(node, "net.ipv4.ip_forward") == "1"
    assert "default" not in routes, "a node netns must never route into the host"


def test_backend_state_matches_flannel(lab: minilab.MiniLab) -> None:
    node = lab.nodes[0]
    routes = {r["dst"]: r for r in _ip_json(node, "route", "show")}
    peer_cidr = "10.244.2.0/24"
    if lab.backend == "host-gw":
        assert (routes[peer_cidr]["gateway"], routes[peer_cidr]["dev"]) == ("10.250.0.2", "eth0")
        return
    assert routes[peer_cidr]["gateway"] == "10.244.2.0"
    assert routes[peer_cidr]["dev"] == minilab.VXLAN_IFNAME
    assert "onlink" in routes[peer_cidr]["flags"]
    (vxlan,) = _ip_json(node, "link", "show", "dev", minilab.VXLAN_IFNAME)
    info = vxlan["linkinfo"]["info_data"]
    assert (info["id"], info["local"], info["port"], info["learning"]) == (
        1, "10.250.0.1", 4789, False,
    )
    assert vxlan["mtu"] == 1450
    fdb = subprocess.run(
        ["ip", "netns", "exec", node, "bridge", "-j", "fdb", "show", "dev", minilab.VXLAN_IFNAME],
        check=True, capture_output=True, text=True,
    ).stdout
    assert {(e["mac"], e.get("dst")) for e in json.loads(fdb) if "permanent" in e["state"]} >= {
        ("02:00:0a:fa:00:02", "10.250.0.2")
    }
    neigh = _ip_json(node, "neigh", "show", "dev", minilab.VXLAN_IFNAME)
    assert [(n["dst"], n["lladdr"], n["state"]) for n in neigh] == [
        ("10.244.2.0", "02:00:0a:fa:00:02", ["PERMANENT"])
    ]


def test_a_spoofed_source_address_is_dropped_by_rp_filter(
    lab: minilab.MiniLab, servers: PodServers
) -> None:
    src, dst = lab.pods[0], lab.pods[3]
    spoofed = IPv4Address("10.244.1.99")
    subprocess.run(
        ["ip", "-n", src.netns, "addr", "add", f"{spoofed}/32", "dev", "eth0"], check=True
    )

    def send_from(address: IPv4Address) -> bytes | None:
        with entered(src.netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.bind((str(address), 0))
            sock.sendto(b"x", (str(dst.ip), 53))
            sock.settimeout(TIMEOUT_S)
            try:
                return sock.recv(100)
            except TimeoutError:
                return None

    assert send_from(src.ip) == f"{dst.name} 53/UDP\n".encode()
    before = servers.replies
    assert send_from(spoofed) is None
    assert servers.replies == before, "the spoofed datagram must not reach the server"


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda node, pod: links.bring_up_loopback(pod), id="lo in a missing netns"),
        pytest.param(
            lambda node, pod: links.add_pod_link(
                node, pod, host_ifname="cali0", pod_ip=IPv4Address("10.244.1.2")
            ),
            id="a pod link into a missing pod netns",
        ),
        pytest.param(
            lambda node, pod: links.write_sysctl(pod, "net.ipv4.ip_forward", "1"),
            id="a sysctl in a missing netns",
        ),
    ],
)
def test_a_missing_netns_is_an_error_and_is_not_created(
    netns_prefix: str, action: Callable[[str, str], None]
) -> None:
    node, pod = netns_prefix + "node", netns_prefix + "ghost"
    create_netns(node)
    try:
        with pytest.raises(DataplaneError, match=f"`{netns_prefix}"):
            action(node, pod)
        assert list_netns(netns_prefix) == [node]
        assert [link["ifname"] for link in _ip_json(node, "link", "show")] == ["lo"]
    finally:
        delete_netns(node)


def test_a_failed_pod_link_leaves_no_veth_behind(netns_prefix: str) -> None:
    node, pod = netns_prefix + "node", netns_prefix + "pod"
    create_netns(node)
    create_netns(pod)
    try:
        links.add_pod_link(node, pod, host_ifname="cali0", pod_ip=IPv4Address("10.244.1.2"))
        with pytest.raises(DataplaneError, match="cali0"):  # eth0 exists in the pod already
            links.add_pod_link(node, pod, host_ifname="cali0", pod_ip=IPv4Address("10.244.1.3"))
        other = netns_prefix + "pod2"
        create_netns(other)
        # The same address twice on a node: the pod side works, the host route fails.
        with pytest.raises(DataplaneError, match=r"10\.244\.1\.2/32"):
            links.add_pod_link(node, other, host_ifname="cali1", pod_ip=IPv4Address("10.244.1.2"))
        assert [link["ifname"] for link in _ip_json(node, "link", "show")] == ["lo", "cali0"]
        assert [link["ifname"] for link in _ip_json(other, "link", "show")] == ["lo"]
    finally:
        for name in list_netns(netns_prefix):
            delete_netns(name)


def _reaches(src: minilab.MiniPod, dst: minilab.MiniPod) -> tuple[bool, str]:
    (result,) = probe_many([Probe(src.netns, dst.ip, 80, Protocol.TCP)], timeout_s=TIMEOUT_S)
    return result.connected, result.detail


def test_a_peer_can_be_removed_entry_by_entry_and_added_again(
    lab: minilab.MiniLab, servers: PodServers
) -> None:
    node, src, dst = lab.nodes[0], lab.pods[0], lab.pods[2]
    peer_cidr, peer_vtep = IPv4Network("10.244.2.0/24"), IPv4Address("10.244.2.0")
    peer_mac = "02:00:0a:fa:00:02"
    assert _reaches(src, dst)[0]
    links.delete_route(node, peer_cidr)
    if lab.backend == "vxlan":
        links.delete_neighbour(node, ifname=minilab.VXLAN_IFNAME, ip=peer_vtep)
        links.delete_fdb_entry(
            node, ifname=minilab.VXLAN_IFNAME, mac=peer_mac, dst_ip=IPv4Address("10.250.0.2")
        )
    connected, detail = _reaches(src, dst)
    assert not connected
    assert detail.startswith("unreachable"), "no route: the node answers ICMP unreachable"
    if lab.backend == "vxlan":
        links.add_vxlan_peer(
            node, ifname=minilab.VXLAN_IFNAME, peer_mac=peer_mac,
            peer_underlay_ip=IPv4Address("10.250.0.2"), peer_vtep_ip=peer_vtep,
            peer_pod_cidr=peer_cidr,
        )
    else:
        links.add_host_gw_route(
            node, peer_pod_cidr=peer_cidr, peer_underlay_ip=IPv4Address("10.250.0.2")
        )
    assert _reaches(src, dst)[0]


def test_deleting_a_missing_entry_is_an_error_unless_missing_ok(lab: minilab.MiniLab) -> None:
    node, absent = lab.nodes[0], IPv4Network("10.244.99.0/24")
    links.delete_route(node, absent, missing_ok=True)
    with pytest.raises(DataplaneError, match=r"deleting the route to 10\.244\.99\.0/24"):
        links.delete_route(node, absent)
    if lab.backend == "vxlan":
        links.delete_neighbour(
            node, ifname=minilab.VXLAN_IFNAME, ip=IPv4Address("10.244.99.0"), missing_ok=True
        )
        links.delete_fdb_entry(
            node, ifname=minilab.VXLAN_IFNAME, mac="02:00:00:00:00:99",
            dst_ip=IPv4Address("10.250.0.99"), missing_ok=True,
        )
        with pytest.raises(DataplaneError, match="deleting neighbour"):
            links.delete_neighbour(node, ifname=minilab.VXLAN_IFNAME, ip=IPv4Address("10.244.99.0"))
