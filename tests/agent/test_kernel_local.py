"""A local pod's relabelling, patched by a real `kanal agent` (`kanal.agent.local`), reaches the
kernel as one delta that the kernel accepts (element changes, or new chains and sets and unused
ones deleted), changes which real TCP connections succeed, and leaves the table a restarted
agent loads from scratch (the same sets, chains and elements; a chain added later is listed
after the others).

    node n0:  x/client (10.244.1.2)   x/web (10.244.1.3)   x/other (10.244.1.4)
    NetworkPolicy x/deny          every pod of x: ingress isolated
    NetworkPolicy x/allow-client  app=web: ingress from app=client
    NetworkPolicy x/allow-web     app=db: ingress from app=web (no db pod at first)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import minilab
from kanal.agent import process
from kanal.agent.process import AgentSpec
from kanal.dataplane.netns import list_netns
from kanal.dataplane.nft import Nft
from kanal.lab.prober import Probe, probe_many
from kanal.lab.servers import PodServers, ServedPod
from kanal.model.objects import Protocol
from kanal.store.api import Doc, ObjectRef
from kanal.store.sqlite import SqliteStore

from .builders import namespace, netpol, peer, pod, select

pytestmark = pytest.mark.kernel

WAIT_S = 60.0
PORT = 80
ROLES = ("client", "web", "other")  # minilab order: n0-p0, n0-p1, n0-p2


@dataclass
class World:
    lab: minilab.MiniLab
    store: SqliteStore
    spec: AgentSpec
    log: Path
    pid: int = 0

    def start(self) -> dict[str, Any]:
        self.pid = process.spawn(self.spec, self.log)
        return process.wait_ready(self.spec, self.pid, self.log, timeout=WAIT_S)

    def relabel(self, name: str, app: str) -> dict[str, Any]:
        """Set pod `x/name`'s app label; the agent's last sync once it applied the change."""
        def change(doc: Doc) -> Doc:
            doc["metadata"]["labels"]["app"] = app
            return doc

        revision = self.store.update(ObjectRef("Pod", "x", name), change).revision
        status = process.wait_ready(self.spec, self.pid, self.log, timeout=WAIT_S,
                                    revision=revision)
        return dict(status["last_sync"])

    def probe(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """TCP to port 80 for each (from, to) role pair: connected?"""
        by_role = dict(zip(ROLES, self.lab.pods, strict=True))
        results = probe_many([Probe(by_role[a].netns, by_role[b].ip, PORT, Protocol.TCP)
                              for a, b in pairs], timeout_s=0.5)
        return [r.connected for r in results]

    def connects(self) -> dict[str, bool]:
        """From the client to each other pod on port 80: connected?"""
        client, *others = self.lab.pods
        results = probe_many([Probe(client.netns, p.ip, PORT, Protocol.TCP) for p in others],
                             timeout_s=0.5)
        return {role: r.connected for role, r in zip(ROLES[1:], results, strict=True)}

    def listing(self) -> str:
        with Nft(self.lab.nodes[0]) as nft:
            return nft.run("list table inet kanal")


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
        store.apply([(f"doc{i}", d) for i, d in enumerate([
            namespace("x"),
            *(pod(f"x/{role}", node="n0", ip=str(p.ip), app=role)
              for role, p in zip(ROLES, lab.pods, strict=True)),
            netpol("x/deny", {}, ingress=[]),
            netpol("x/allow-client", select(app="web"), ingress=[peer(app="client")]),
            netpol("x/allow-web", select(app="db"), ingress=[peer(app="web")]),
        ])])
        yield World(lab, store, AgentSpec("n0", store.path, lab.nodes[0],
                                          extra=("--vxlan-port", "0")), tmp_path / "agent.log")
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


def test_a_patched_local_relabel_reaches_the_kernel_and_equals_a_fresh_load(
    world: World,
) -> None:
    world.start()
    assert world.connects() == {"web": True, "other": False}

    sync = world.relabel("other", "web")  # joins web's verdict; the client keeps deny-only's
    assert (sync["kind"], sync["reason"]) == ("delta", "patched")
    assert world.connects() == {"web": True, "other": True}

    sync = world.relabel("web", "other")  # web takes deny-only; other keeps allow-client's
    assert (sync["kind"], sync["reason"]) == ("delta", "patched")
    assert world.connects() == {"web": False, "other": True}

    patched = world.listing()
    process.stop([world.pid])
    status = world.start()  # a fresh agent renders from scratch and replaces the table
    assert status["last_sync"]["reason"].startswith("first load, replacing the table found")
    assert world.listing() == patched
    assert world.connects() == {"web": False, "other": True}


def canonical(listing: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """`nft list table` as declaration -> (its lines, its elements sorted): what the kernel
    holds, whatever order it lists declarations and elements in."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in listing.splitlines():
        if line.startswith("\t") and not line.startswith("\t\t") and line.endswith("{"):
            current = blocks[line.strip()] = []
        elif line == "\t}":
            current = None
        elif current is not None:
            current.append(line.strip())
    found = {}
    for header, lines in blocks.items():
        text = " ".join(lines)
        elements: tuple[str, ...] = ()
        if "elements = {" in text:
            before, _, rest = text.partition("elements = {")
            body, _, after = rest.partition("}")
            elements = tuple(sorted(e.strip() for e in body.split(",") if e.strip()))
            text = before + after
        found[header] = (tuple(text.split()), elements)
    return found


def test_relabels_that_add_and_remove_chains_and_sets_are_deltas_the_kernel_takes(
    world: World,
) -> None:
    world.start()
    fresh_start = canonical(world.listing())
    pairs = [("web", "other"), ("client", "other"), ("web", "client"), ("client", "web")]
    assert world.probe(pairs) == [False, False, False, True]

    steps = [  # (pod, new app label, what the kernel must allow after it)
        ("other", "db", [True, False, False, True]),  # allow-web's verdict comes, with its set
        ("client", "db", [True, False, True, False]),  # deny's verdict loses its last pod
        ("web", "plain", [False, False, False, False]),  # allow-client's goes, deny's comes
    ]
    for name, app, allowed in steps:
        sync = world.relabel(name, app)
        assert (sync["kind"], sync["reason"]) == ("delta", "restructured"), name
        assert world.probe(pairs) == allowed, name

    patched = canonical(world.listing())
    assert patched != fresh_start
    process.stop([world.pid])
    status = world.start()  # a fresh agent renders from scratch and replaces the table
    assert status["last_sync"]["reason"].startswith("first load, replacing the table found")
    assert canonical(world.listing()) == patched
    assert world.probe(pairs) == steps[-1][2]
