"""LabPlan: placement, addresses, names and routes, from manifests alone (no kernel)."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

import pytest

from kanal.errors import IpamExhaustedError, LabError
from kanal.ipam import IpamState
from kanal.lab.plan import LabPlan, PeerRoute, plan_change, plan_lab
from kanal.model.lab import LabSpec
from kanal.model.parse import parse_documents

from .docs import Doc, deny_ingress, lab, model, namespace, pod

PREFIX = "kt00-"


def plan(docs: Sequence[Doc], *, before: LabPlan | None = None, spec: Doc | None = None) -> LabPlan:
    manifests = parse_documents((f"doc {i}", d) for i, d in enumerate([*docs, spec or lab()]))
    assert manifests.lab is not None
    return plan_lab(
        manifests.lab,
        PREFIX,
        manifests,
        placement=before.placement if before else {},
        ipam=before.ipam if before else IpamState(),
    )


def nodes_of(p: LabPlan) -> dict[str, str]:
    return {pod.key: pod.node for pod in p.pods}


def test_pods_without_a_node_name_go_round_robin_in_key_order() -> None:
    p = plan(model(), spec=lab(nodes=3))
    assert nodes_of(p) == {
        "x/a": "node-1", "x/b": "node-2", "x/c": "node-3",
        "y/a": "node-1", "y/b": "node-2", "y/c": "node-3",
        "z/a": "node-1", "z/b": "node-2", "z/c": "node-3",
    }


def test_a_node_name_is_respected_and_the_others_fill_the_least_loaded_nodes() -> None:
    docs = [pod("x/a", node="node-2"), pod("x/b", node="node-2"), pod("x/c"), pod("x/d")]
    assert nodes_of(plan(docs)) == {
        "x/a": "node-2", "x/b": "node-2", "x/c": "node-1", "x/d": "node-1",
    }


def test_a_later_plan_keeps_every_pod_where_it_was_with_its_address() -> None:
    first = plan(model(pods=("a", "b")))
    second = plan([*model(pods=("a", "b")), pod("x/new")], before=first)
    kept = {p.key: (p.node, p.ip, p.netns) for p in first.pods}
    assert {p.key: (p.node, p.ip, p.netns) for p in second.pods if p.key in kept} == kept
    assert second.placement["x/new"] == "node-1"  # 3 pods each before: the first node


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        pytest.param(
            [pod("x/a", node="node-9")],
            "pod `x/a`: spec.nodeName `node-9` is not a node of lab `t` (nodes: node-1, node-2)",
            id="an unknown node",
        ),
    ],
)
def test_a_pod_on_an_unknown_node_is_refused(docs: list[Doc], message: str) -> None:
    with pytest.raises(LabError) as caught:
        plan(docs)
    assert str(caught.value) == message


def test_a_pod_cannot_move_to_another_node() -> None:
    first = plan([pod("x/a")])
    with pytest.raises(LabError, match=r"pod `x/a` runs on `node-1`, spec\.nodeName says `node-2`"):
        plan([pod("x/a", node="node-2")], before=first)


def test_node_ipam_gives_each_node_a_block_its_vtep_its_first_address_and_routes() -> None:
    p = plan(model(pods=("a", "b")))
    blocks = {n.name: n.block for n in p.nodes}
    assert blocks == {
        "node-1": IPv4Network("10.244.0.0/24"), "node-2": IPv4Network("10.244.1.0/24")
    }
    assert [n.vtep_ip for n in p.nodes] == [IPv4Address("10.244.0.0"), IPv4Address("10.244.1.0")]
    assert all(pod.ip in blocks[pod.node] for pod in p.pods)  # type: ignore[operator]
    assert p.routes("node-1") == (PeerRoute(IPv4Network("10.244.1.0/24"), "node-2"),)


def test_namespace_ipam_addresses_a_pod_from_its_namespace_wherever_it_runs() -> None:
    p = plan(model(pods=("a", "b")), spec=lab(ipam="namespace"))
    by_key = {pod.key: pod for pod in p.pods}
    assert by_key["x/a"].node != by_key["x/b"].node
    assert {str(by_key[k].ip) for k in ("x/a", "x/b")} == {"10.244.0.1", "10.244.0.2"}
    assert str(by_key["y/a"].ip) == "10.244.1.1"
    assert all(n.block is None for n in p.nodes)
    remote = [pod for pod in p.pods if pod.node == "node-2"]
    assert p.routes("node-1") == tuple(
        PeerRoute(IPv4Network(f"{pod.ip}/32"), "node-2") for pod in remote
    )


def test_every_name_starts_with_the_prefix_and_host_veths_fit_ifnamsiz() -> None:
    long = "p" * 250
    p = plan([*model(), namespace("long"), pod(f"long/{long}", pod="long")])
    for netns in p.all_netns():
        assert netns.startswith(PREFIX) and len(netns) <= 255
    assert {len(pod.host_ifname) for pod in p.pods} == {12}
    assert len({pod.host_ifname for pod in p.pods}) == len(p.pods)
    cut = p.pods[0].netns
    assert len(cut) == 255 and cut.startswith("kt00-p-long.ppp") and cut[-11] == "-"


def test_manifest_addresses_are_ignored_with_a_note_and_the_engine_sees_lab_ones() -> None:
    p = plan([pod("x/a", ip="10.0.1.1"), pod("x/b", ip="10.0.1.2"), pod("x/c")])
    assert p.notes == (
        "ignored status.podIP(s) of 2 pod(s) (`x/a`, `x/b`): the lab assigns addresses from "
        "10.244.0.0/16",
    )
    seen = {q.key: (q.node_name, [str(ip) for ip in q.ips]) for q in p.manifests.pods}
    assert seen == {
        "x/a": ("node-1", ["10.244.0.1"]),
        "x/b": ("node-2", ["10.244.1.1"]),
        "x/c": ("node-1", ["10.244.0.2"]),
    }
    assert [(n.name, [str(ip) for ip in n.ips]) for n in p.manifests.nodes] == [
        ("node-1", ["192.168.100.1"]),
        ("node-2", ["192.168.100.2"]),
    ]


def test_a_full_block_is_a_clear_error() -> None:
    docs = [pod(f"x/p{i}", node="node-1") for i in range(3)]
    with pytest.raises(IpamExhaustedError, match=r"block 10\.244\.0\.0/30 of `node-1` is full"):
        plan(docs, spec=lab(blockPrefix=30))


def test_addresses_and_namespace_blocks_are_released_when_their_pods_go() -> None:
    first = plan([pod("x/a"), pod("y/a")], spec=lab(ipam="namespace"))
    second = plan([pod("x/a")], before=first, spec=lab(ipam="namespace"))
    assert set(second.ipam.addresses) == {"x/a"}
    assert set(second.ipam.blocks) == {"x"}
    assert set(first.ipam.addresses) == {"x/a", "y/a"}, "the earlier plan is not changed"


def test_the_underlay_avoids_a_cluster_cidr_that_overlaps_it() -> None:
    p = plan([pod("x/a")], spec=lab(clusterCIDR="192.168.0.0/16"))
    assert p.underlay_network == IPv4Network("172.31.100.0/24")
    assert str(p.nodes[0].underlay_ip) == "172.31.100.1/24"


def test_defaults_without_a_lab_document() -> None:
    manifests = parse_documents([("d", pod("x/a"))])
    p = plan_lab(LabSpec(), PREFIX, manifests, placement={}, ipam=IpamState())
    assert [n.netns for n in p.nodes] == ["kt00-n-node-1", "kt00-n-node-2"]
    assert p.mtu == 1450 and p.underlay_netns == "kt00-underlay"


# -- changes -----------------------------------------------------------------------------------


def test_a_label_or_policy_change_changes_no_pod_and_no_server() -> None:
    first = plan(model())
    relabelled = [*model()[:-1], pod("z/c", pod="c", role="new"), deny_ingress("x/deny")]
    change = plan_change(first, plan(relabelled, before=first))
    assert (change.removed, change.added, change.servers) == ((), (), ())


def test_a_port_change_restarts_only_that_nodes_servers() -> None:
    first = plan(model())
    ported = [*model()[:-1], pod("z/c", ports=((81, "TCP"),), pod="c")]
    change = plan_change(first, plan(ported, before=first))
    assert change.servers == (first.placement["z/c"],)
    assert not change.topology_changed


def test_a_removed_pod_and_a_new_one_with_its_address_are_a_removal_and_an_addition() -> None:
    spec = lab(ipam="namespace")
    first = plan(model(), spec=spec)
    second = plan([*model()[:-1], pod("z/d", pod="d")], before=first, spec=spec)
    change = plan_change(first, second)
    assert [p.key for p in change.removed] == ["z/c"] and [p.key for p in change.added] == ["z/d"]
    assert change.removed[0].ip == change.added[0].ip, "the released address is reused"
