"""What the lab writes into its datastore (no kernel): the agents' engine, built from the
stored documents alone, renders every node exactly as an engine built from the lab's plan; a
change writes only its difference, so objects put into the store directly stay."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from kanal.engine import PolicyEngine
from kanal.ipam import IpamState
from kanal.lab.enforce import open_store, store_documents, write_changes
from kanal.lab.plan import LabPlan, plan_lab
from kanal.lab.state import Document, parse_union, read_documents
from kanal.render import render_node, table_text
from kanal.store.api import ObjectRef

from .docs import Doc, deny_ingress, lab, model, namespace, pod, policy, write

NODE_PEERS = {
    "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
    "metadata": {"name": "kubelet"},
    "spec": {"priority": 5, "subject": {"namespaces": {}},
             "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"zone": "a"}}}]}]},
}
ZONED_NODE = {"apiVersion": "v1", "kind": "Node",
              "metadata": {"name": "node-1", "labels": {"zone": "a"}}}


def documents(tmp_path: Path, docs: Sequence[Doc]) -> list[Document]:
    _, found = read_documents([write(tmp_path / "in.yaml", docs)])
    return found


def plan_of(found: Sequence[Document]) -> LabPlan:
    manifests = parse_union(found)
    assert manifests.lab is not None
    return plan_lab(manifests.lab, "kt00-", manifests, placement={}, ipam=IpamState())


@pytest.mark.parametrize(
    "docs",
    [
        [*model(), deny_ingress("x/guard"), lab()],
        [*model(), policy("y/from-x", {"podSelector": {}, "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}]}]}),
         lab(nodes=3, ipam="namespace")],
        [*model(), NODE_PEERS, ZONED_NODE, pod("x/pinned", node="node-2", ip="10.9.9.9"),
         lab(backend="host-gw")],
    ],
    ids=["node ipam, a default deny", "namespace ipam, three nodes",
         "admin node peers, a declared Node, a pinned pod with its own address"],
)
def test_the_stored_documents_render_every_node_as_the_plan_does(
    tmp_path: Path, docs: list[Doc]
) -> None:
    found = documents(tmp_path, docs)
    plan = plan_of(found)
    with open_store(tmp_path) as store:
        write_changes(store, {}, store_documents(plan, found))
        from_store = PolicyEngine.from_manifests(store.manifests())
    from_plan = PolicyEngine.from_manifests(plan.manifests)
    for node in plan.spec.nodes:
        assert table_text(render_node(from_store, node)) == table_text(render_node(from_plan, node))


def test_pods_carry_their_node_and_lab_address_and_lab_documents_stay_out(tmp_path: Path) -> None:
    found = documents(tmp_path, [namespace("x"), pod("x/a", ip="10.9.9.9"), lab()])
    plan = plan_of(found)
    stored = store_documents(plan, found)
    assert sorted(str(ref) for ref in stored) == [
        "Namespace x", "Node node-1", "Node node-2", "Pod x/a"]
    placed = plan.pods[0]
    a = stored[ObjectRef("Pod", "x", "a")]
    assert (a["spec"]["nodeName"], a["status"]) == (placed.node, {"podIP": str(placed.ip)})


def test_a_change_writes_only_its_difference_and_keeps_objects_put_directly(
    tmp_path: Path,
) -> None:
    before = documents(tmp_path, [*model(pods=("a",)), deny_ingress("x/guard"), lab()])
    after = [d for d in before if d.name != "guard"]
    old, new = store_documents(plan_of(before), before), store_documents(plan_of(after), after)
    with open_store(tmp_path) as store:
        write_changes(store, {}, old)
        direct = store.apply([("mine.yaml", deny_ingress("y/mine"))])
        revision = write_changes(store, old, new)
        assert revision == direct.revision + 1
        assert write_changes(store, new, new) is None
        kept, _ = store.list("NetworkPolicy")
    assert [o.ref.display() for o in kept] == ["y/mine"]
