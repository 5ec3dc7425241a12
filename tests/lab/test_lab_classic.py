"""The core proof, on one shared lab (3 nodes, VXLAN, node IPAM): upstream's classic model
(namespaces x, y, z × pods a, b, c serving 80 and 81 on TCP, UDP and SCTP, spread round-robin)
with scenario policies applied in turn; real packets agree with the engine and with the
scenario's truth table (cyclonus's ground truth). Then changes to a running lab: labels (set
element deltas only, pods kept), policy updates, pods added and removed, an established
connection across changes, rejected input, and a table that drifted in the kernel.

Each test leaves the lab as it found it: the model without policies (`restore`).
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.classic import load_scenarios, model_docs, parse_tables, tweaks_from
from kanal.cli.main import main
from kanal.dataplane.netns import entered
from kanal.dataplane.nft import Nft
from kanal.errors import LabError, ManifestError
from kanal.model.objects import Protocol

from .docs import Doc, deny_ingress, namespace, pod, policy
from .running import Running, allowed, netns_inode, running_lab

pytestmark = pytest.mark.kernel

SCENARIOS = Path(__file__).parents[1] / "engine" / "scenarios"
CHOSEN = {
    "default deny ingress isolates every pod of x on every protocol",
    "default deny egress isolates every pod of x for egress",
    "a podSelector peer alone admits only matching pods of the policy's namespace",
    "a namespaceSelector peer alone admits every pod of the matching namespaces",
    "podSelector and namespaceSelector in one peer are ANDed",
    "podSelector and namespaceSelector as two peers are ORed",
    "every pod of x admits ingress on the named port serve-81-tcp only",
    "a named ingress port resolves against each destination's own container ports",
    "an ingress endPort range admits every port from port to endPort",
    "an egress endPort range admits every port from port to endPort",
    "a UDP rule on port 81 admits UDP only",
    "a policy admitting only SCTP 80 still isolates the pod for TCP",
    "a pod label change is seen through the podSelector",
    "a namespace label change is seen through the namespaceSelector",
    "Allow, Deny and Pass of one ANP meet NetworkPolicies and the BANP",
    "a Pass skips the remaining ANPs and lets the BANP decide for pods no NetworkPolicy isolates",
    "the BANP default-denies ingress except where a NetworkPolicy isolates the pod",
}
SCENARIO_PARAMS = [
    p for p in load_scenarios(SCENARIOS) + load_scenarios(SCENARIOS / "admin") if p.id in CHOSEN
]


def unplaced(docs: list[Doc]) -> list[Doc]:
    """The model without nodeName and addresses: the lab places and addresses the pods."""
    docs = copy.deepcopy(docs)
    for doc in docs:
        if doc["kind"] == "Pod":
            del doc["spec"]["nodeName"]
            doc.pop("status", None)
    return docs


MODEL = unplaced(model_docs())


@pytest.fixture(scope="module")
def classic(
    module_netns_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    spec = {"apiVersion": "kanal.io/v1alpha1", "kind": "Lab", "metadata": {"name": "classic"},
            "spec": {"nodes": 3}}
    with running_lab(module_netns_prefix, tmp_path_factory.mktemp("classic"), [*MODEL, spec]) as r:
        yield r


@pytest.fixture
def lab(classic: Running) -> Iterator[Running]:
    """The shared lab; afterwards back to the bare model: policies and extra pods deleted,
    the model's labels applied again."""
    yield classic
    state = classic.lab.store.load()
    assert state is not None
    pods = [d["metadata"] for d in MODEL if d["kind"] == "Pod"]
    model_keys = {f"Pod/{m['namespace']}/{m['name']}" for m in pods}
    extra = [
        d.raw for d in state.documents.values()
        if d.kind not in ("Namespace", "Pod") or (d.kind == "Pod" and d.key not in model_keys)
    ]
    if extra:
        classic.delete(extra)
    classic.apply(MODEL)


@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_the_kernel_enforces_the_scenario_exactly_as_predicted(
    lab: Running, scenario: dict[str, Any]
) -> None:
    cluster = scenario.get("cluster") or {}
    lab.apply([*unplaced(model_docs(tweaks=tweaks_from(cluster))), *scenario["policies"]])
    tables = parse_tables(scenario["expect"])
    report = lab.agreeing_probe([(t.port, t.protocol) for t in tables])
    for want, got in zip(tables, report.tables, strict=True):
        assert got.pods == want.pods
        measured = tuple(tuple(bool(c) for c in row) for row in got.measured)
        assert measured == want.allowed, f"{want.probe} differs from the scenario's truth table"


def test_the_model_spreads_over_the_nodes_and_every_pod_serves_its_ports(lab: Running) -> None:
    status = lab.lab.status()
    assert {n.name: n.pods for n in status.nodes} == {"node-1": 3, "node-2": 3, "node-3": 3}
    assert all(n.server_running for n in status.nodes) and not status.problems
    report = lab.agreeing_probe([(80, Protocol.TCP), (81, Protocol.SCTP)])
    assert all(c for t in report.tables for row in t.measured for c in row)


def test_a_label_change_keeps_pods_and_addresses_and_sends_only_element_deltas(
    lab: Running,
) -> None:
    lab.apply([policy("x/from-role-client", {
        "podSelector": {},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}},
                               "namespaceSelector": {"matchLabels": {"team": "blue"}}}]}],
    })])
    before = {p.name: (p.ip, netns_inode(p.netns)) for p in lab.lab.status().pods}
    assert allowed(lab.probe([(80, Protocol.TCP)], sources=["y/b"]), "y/b", "x/a") is False
    relabelled = copy.deepcopy(MODEL)
    for doc in relabelled:
        if doc["metadata"]["name"] == "y" and doc["kind"] == "Namespace":
            doc["metadata"]["labels"]["team"] = "blue"
        if doc["kind"] == "Pod" and (doc["metadata"]["namespace"], doc["metadata"]["name"]) == (
            "y", "b"):
            doc["metadata"]["labels"]["role"] = "client"
    change = lab.apply(relabelled)
    assert {u.kind for u in change.updates} <= {"delta", "unchanged"}, change.updates
    assert any(u.kind == "delta" for u in change.updates)
    assert (change.added, change.removed, change.restarted) == ((), (), ())
    assert {p.name: (p.ip, netns_inode(p.netns)) for p in lab.lab.status().pods} == before
    report = lab.agreeing_probe([(80, Protocol.TCP)], sources=["y/b", "y/a"])
    assert allowed(report, "y/b", "x/a") is True
    assert allowed(report, "y/a", "x/a") is False


def test_a_policy_update_takes_effect(lab: Running) -> None:
    lab.apply([deny_ingress("x/guard")])
    assert allowed(lab.probe([(80, Protocol.TCP)], sources=["z/a"]), "z/a", "x/b") is False
    change = lab.apply([policy("x/guard", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]})])
    assert "load" in {u.kind for u in change.updates}, "a new rule is a structural change"
    report = lab.agreeing_probe([(80, Protocol.TCP)], sources=["z/a", "y/a"])
    assert allowed(report, "z/a", "x/b") is True
    assert allowed(report, "y/a", "x/b") is False


def test_a_new_pod_gets_a_netns_an_address_and_servers_and_leaves_cleanly(lab: Running) -> None:
    new = pod("x/d", ports=((8080, "TCP"),), pod="d")
    change = lab.apply([new])
    assert change.added == ("x/d",) and len(change.restarted) == 1
    d = lab.pod("x/d")
    report = lab.agreeing_probe([(8080, Protocol.TCP)], sources=["y/a"], destinations=["x/d"])
    detail = lab.probe([(8080, Protocol.TCP)], sources=["y/a"], destinations=["x/d"])
    assert allowed(report, "y/a", "x/d") is True and detail.connections == 1
    change = lab.delete([new])
    assert change.removed == ("x/d",)
    state = lab.lab.store.load()
    assert state is not None and "x/d" not in state.ipam.addresses
    assert d.netns not in {p.netns for p in lab.lab.status().pods}


def test_an_established_connection_survives_policy_and_label_changes(lab: Running) -> None:
    """x/a -> y/b on a test port; ingress of y/b admits x/a only. A new unrelated policy
    (whole tables reloaded) and a label change (deltas) later, the connection still talks."""
    lab.apply([policy("y/only-x-a", {
        "podSelector": {"matchLabels": {"pod": "b"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}},
                               "podSelector": {"matchLabels": {"pod": "a"}}}]}],
    })])
    with _echo_server(lab.pod("y/b").netns, lab.pod("y/b").ip, 9999) as ready:
        ready.wait(5)
        with entered(lab.pod("x/a").netns):
            client = socket.create_connection((lab.pod("y/b").ip, 9999), timeout=2)
        with client:
            assert _echo(client, b"one")
            reload = lab.apply([deny_ingress("z/unrelated")])
            assert "load" in {u.kind for u in reload.updates}
            relabelled = copy.deepcopy(MODEL)
            x_c = next(d for d in relabelled if d["metadata"].get("namespace") == "x"
                       and d["metadata"]["name"] == "c")
            x_c["metadata"]["labels"]["pod"] = "a"  # x/c joins the admitted set
            assert "delta" in {u.kind for u in lab.apply(relabelled).updates}
            assert _echo(client, b"two"), "the established connection was cut"
        report = lab.agreeing_probe([(80, Protocol.TCP)], sources=["x/b", "x/c"])
        assert allowed(report, "x/b", "y/b") is False, "new connections are still judged"
        assert allowed(report, "x/c", "y/b") is True


def _echo(client: socket.socket, data: bytes) -> bool:
    client.sendall(data)
    return client.recv(16) == data


class _echo_server:  # noqa: N801 - used as a context manager, reads like a function
    """One connection, echoed until closed, on a socket inside `netns`."""

    def __init__(self, netns: str, ip: str, port: int) -> None:
        with entered(netns):
            self.listener = socket.create_server((ip, port))
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> threading.Event:
        self.thread.start()
        return self.ready

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self.thread.join(5)

    def _serve(self) -> None:
        self.ready.set()
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(16):
                conn.sendall(data)


def test_a_rejected_input_changes_nothing(lab: Running, tmp_path: Path) -> None:
    before = lab.lab.store.path.read_bytes()
    bad = copy.deepcopy(deny_ingress("x/bad"))
    bad["spec"]["policyTypes"] = ["Sideways"]
    with pytest.raises(ManifestError, match="Sideways"):
        lab.apply([bad])
    with pytest.raises(LabError, match="not a node of lab `classic`"):
        lab.apply([pod("x/e", node="node-7")])
    with pytest.raises(LabError, match="nodeName cannot change"):
        lab.apply([pod("x/a", node="node-3" if lab.pod("x/a").node != "node-3" else "node-1")])
    with pytest.raises(LabError, match="Lab cannot change"):
        lab.apply([{"apiVersion": "kanal.io/v1alpha1", "kind": "Lab",
                    "metadata": {"name": "classic"}, "spec": {"nodes": 4}}])
    assert lab.lab.store.path.read_bytes() == before


def test_a_table_that_drifted_in_the_kernel_shows_as_mismatches_and_is_reloaded(
    lab: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kanal lab probe` exits 1 and lists the mismatches; the next change finds its delta
    refused by the kernel and reloads that node's whole table."""
    lab.apply([policy("x/from-clients", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "client"}}}]}]})])
    node = lab.pod("x/a").node
    with Nft(f"{lab.prefix}n-{node}") as nft:
        nft.run("delete table inet kanal")
    argv = ["lab", "probe", "--state-dir", str(lab.state_dir), "--port", "80", "--from", "y/a",
            "--timeout", "0.5", "-o", "json"]
    assert main(argv) == 1
    mismatch = {"from": "y/a", "to": "x/a", "port": 80, "protocol": "TCP", "measured": True,
                "expected": False}
    assert mismatch in json.loads(capsys.readouterr().out)["probes"][0]["mismatches"]
    relabelled = copy.deepcopy(MODEL)
    next(d for d in relabelled if d["metadata"].get("namespace") == "y")["metadata"]["labels"][
        "role"] = "client"
    updates = {u.node: u for u in lab.apply(relabelled).updates}
    assert updates[node].kind == "load" and updates[node].reason.startswith("delta refused")
    assert {u.kind for n, u in updates.items() if n != node} == {"delta"}
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["probes"][0]["allowed"][3][0] is True


def test_deleting_a_namespace_deletes_its_pods_and_policies(lab: Running) -> None:
    lab.apply([deny_ingress("z/guard")])
    change = lab.delete([namespace("z"), pod("q/nobody")])
    assert change.removed == ("z/a", "z/b", "z/c")
    assert change.notes == ("Pod q/nobody is not in the lab: nothing to delete",)
    state = lab.lab.store.load()
    assert state is not None and not [k for k in state.documents if "/z/" in k]
    assert all(not p.name.startswith("z/") for p in lab.lab.status().pods)
