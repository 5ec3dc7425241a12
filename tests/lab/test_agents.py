"""The lab runs one `kanal agent` per node: status shows them, `kanal label` / `kanal apply` on
the lab's store are enforced and predicted, a dead agent is reported and restarted, and a lab
change waits for every agent (and fails, naming the node, when one is gone).

Layout (nodeName fixed): node-1: x/a, y/a    node-2: x/b, y/b
"""

from __future__ import annotations

import os
import signal
from ipaddress import ip_address
from pathlib import Path

import pytest

from kanal.cli.main import main
from kanal.errors import LabError
from kanal.lab import enforce
from kanal.lab.enforce import open_store
from kanal.lab.prober import Probe, probe_many
from kanal.model.objects import Protocol

from .docs import deny_ingress, lab, namespace, pod, policy
from .running import allowed, running_lab

pytestmark = pytest.mark.kernel

TCP = Protocol.TCP
FOUR = [
    namespace("x", ns="x"),
    namespace("y", ns="y"),
    pod("x/a", node="node-1", pod="a"),
    pod("y/a", node="node-1", pod="a"),
    pod("x/b", node="node-2", pod="b"),
    pod("y/b", node="node-2", pod="b"),
    lab(backend="host-gw"),
]
FROM_BLUE = policy("x/from-blue", {
    "podSelector": {"matchLabels": {"pod": "b"}},
    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}],
})


def test_every_node_has_a_ready_agent_and_status_shows_it(
    netns_prefix: str, tmp_path: Path
) -> None:
    with running_lab(netns_prefix, tmp_path, FOUR) as running:
        status = running.lab.status()
        assert status.problems == ()
        for node in status.nodes:
            assert node.agent is not None and node.agent_pid is not None
            assert (node.agent["ready"], node.agent["healthy"]) == (True, True)
            assert node.agent["node"] == node.name
            assert node.agent["applied_revision"] == node.agent["store_revision"]
        assert (running.state_dir / "agent-node-1.log").exists()


def test_kanal_label_and_apply_on_the_lab_store_are_enforced_and_predicted(
    netns_prefix: str, tmp_path: Path
) -> None:
    with running_lab(netns_prefix, tmp_path, [*FOUR, FROM_BLUE]) as running:
        store = str(running.state_dir / "store.db")
        report = running.agreeing_probe([(80, TCP)], destinations=["x/b"])
        assert allowed(report, "y/b", "x/b") is False
        assert main(["label", "namespace", "y", "team=blue", "--store", store]) == 0
        _wait_for_every_agent(running.lab)
        report = running.agreeing_probe([(80, TCP)], destinations=["x/b"])
        assert allowed(report, "y/b", "x/b") is True  # the agents saw the label; so did probe
        deny = tmp_path / "deny.yaml"
        deny.write_text(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            "metadata: {name: deny, namespace: y}\nspec: {podSelector: {}}\n"
        )
        assert main(["apply", "-f", str(deny), "--store", store]) == 0
        _wait_for_every_agent(running.lab)
        report = running.agreeing_probe([(80, TCP)], destinations=["y/a"])
        assert allowed(report, "x/a", "y/a") is False


def test_a_wired_pod_its_agents_do_not_know_is_cut_off_by_its_node(
    netns_prefix: str, tmp_path: Path
) -> None:
    """`kanal delete pod` on the lab's store leaves the pod wired (as a pod whose agent has not
    seen it yet): its node's pod guard drops what it sends and what is sent to it, same node
    and across nodes, while no policy isolates anyone."""
    with running_lab(netns_prefix, tmp_path, FOUR) as running:
        pods = {key: running.pod(key) for key in ("x/a", "y/a", "x/b")}

        def connects(source: str, destination: str) -> bool:
            probe = Probe(pods[source].netns, ip_address(pods[destination].ip), 80, TCP)
            return probe_many([probe], timeout_s=0.5)[0].connected

        pairs = [("x/b", "x/a"), ("x/a", "y/a"), ("y/a", "x/a"), ("x/b", "y/a")]
        assert [connects(*pair) for pair in pairs] == [True, True, True, True]
        store = str(running.state_dir / "store.db")
        assert main(["delete", "pod", "x/a", "--store", store]) == 0
        _wait_for_every_agent(running.lab)
        assert [connects(*pair) for pair in pairs] == [False, False, False, True]


def test_a_dead_agent_is_reported_and_restarted_by_the_next_change(
    netns_prefix: str, tmp_path: Path
) -> None:
    with running_lab(netns_prefix, tmp_path, FOUR) as running:
        lab_ = running.lab
        node = next(n for n in lab_.status().nodes if n.name == "node-2")
        assert node.agent_pid is not None
        os.kill(node.agent_pid, signal.SIGKILL)
        _wait_gone(node.agent_pid)
        problems = lab_.status().problems
        assert problems == (
            "node `node-2`: its agent does not answer (not running?): the kernel keeps its last "
            "table; `kanal lab down`, then up again",
        )
        assert lab_.status().nodes[1].ruleset is not None  # the table is still there
        change = running.apply([deny_ingress("x/guard", pod="b")])
        assert change.notes == ("restarted the agent of node `node-2`: it was not running",)
        assert {u.node: u.kind for u in change.updates}["node-2"] == "load"
        status = lab_.status()
        assert status.problems == ()
        assert status.nodes[1].agent is not None and status.nodes[1].agent_pid != node.agent_pid
        first = status.nodes[1].agent["history"][0]
        assert first["reason"].startswith("first load, replacing the table found")
        report = running.agreeing_probe([(80, TCP)], destinations=["x/b"])
        assert allowed(report, "y/a", "x/b") is False


def test_a_change_whose_agent_does_not_apply_it_leaves_the_lab_failed_and_says_why(
    netns_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enforce, "READY_TIMEOUT_S", 2.0)
    with running_lab(netns_prefix, tmp_path, FOUR) as running:
        pid = running.lab.status().nodes[1].agent_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # alive (not restarted) but never applies anything
        try:
            with pytest.raises(LabError) as raised:
                running.apply([deny_ingress("x/guard", pod="b")])
            failure = (
                f"changing lab `{running.lab.status().name}` failed half-way: the agent of node "
                "`node-2` is not ready after 2 s"
            )
            assert str(raised.value).startswith(failure)
            assert "the lab is now `failed` (`kanal lab status` says why)" in str(raised.value)
            status = running.lab.status()
            assert status.phase == "failed"
            assert status.problems[0].startswith(f"the lab is `failed`: {failure}")
            with pytest.raises(LabError) as refused:
                running.apply([deny_ingress("x/other", pod="a")])
            assert str(refused.value).startswith(
                "the lab is `failed`, so its kernel state is unknown: `kanal lab down`, then "
                f"`kanal lab up` again\nthe lab is `failed`: {failure}"
            )
        finally:
            os.kill(pid, signal.SIGCONT)


def test_start_agents_restarts_only_the_dead_ones(netns_prefix: str, tmp_path: Path) -> None:
    with running_lab(netns_prefix, tmp_path, FOUR) as running:
        assert running.lab.start_agents() == {}
        pid = running.lab.status().nodes[0].agent_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        started = running.lab.start_agents()
        assert list(started) == ["node-1"]
        running.server_pids |= set(started.values())


def _wait_for_every_agent(lab_: object) -> None:
    """Until every agent has applied the store's current revision."""
    from kanal.lab.lab import Lab

    assert isinstance(lab_, Lab)
    state = lab_.store.load()
    assert state is not None
    plan = lab_._plan(state, state.ipam)
    with open_store(lab_.store.directory) as store:
        revision = store.revision()
    lab_.agents.wait(plan, state.agents, revision)


def _wait_gone(pid: int) -> None:
    import time

    from kanal.agent.process import alive

    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)
