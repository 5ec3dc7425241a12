"""A real `kanal agent` process in a minilab node netns follows the store into the kernel:
`nft list table` changes as documents are applied, a `kill -9` leaves the table in force and a
restarted agent converges by one replacement, a rule deleted by hand comes back at the resync,
SIGTERM stops the agent and keeps the table. Nothing is left behind (netns, processes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import minilab
from kanal.agent import process
from kanal.agent.client import fetch
from kanal.agent.client import status as agent_status
from kanal.agent.dataplane import count_table
from kanal.agent.process import AgentSpec
from kanal.dataplane.netns import list_netns
from kanal.dataplane.nft import Nft
from kanal.store.sqlite import SqliteStore

from .builders import namespace, netpol, peer, pod, select

pytestmark = pytest.mark.kernel

WAIT_S = 60.0  # generous: the machine is shared; nothing here asserts a duration


@dataclass
class Agent:
    spec: AgentSpec
    log: Path
    pid: int = 0

    def start(self) -> dict[str, Any]:
        self.pid = process.spawn(self.spec, self.log)
        return process.wait_ready(self.spec, self.pid, self.log, timeout=WAIT_S)

    def wait_applied(self, revision: int) -> dict[str, Any]:
        return process.wait_ready(self.spec, self.pid, self.log, timeout=WAIT_S,
                                  revision=revision)


@pytest.fixture
def world(netns_prefix: str, tmp_path: Path) -> Iterator[tuple[minilab.MiniLab, SqliteStore]]:
    lab = minilab.build(netns_prefix, backend="host-gw", nodes=1, pods_per_node=2)
    store = SqliteStore(tmp_path / "store.db")
    try:
        yield lab, store
    finally:
        stopped = process.stop(process.owned_by(store.path))
        store.close()
        minilab.teardown(lab)
        assert process.owned_by(store.path) == [], f"agents left running (stopped {stopped})"
        assert list_netns(netns_prefix) == []


def listing(netns: str) -> str:
    with Nft(netns) as nft:
        return nft.run("list table inet kanal")


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def docs(**web_labels: str) -> list[tuple[str, object]]:
    return [(f"doc{i}", d) for i, d in enumerate([
        namespace("x"),
        pod("x/web", node="n0", ip="10.244.1.2", app="web", **web_labels),
        pod("x/client", node="n0", ip="10.244.1.3", app="client"),
        netpol("x/allow-client", select(app="web"), ingress=[peer(app="client")]),
    ])]


def test_the_agent_follows_the_store_into_the_kernel(
    world: tuple[minilab.MiniLab, SqliteStore], tmp_path: Path
) -> None:
    lab, store = world
    netns = lab.nodes[0]
    store.apply(docs())
    agent = Agent(AgentSpec("n0", store.path, netns, extra=("--vxlan-port", "0")),
                  tmp_path / "agent.log")
    status = agent.start()
    assert status["applied_revision"] == 1 and status["last_sync"]["kind"] == "load"
    table = listing(netns)
    assert "10.244.1.3" in table  # the client in the peer set
    assert "10.244.1.2 : goto ingress_" in table  # the web pod dispatched

    result = store.apply([("more", pod("x/client2", node="n9", ip="10.244.9.9", app="client"))])
    status = agent.wait_applied(result.revision)
    assert status["last_sync"]["kind"] == "delta"
    assert "10.244.9.9" in listing(netns)

    metrics = fetch("/metrics", netns=netns).body
    assert 'kanal_agent_changes_applied_total{kind="delta"} 1' in metrics
    assert f"kanal_agent_applied_revision {result.revision}" in metrics
    with Nft(netns) as nft:  # the drift check compares these: one kernel rule per IR rule
        counted = count_table(nft.run_json("list table inet kanal"))
    assert f"kanal_agent_rules {counted.rules}\n" in metrics
    assert f"kanal_agent_chains {counted.chains}\n" in metrics


def test_kill_9_keeps_the_table_and_a_restart_converges_without_flushing(
    world: tuple[minilab.MiniLab, SqliteStore], tmp_path: Path
) -> None:
    lab, store = world
    netns = lab.nodes[0]
    store.apply(docs())
    agent = Agent(AgentSpec("n0", store.path, netns, extra=("--vxlan-port", "0")),
                  tmp_path / "agent.log")
    agent.start()
    before = listing(netns)
    process.stop([agent.pid], timeout=0)  # SIGTERM then at once SIGKILL
    assert not process.alive(agent.pid)
    assert listing(netns) == before  # no agent, the rules stay in force

    revision = store.apply([("deny", netpol("x/allow-client", select(app="web"), ingress=[]))])
    assert listing(netns) == before  # nobody applies it yet: the old table, not none
    status = agent.start()
    assert status["applied_revision"] == revision.revision
    assert status["last_sync"]["reason"].startswith("first load, replacing the table found")
    assert "10.244.1.3" not in listing(netns)  # the peer set is gone with the allow rule


def test_a_rule_deleted_by_hand_is_restored_by_the_resync(
    world: tuple[minilab.MiniLab, SqliteStore], tmp_path: Path
) -> None:
    lab, store = world
    netns = lab.nodes[0]
    store.apply(docs())
    agent = Agent(
        AgentSpec("n0", store.path, netns,
                  extra=("--vxlan-port", "0", "--resync-interval", "1")),
        tmp_path / "agent.log",
    )
    agent.start()
    with Nft(netns) as nft:
        listed = nft.run_json("list chain inet kanal forward")
        assert isinstance(listed, dict)
        handle = next(
            e["rule"]["handle"] for e in listed["nftables"]
            if "rule" in e and "invalid" in str(e["rule"]["expr"])
        )
        nft.run(f"delete rule inet kanal forward handle {handle}")
    assert "ct state invalid drop" not in listing(netns)
    eventually(lambda: "ct state invalid drop" in listing(netns), "the resync to repair")
    eventually(
        lambda: "kanal_agent_drift_repairs_total 1" in fetch("/metrics", netns=netns).body,
        "the drift to be counted",
    )


def test_sigterm_stops_the_agent_and_leaves_the_table(
    world: tuple[minilab.MiniLab, SqliteStore], tmp_path: Path
) -> None:
    lab, store = world
    netns = lab.nodes[0]
    store.apply(docs())
    agent = Agent(AgentSpec("n0", store.path, netns, extra=("--vxlan-port", "0")),
                  tmp_path / "agent.log")
    agent.start()
    assert agent_status(netns=netns)["healthy"]
    before = listing(netns)
    assert process.stop([agent.pid]) == [agent.pid]
    assert "stopped; the kernel keeps its table" in agent.log.read_text()
    assert listing(netns) == before


def test_an_agent_without_its_store_does_not_start(
    world: tuple[minilab.MiniLab, SqliteStore], tmp_path: Path
) -> None:
    lab, _ = world
    spec = AgentSpec("n0", tmp_path / "missing.db", lab.nodes[0])
    pid = process.spawn(spec, tmp_path / "agent.log")
    with pytest.raises(process.AgentStartError, match=r"exited: .*missing\.db"):
        process.wait_ready(spec, pid, tmp_path / "agent.log", timeout=WAIT_S)
