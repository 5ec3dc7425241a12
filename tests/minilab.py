"""A minimal lab topology for kernel tests, built only from `kanal.dataplane.links`.

It shows the order a real lab builder follows; it is not that builder (no IPAM, no policy):

    underlay netns:  bridge `br0`, one port `n<i>` per node
    node netns n<i>: eth0 10.250.0.<i+1>/24 on the underlay, pod CIDR 10.244.<i+1>.0/24,
                     VTEP `vxlan.kanal` 10.244.<i+1>.0/32 (vxlan backend)
    pod netns n<i>-p<j>: eth0 10.244.<i+1>.<j+2>/32 behind host veth `cali<j>`
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from subprocess import PIPE, Popen, TimeoutExpired

from kanal.dataplane import links
from kanal.dataplane.netns import create_netns, delete_netns

VXLAN_IFNAME = "vxlan.kanal"
VNI = 1


@dataclass(frozen=True)
class MiniPod:
    name: str
    netns: str
    ip: IPv4Address
    node: str


@dataclass
class MiniLab:
    prefix: str
    backend: str
    underlay: str
    nodes: list[str] = field(default_factory=list)
    pods: list[MiniPod] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # what teardown may delete

    def create(self, name: str) -> None:
        create_netns(name)
        self.created.append(name)

    def all_netns(self) -> list[str]:
        return [p.netns for p in self.pods] + self.nodes + [self.underlay]

    def node_of(self, pod: MiniPod) -> str:
        return pod.node


def _underlay_ip(i: int) -> IPv4Address:
    return IPv4Address(f"10.250.0.{i + 1}")


def _pod_cidr(i: int) -> IPv4Network:
    return IPv4Network(f"10.244.{i + 1}.0/24")


def _vtep_mac(i: int) -> str:
    return f"02:00:0a:fa:00:{i + 1:02x}"


def build(prefix: str, *, backend: str, nodes: int = 2, pods_per_node: int = 2) -> MiniLab:
    """Build the topology; on any failure everything already created is removed."""
    lab = MiniLab(prefix=prefix, backend=backend, underlay=f"{prefix}underlay")
    try:
        _build(lab, nodes, pods_per_node)
    except BaseException:
        teardown(lab)
        raise
    return lab


def _build(lab: MiniLab, nodes: int, pods_per_node: int) -> None:
    lab.create(lab.underlay)
    links.add_bridge(lab.underlay, "br0")
    for i in range(nodes):
        _build_node(lab, i, pods_per_node)
    for i in range(nodes):
        for j in range(nodes):
            if i != j:
                _add_peer(lab, i, j)


def _build_node(lab: MiniLab, i: int, pods_per_node: int) -> None:
    node = f"{lab.prefix}n{i}"
    lab.create(node)
    lab.nodes.append(node)
    links.bring_up_loopback(node)
    links.enable_routing(node)
    links.attach_to_underlay(
        node, lab.underlay, bridge="br0", port_ifname=f"n{i}",
        address=IPv4Interface(f"{_underlay_ip(i)}/24"),
    )
    mtu = 1500
    if lab.backend == "vxlan":
        links.add_vxlan(
            node, ifname=VXLAN_IFNAME, vni=VNI, local_ip=_underlay_ip(i), underlay_ifname="eth0",
            vtep_ip=_pod_cidr(i).network_address, mac=_vtep_mac(i),
        )
        mtu = 1500 - links.VXLAN_OVERHEAD
    for j in range(pods_per_node):
        pod = MiniPod(f"n{i}-p{j}", f"{node}-p{j}", _pod_cidr(i).network_address + j + 2, node)
        lab.create(pod.netns)
        lab.pods.append(pod)
        links.add_pod_link(node, pod.netns, host_ifname=f"cali{j}", pod_ip=pod.ip, mtu=mtu)


def _add_peer(lab: MiniLab, i: int, j: int) -> None:
    node = lab.nodes[i]
    if lab.backend == "vxlan":
        links.add_vxlan_peer(
            node, ifname=VXLAN_IFNAME, peer_mac=_vtep_mac(j), peer_underlay_ip=_underlay_ip(j),
            peer_vtep_ip=_pod_cidr(j).network_address, peer_pod_cidr=_pod_cidr(j),
        )
    else:
        links.add_host_gw_route(node, peer_pod_cidr=_pod_cidr(j), peer_underlay_ip=_underlay_ip(j))


def teardown(lab: MiniLab) -> None:
    """Delete every namespace the lab created (links, routes and neighbours go with them);
    never one that existed before a failed build."""
    for name in reversed(lab.created):
        delete_netns(name, missing_ok=True)


def start_servers(spec_path: Path, ready_path: Path, *, timeout_s: float = 10.0) -> Popen[str]:
    """Spawn `python -m kanal.lab.servers` and wait for its ready file (or its early exit)."""
    proc = Popen(
        [sys.executable, "-m", "kanal.lab.servers", "--spec", str(spec_path),
         "--ready-file", str(ready_path)],
        stdout=PIPE, stderr=PIPE, text=True,
    )
    deadline = time.monotonic() + timeout_s
    while not ready_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_servers(proc)
            _, err = proc.communicate()
            raise RuntimeError(f"pod servers did not become ready (exit {proc.returncode}): {err}")
        time.sleep(0.01)
    return proc


def stop_servers(proc: Popen[str]) -> int:
    """SIGTERM, wait, and return the exit code (kill after 5 s so nothing is left running)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
