"""Order independence (STYLE item 3, Calico's states_for_test): the kernel table the agent ends
with depends only on the current store state, never on the path taken to it.

Named cluster states are replayed through a store into an agent with a fake kernel (which
applies loads and element deltas as nft would): forward, reversed, shuffled by hypothesis,
squashed (the final state alone), and split (each transition as one transaction per object, in
a random order, synced after every object or only at the end). After every state the kernel
must hold exactly `table_text(render_node(...))` of a fresh engine built from that state.

A second property drives the remote-pod fast path (`kanal.agent.incremental`) with random pod
churn, including shared addresses and the first IPv6 pod, against the same from-scratch table.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kanal.agent.agent as agent_module
from kanal.agent.agent import NodeAgent
from kanal.agent.runner import SyncKind
from kanal.engine import PolicyEngine
from kanal.model.parse import parse_documents
from kanal.render import RenderOptions, render_node, table_text
from kanal.store.api import ObjectRef

from .builders import Doc, anp, banp, namespace, netpol, node, peer, pod, select
from .fakes import FakeKernel, MemoryStore, TableState, key_of, table_state

OPTIONS = RenderOptions(vxlan_port=None)
LOCAL = "n1"
NODES = [node("n1", "192.168.0.1", zone="a"), node("n2", "192.168.0.2", zone="b")]
WEB_PORTS = ((80, "TCP", "http"), (53, "UDP", "dns"))

PODS = [
    namespace("x", team="blue"),
    namespace("y", team="red"),
    pod("x/web", node="n1", ip="10.0.1.2", ports=WEB_PORTS, app="web"),
    pod("x/db", node="n1", ip="10.0.1.3", app="db"),
    pod("x/client", node="n2", ip="10.0.2.2", app="client"),
    pod("y/client", node="n2", ip="10.0.2.3", app="client"),
    pod("y/web", node="n2", ip="10.0.2.4", ports=WEB_PORTS, app="web"),
]
DENY_X = netpol("x/deny", {}, ingress=[])
ALLOW_CLIENT = netpol("x/allow-client", select(app="web"), ingress=[peer(app="client")])
CROSS_NS = netpol("x/from-red", select(app="db"), ingress=[peer({"team": "red"})])
NAMED_PORT = netpol("x/named", select(app="db"), egress=[peer({}, app="web")],
                    ports=[{"port": "http"}, {"port": "dns", "protocol": "UDP"}])
GUARD = anp("guard", 10, {
    "subject": {"namespaces": {"matchLabels": {"team": "blue"}}},
    "ingress": [{"name": "deny-red", "action": "Deny",
                 "from": [{"namespaces": {"matchLabels": {"team": "red"}}}]}],
    "egress": [{"name": "kubelet", "action": "Allow",
                "to": [{"nodes": {"matchLabels": {"zone": "a"}}}]},
               {"name": "pass-rest", "action": "Pass", "to": [{"namespaces": {}}]}],
})
BASELINE = banp({"subject": {"namespaces": {}},
                 "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]})


def _with(docs: Sequence[Doc], *changes: Doc) -> list[Doc]:
    """`docs` with each of `changes` replacing the document of the same object (or added)."""
    by_key = {key_of(d): d for d in docs}
    by_key.update({key_of(c): c for c in changes})
    return list(by_key.values())


def _without(docs: Sequence[Doc], *keys: str) -> list[Doc]:
    return [d for d in docs if f"{key_of(d).kind} {key_of(d).display()}" not in keys]


STATES: dict[str, list[Doc]] = {
    "empty": [],
    "nodes only": NODES,
    "pods, no policy": [*NODES, *PODS],
    "default deny in x": [*NODES, *PODS, DENY_X],
    "web allows clients": [*NODES, *PODS, DENY_X, ALLOW_CLIENT],
    "client relabelled to web": _with(
        [*NODES, *PODS, DENY_X, ALLOW_CLIENT], pod("x/client", node="n2", ip="10.0.2.2", app="web")
    ),
    "web readdressed, db gone": _without(_with(
        [*NODES, *PODS, DENY_X, ALLOW_CLIENT], pod("x/web", node="n1", ip="10.0.1.9", app="web")
    ), "Pod x/db"),
    "cross-namespace by team": [*NODES, *PODS, CROSS_NS],
    "namespace relabelled": _with([*NODES, *PODS, CROSS_NS], namespace("x", team="red")),
    "named ports": [*NODES, *PODS, NAMED_PORT, ALLOW_CLIENT],
    "dual-stack client": _with(
        [*NODES, *PODS, ALLOW_CLIENT],
        pod("x/client", node="n2", ip=("10.0.2.2", "fd00::2:2"), app="client"),
    ),
    "admin tiers": [*NODES, *PODS, GUARD, BASELINE, ALLOW_CLIENT],
    "node relabelled under admin tiers": _with(
        [*NODES, *PODS, GUARD, BASELINE], node("n2", "192.168.0.2", zone="a")
    ),
    "pods moved to the other node": [
        *NODES, *PODS[:2], ALLOW_CLIENT,
        pod("x/web", node="n2", ip="10.0.2.12", ports=WEB_PORTS, app="web"),
        pod("x/client", node="n1", ip="10.0.1.12", app="client"),
    ],
}
NAMES = list(STATES)


def expected(docs: Sequence[Doc]) -> TableState:
    engine = PolicyEngine.from_manifests(parse_documents(("state", d) for d in docs))
    return table_state(table_text(render_node(engine, LOCAL, OPTIONS)))


EXPECTED = {name: expected(docs) for name, docs in STATES.items()}


class Replay:
    """A store, an agent on `LOCAL` and its fake kernel, taken from state to state."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.kernel = FakeKernel()
        self.agent = NodeAgent(LOCAL, self.store, self.kernel, options=OPTIONS)
        self.current: dict[ObjectRef, Doc] = {}
        self.synced = False

    def go(self, docs: Sequence[Doc], *, split: bool = False, sync_each: bool = False,
           rng: random.Random | None = None) -> None:
        target = {key_of(d): d for d in docs}
        gone = [ref for ref in self.current if ref not in target]
        came = [d for ref, d in target.items() if self.current.get(ref) != d]
        if split:
            ops: list[tuple[list[Doc], list[ObjectRef]]] = [([], [r]) for r in gone]
            ops += [([d], []) for d in came]
            (rng or random.Random(0)).shuffle(ops)
            for docs_, refs in ops:
                self.store.write(docs_, refs)
                if sync_each:
                    self.sync()
        else:
            self.store.write(came, gone)
        self.current = target
        self.sync()

    def sync(self) -> None:
        self.agent.catch_up()
        self.agent.sync(SyncKind.CHANGES if self.synced else SyncKind.RESYNC)
        self.synced = True


def replay(
    names: Sequence[str], *, split: bool = False, sync_each: bool = False,
    rng: random.Random | None = None,
) -> None:
    run = Replay()
    for name in names:
        run.go(STATES[name], split=split, sync_each=sync_each, rng=rng)
        assert run.kernel.state() == EXPECTED[name], f"after {name!r} (path {list(names)})"


@pytest.mark.parametrize(
    "names",
    [NAMES, NAMES[::-1], [NAMES[-1]], NAMES + NAMES[::-1]],
    ids=["forward", "reversed", "squashed", "there and back"],
)
@pytest.mark.parametrize("split", [False, True], ids=["one transaction", "split"])
def test_named_sequences_end_with_the_from_scratch_table(names: list[str], split: bool) -> None:
    replay(names, split=split, sync_each=split)


@pytest.mark.parametrize("name", NAMES)
def test_each_state_alone_is_the_from_scratch_table(name: str) -> None:
    replay([name])


CASES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@CASES
@given(
    order=st.permutations(NAMES),
    split=st.booleans(),
    sync_each=st.booleans(),
    rng=st.randoms(use_true_random=False),
)
def test_shuffled_sequences_end_with_the_from_scratch_table(
    order: list[str], split: bool, sync_each: bool, rng: random.Random
) -> None:
    replay(order, split=split, sync_each=sync_each, rng=rng)


# -- the remote-pod fast path ---------------------------------------------------------------------

POLICIES = [
    namespace("x", team="blue"),
    namespace("y", team="red"),
    *NODES,
    netpol("x/allow-a", select(app="a"), ingress=[peer(app="b"), peer({"team": "red"})],
           egress=[peer({}, app="a")], ports=[{"port": "http"}, {"port": 53, "protocol": "UDP"}]),
    netpol("y/deny", {}, ingress=[]),
    netpol("y/named", select(app="b"), ingress=[peer({}, tier="fe")],
           ports=[{"port": "dns", "protocol": "UDP"}]),
    pod("x/anchor-a", node=LOCAL, ip="10.0.1.100", app="a"),
    pod("y/anchor-b", node=LOCAL, ip="10.0.1.101", app="b"),
]
V4_POOL = [f"10.0.2.{i}" for i in range(2, 8)] + ["10.0.1.100"]
PORT_CHOICES = [((80, "TCP", "http"),), ((53, "UDP", "dns"), (80, "TCP", "http")), ()]


@st.composite
def remote_pods(draw: st.DrawFn) -> Doc:
    ns = draw(st.sampled_from(["x", "y"]))
    name = draw(st.sampled_from(["p", "q", "r", "s"]))
    labels: Mapping[str, str] = draw(st.dictionaries(
        st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b", "fe"]), max_size=2
    ))
    ip: str | tuple[str, str] | None = draw(st.sampled_from(V4_POOL))
    if draw(st.integers(0, 9)) == 0:
        ip = (str(ip), f"fd00::{draw(st.integers(1, 3))}")
    if draw(st.integers(0, 9)) == 0:
        ip = None
    node_name = draw(st.sampled_from(["n2", "n2", "n2", LOCAL]))
    return pod(f"{ns}/{name}", node=node_name, ip=ip, ports=draw(st.sampled_from(PORT_CHOICES)),
               **labels)


operations = st.lists(
    st.tuples(st.booleans(), remote_pods(), st.booleans()), min_size=1, max_size=25
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_pod_churn_ends_with_the_from_scratch_table(ops: list[tuple[bool, Doc, bool]]) -> None:
    """(delete?, pod, sync now?) steps: the agent patches remote pods' set entries and
    renders for the rest; after every sync the kernel equals the from-scratch table."""
    store = MemoryStore()
    store.put(POLICIES)
    kernel = FakeKernel()
    agent = NodeAgent(LOCAL, store, kernel, options=OPTIONS)
    agent.catch_up()
    agent.sync(SyncKind.RESYNC)
    for delete, doc, sync_now in [*ops, (False, POLICIES[0], True)]:
        if delete:
            store.remove([key_of(doc)])
        else:
            store.put([doc])
        if sync_now:
            agent.catch_up()
            agent.sync()
            assert kernel.state() == expected(list(store.objects.values()))


def test_remote_pod_churn_never_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    """(While every named port number the churn uses is already declared by some pod.)"""
    store = MemoryStore()
    store.put(POLICIES)
    store.put([pod("y/declares", node="n2", ip="10.0.2.9", ports=PORT_CHOICES[1])])
    kernel = FakeKernel()
    agent = NodeAgent(LOCAL, store, kernel, options=OPTIONS)
    agent.catch_up()
    agent.sync(SyncKind.RESYNC)
    renders: list[str] = []
    real = agent_module.render_with_dispatch
    monkeypatch.setattr(agent_module, "render_with_dispatch",
                        lambda *a, **k: renders.append("r") or real(*a, **k))
    steps = [
        pod("x/p", node="n2", ip="10.0.2.2", app="a"),
        pod("x/p", node="n2", ip="10.0.2.2", app="b"),
        pod("y/q", node="n2", ip="10.0.2.3", ports=PORT_CHOICES[1], tier="fe"),
        pod("x/p", node="n2", ip="10.0.2.4", app="b"),
    ]
    for doc in steps:
        store.put([doc])
        agent.catch_up()
        assert agent.sync().kind == "delta"
    store.remove([key_of(steps[-1])])
    agent.catch_up()
    assert agent.sync().kind == "delta"
    assert renders == []
    assert kernel.state() == expected(list(store.objects.values()))


def test_a_remote_pod_giving_a_port_name_its_first_number_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Egress port classes hold every number a name has in the cluster (render.network)."""
    store = MemoryStore()
    store.put(POLICIES)
    kernel = FakeKernel()
    agent = NodeAgent(LOCAL, store, kernel, options=OPTIONS)
    agent.catch_up()
    agent.sync(SyncKind.RESYNC)
    renders: list[str] = []
    real = agent_module.render_with_dispatch
    monkeypatch.setattr(agent_module, "render_with_dispatch",
                        lambda *a, **k: renders.append("r") or real(*a, **k))
    store.put([pod("y/q", node="n2", ip="10.0.2.3", ports=PORT_CHOICES[1], tier="fe")])
    agent.catch_up()
    agent.sync()
    assert renders == ["r"]
    assert kernel.state() == expected(list(store.objects.values()))
