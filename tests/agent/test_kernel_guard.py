"""The pod guard in a real kernel (`kanal.render.guard`): a pod wired to its node before the
node's `kanal agent` knows it can neither send nor receive; once the agent has it, policy
decides; once it is deleted from the store, it is cut off again.

    node n0:  x/client (10.244.1.2)   x/web (10.244.1.3)   stranger (10.244.1.4)
              host veths cali0..cali2 (minilab); the agent runs with --pod-interfaces cali
    NetworkPolicy x/only-client   app=web: ingress from app=client
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import minilab
from kanal.agent import process
from kanal.agent.process import AgentSpec
from kanal.dataplane.netns import list_netns
from kanal.lab.prober import Probe, probe_many
from kanal.lab.servers import PodServers, ServedPod
from kanal.model.objects import Protocol
from kanal.store.api import ObjectRef
from kanal.store.sqlite import SqliteStore

from .builders import namespace, netpol, peer, pod, select

pytestmark = pytest.mark.kernel

WAIT_S = 60.0
PORT = 80
ROLES = ("client", "web", "stranger")  # minilab order: n0-p0, n0-p1, n0-p2


@dataclass
class World:
    lab: minilab.MiniLab
    store: SqliteStore
    spec: AgentSpec
    log: Path
    pid: int = 0

    def wait(self, revision: int) -> None:
        process.wait_ready(self.spec, self.pid, self.log, timeout=WAIT_S, revision=revision)

    def stranger(self, **labels: str) -> dict[str, object]:
        ip = self.lab.pods[2].ip
        return pod("x/stranger", node="n0", ip=str(ip), **labels)

    def connects(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """TCP to port 80 for each (from, to) role pair: connected?"""
        by_role = dict(zip(ROLES, self.lab.pods, strict=True))
        probes = [Probe(by_role[a].netns, by_role[b].ip, PORT, Protocol.TCP) for a, b in pairs]
        results = probe_many(probes, timeout_s=0.5)
        return {pair: r.connected for pair, r in zip(pairs, results, strict=True)}


PAIRS = [("client", "web"), ("client", "stranger"), ("stranger", "web"), ("stranger", "client")]


@pytest.fixture
def world(netns_prefix: str, tmp_path: Path) -> Iterator[World]:
    lab = minilab.build(netns_prefix, backend="host-gw", nodes=1, pods_per_node=3)
    store = SqliteStore(tmp_path / "store.db")
    served = PodServers([ServedPod(p.name, p.netns, p.ip, ((PORT, Protocol.TCP),))
                         for p in lab.pods])
    thread = threading.Thread(target=served.serve)
    try:
        served.bind()
        thread.start()
        client, web, _ = lab.pods
        store.apply([(f"doc{i}", d) for i, d in enumerate([
            namespace("x"),
            pod("x/client", node="n0", ip=str(client.ip), app="client"),
            pod("x/web", node="n0", ip=str(web.ip), app="web"),
            netpol("x/only-client", select(app="web"), ingress=[peer(app="client")]),
        ])])
        spec = AgentSpec("n0", store.path, lab.nodes[0],
                         extra=("--vxlan-port", "0", "--pod-interfaces", "cali"))
        world = World(lab, store, spec, tmp_path / "agent.log")
        world.pid = process.spawn(spec, world.log)
        process.wait_ready(spec, world.pid, world.log, timeout=WAIT_S)
        yield world
    finally:
        served.stop()
        if thread.is_alive():
            thread.join(timeout=5)
        served.close()
        stopped = process.stop(process.owned_by(store.path))
        store.close()
        minilab.teardown(lab)
        assert process.owned_by(store.path) == [], f"agents left running (stopped {stopped})"
        assert list_netns(netns_prefix) == []


def test_an_unknown_pod_is_cut_off_until_the_agent_knows_it_then_policy_decides(
    world: World,
) -> None:
    assert world.connects(PAIRS) == {  # no policy isolates the client: only the guard denies
        ("client", "web"): True, ("client", "stranger"): False,
        ("stranger", "web"): False, ("stranger", "client"): False,
    }

    world.wait(world.store.apply([("stranger", world.stranger(app="other"))]).revision)
    assert world.connects(PAIRS) == {  # known: only x/only-client still denies (web's ingress)
        ("client", "web"): True, ("client", "stranger"): True,
        ("stranger", "web"): False, ("stranger", "client"): True,
    }

    world.wait(world.store.apply([("stranger", world.stranger(app="client"))]).revision)
    assert world.connects(PAIRS)[("stranger", "web")] is True  # the policy now admits it

    gone = world.store.delete([ObjectRef("Pod", "x", "stranger")])
    world.wait(gone.revision)
    assert world.connects(PAIRS) == {
        ("client", "web"): True, ("client", "stranger"): False,
        ("stranger", "web"): False, ("stranger", "client"): False,
    }
