"""Small labs on every backend and IPAM mode: traffic on one node and across nodes, enforced in
both directions, on TCP, UDP and SCTP; pods removed and added; ipBlock with except; failures.

Layout of `FOUR` (nodeName fixed, so both kinds of path exist):

    node-1: x/a, y/a        node-2: x/b, y/b
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kanal.dataplane.netns import list_netns
from kanal.errors import DataplaneError, LabError
from kanal.lab import build
from kanal.lab.lab import Lab
from kanal.model.objects import Protocol

from .docs import Doc, deny_ingress, lab, namespace, pod, policy, write
from .running import Running, allowed, assert_removed, running_lab

pytestmark = pytest.mark.kernel

TCP, UDP, SCTP = Protocol.TCP, Protocol.UDP, Protocol.SCTP
ALL_80 = ((80, TCP), (80, UDP), (80, SCTP))
FOUR = [
    namespace("x", ns="x"),
    namespace("y", ns="y"),
    pod("x/a", node="node-1", pod="a"),
    pod("y/a", node="node-1", pod="a"),
    pod("x/b", node="node-2", pod="b"),
    pod("y/b", node="node-2", pod="b"),
]
DENY_EGRESS_Y_B = policy(
    "y/deny-egress-b", {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"]}
)
COMBINATIONS = [
    pytest.param("vxlan", "node", id="vxlan, node IPAM"),
    pytest.param("vxlan", "namespace", id="vxlan, namespace IPAM"),
    pytest.param("host-gw", "node", id="host-gw, node IPAM"),
    pytest.param("host-gw", "namespace", id="host-gw, namespace IPAM"),
]


@pytest.mark.parametrize(("backend", "ipam"), COMBINATIONS)
def test_same_node_and_cross_node_traffic_is_enforced_both_ways(
    netns_prefix: str, tmp_path: Path, backend: str, ipam: str
) -> None:
    docs = [*FOUR, lab(backend=backend, ipam=ipam), deny_ingress("x/deny-a", pod="a")]
    with running_lab(netns_prefix, tmp_path, [*docs, DENY_EGRESS_Y_B]) as running:
        report = running.agreeing_probe(ALL_80)
        for probe in ("80/TCP", "80/UDP", "80/SCTP"):
            cells = {
                "same node, allowed": allowed(report, "x/a", "y/a", probe),
                "cross node, allowed": allowed(report, "y/a", "x/b", probe),
                "same node, ingress denied": allowed(report, "y/a", "x/a", probe),
                "cross node, ingress denied": allowed(report, "x/b", "x/a", probe),
                "same node, egress denied": allowed(report, "y/b", "x/b", probe),
                "cross node, egress denied": allowed(report, "y/b", "y/a", probe),
            }
            assert cells == {
                "same node, allowed": True,
                "cross node, allowed": True,
                "same node, ingress denied": False,
                "cross node, ingress denied": False,
                "same node, egress denied": False,
                "cross node, egress denied": False,
            }, probe
        if backend == "vxlan":
            _assert_the_underlay_is_not_tracked(running)
        _remove_and_add_a_pod(running, ipam)


def _assert_the_underlay_is_not_tracked(running: Running) -> None:
    """`udp dport 4789 notrack`: cross-node pod flows leave no conntrack entry for the VXLAN
    packets that carry them (only the pod flows themselves are tracked)."""
    if shutil.which("conntrack") is None:
        pytest.skip("conntrack(8) is not installed")
    for node in running.lab.status().nodes:
        listed = subprocess.run(
            ["ip", "netns", "exec", node.netns, "conntrack", "-L", "-p", "udp"],
            capture_output=True, text=True, check=True,
        ).stdout
        assert "4789" not in listed, listed
        assert "10.244." in listed, "the pod flows themselves are tracked"


def _remove_and_add_a_pod(running: Running, ipam: str) -> None:
    """x/b (node-2) goes, then x/c comes on node-1: under namespace IPAM x/c gets x/b's
    address, so the route to it moves from node-1 (a /32 to node-2) to node-2 (one to node-1)."""
    before = running.pod("x/b").ip
    change = running.delete([pod("x/b", node="node-2", pod="b")])
    assert change.removed == ("x/b",) and change.restarted == ("node-2",)
    assert not [n for n in list_netns(running.prefix) if n.endswith("p-x.b")]
    change = running.apply([pod("x/c", node="node-1", pod="c")])
    assert change.added == ("x/c",) and change.restarted == ("node-1",)
    if ipam == "namespace":
        assert running.pod("x/c").ip == before, "the lowest free address of namespace x"
    report = running.agreeing_probe([(80, TCP)])
    assert allowed(report, "x/c", "y/b") is True, "cross node, both ways"
    assert allowed(report, "y/a", "x/c") is True, "same node"


def test_an_ipblock_with_except_admits_the_cidr_but_the_excepted_ranges(
    netns_prefix: str, tmp_path: Path
) -> None:
    """Namespace IPAM: a namespace is a CIDR (x: 10.244.0.0/24, y: 10.244.1.0/24)."""
    docs = [*FOUR, pod("y/c", node="node-2", pod="c"), lab(ipam="namespace", backend="host-gw")]
    with running_lab(netns_prefix, tmp_path, docs) as running:
        y_c = running.pod("y/c").ip
        assert [running.pod(k).ip for k in ("x/a", "y/a")] == ["10.244.0.1", "10.244.1.1"]
        running.apply([
            policy("y/from-cluster-but-x", {
                "podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"ipBlock": {
                    "cidr": "10.244.0.0/16", "except": ["10.244.0.0/24"]}}]}],
            }),
            policy("x/to-y-but-c", {
                "podSelector": {"matchLabels": {"pod": "b"}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {
                    "cidr": "10.244.1.0/24", "except": [f"{y_c}/32"]}}]}],
            }),
        ])
        report = running.agreeing_probe([(80, TCP)])
        assert allowed(report, "y/b", "y/a") is True
        assert allowed(report, "x/a", "y/a") is False, "x's block is excepted"
        assert allowed(report, "x/b", "y/b") is True
        assert allowed(report, "x/b", "y/c") is False, "y/c's /32 is excepted"
        assert allowed(report, "x/b", "x/a") is False, "outside the egress cidr"


def test_a_failed_up_removes_what_it_built(
    netns_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = build.add_pods

    def fail_after_one(plan: build.LabPlan, pods: object, *, peer_routes: bool) -> None:
        real(plan, plan.pods[:1], peer_routes=peer_routes)
        raise DataplaneError("the kernel said no (test)")

    monkeypatch.setattr(build, "add_pods", fail_after_one)
    state_dir = tmp_path / "state"
    lab_ = Lab(state_dir, prefix=netns_prefix)
    with pytest.raises(LabError, match=r"building lab `t` failed, removed what was built: .*no"):
        lab_.up([write(tmp_path / "up.yaml", [*FOUR, lab()])])
    assert list_netns(netns_prefix) == [] and not state_dir.exists()


def test_down_works_after_a_crash_lost_the_state_and_twice(
    netns_prefix: str, tmp_path: Path
) -> None:
    docs: list[Doc] = [*FOUR, lab()]
    with running_lab(netns_prefix, tmp_path, docs) as running:
        running.lab.store.path.unlink()  # as if the state had been lost
        orphan = Lab(running.state_dir, prefix=netns_prefix)
        removed = orphan.down()
        assert len(removed.netns) == 7
        assert len(removed.processes) == 4  # two pod servers, two agents found by their store
        assert_removed(running)
        assert orphan.down().netns == ()


def test_up_refuses_a_prefix_in_use_and_a_second_lab_in_one_directory(
    netns_prefix: str, tmp_path: Path
) -> None:
    with running_lab(netns_prefix, tmp_path, [*FOUR, lab()]) as running:
        with pytest.raises(LabError, match="already up with its state in"):
            running.lab.up([str(running.files / "up.yaml")])
        other = Lab(tmp_path / "other", prefix=netns_prefix)
        with pytest.raises(LabError, match=f"exist already .*lab down --prefix {netns_prefix}"):
            other.up([str(running.files / "up.yaml")])
        assert not (tmp_path / "other").exists()


def test_down_leaves_a_lab_whose_prefix_extends_its_own(netns_prefix: str, tmp_path: Path) -> None:
    """Lab `a` (prefix P) and a lab with prefix P + "b-": `down` of the first takes only the
    names its plan can give (P + underlay, n-*, p-*), not P + "b-..."."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_lab(netns_prefix, tmp_path / "a", [*FOUR, lab("a")]) as first,
        running_lab(f"{netns_prefix}b-", tmp_path / "b", [*FOUR, lab("b")]) as second,
    ):
        first.lab.down()
        assert list_netns(netns_prefix) == list_netns(f"{netns_prefix}b-")
        second.agreeing_probe([(80, TCP)])


def test_pods_own_udp_4789_is_stateful_on_a_vxlan_lab(netns_prefix: str, tmp_path: Path) -> None:
    vxlan_port = ((4789, "UDP"),)
    docs = [
        pod("x/a", node="node-1", ports=vxlan_port, pod="a"),
        pod("y/b", node="node-2", ports=vxlan_port, pod="b"),
        policy("x/deny", {"podSelector": {}}),  # x/a may send, but admits nothing in
        lab(),
    ]
    with running_lab(netns_prefix, tmp_path, docs) as running:
        running.agreeing_probe([(4789, UDP)])


def test_a_burst_of_refused_probes_is_still_refused_not_dropped(
    netns_prefix: str, tmp_path: Path
) -> None:
    """Pods that serve TCP 80 only, probed on 12 UDP and 12 SCTP ports: every refusal comes back
    (no ICMP rate limit in lab pods), so nothing looks dropped."""
    tcp_only = ((80, "TCP"),)
    docs = [pod("x/a", node="node-1", ports=tcp_only), pod("x/b", node="node-2", ports=tcp_only)]
    with running_lab(netns_prefix, tmp_path, [*docs, lab()]) as running:
        closed = [(port, proto) for proto in (UDP, SCTP) for port in range(1001, 1013)]
        report = running.agreeing_probe(closed, sources=["x/a"], destinations=["x/b"])
        assert report.connections == 24
        assert all(t.measured[0][1] for t in report.tables)
