"""The local-pod fast path (`kanal.agent.local`): a local pod's change is patched into the sets
and verdict maps when the node's structure stays, and after every sync the agent's ruleset is
exactly `render_node` of a fresh engine (and the fake kernel holds exactly its table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kanal.agent.agent as agent_module
from kanal.agent.agent import NodeAgent
from kanal.agent.runner import SyncKind
from kanal.engine import PolicyEngine
from kanal.model.parse import parse_documents
from kanal.render import RenderOptions, Ruleset, render_node, table_text

from .builders import Doc, anp, banp, namespace, netpol, node, peer, pod, select
from .fakes import FakeKernel, MemoryStore, key_of, table_state

OPTIONS = RenderOptions(vxlan_port=None, log_group=7, pod_interfaces="cali")
LOCAL = "n1"
DNS_HTTP = ((53, "UDP", "dns"), (80, "TCP", "http"))
HTTP = ((80, "TCP", "http"),)
CLUSTER = [
    namespace("x", team="blue"),
    namespace("y", team="red"),
    node("n1", "192.168.0.1", zone="a"),
    node("n2", "192.168.0.2", zone="b"),
    netpol("x/allow-a", select(app="a"), ingress=[peer(app="b"), peer({"team": "red"})],
           egress=[peer({}, app="a")], ports=[{"port": "http"}, {"port": 53, "protocol": "UDP"}]),
    netpol("y/deny", {}, ingress=[]),
    netpol("x/only-c", select(app="c"), ingress=[peer(app="a")]),
    netpol("y/named", select(app="b"), ingress=[peer({}, tier="fe")],
           ports=[{"port": "dns", "protocol": "UDP"}]),
    anp("guard", 10, {
        "subject": {"namespaces": {"matchLabels": {"team": "blue"}}},
        "ingress": [{"name": "deny-red-fe", "action": "Deny", "from": [{"pods": {
            "namespaceSelector": {"matchLabels": {"team": "red"}},
            "podSelector": {"matchLabels": {"tier": "fe"}}}}]}],
    }),
]
ANCHORS = [  # local pods that keep the verdicts of the common groups on the node
    pod("x/anchor-a", node=LOCAL, ip="10.0.1.100", app="a"),
    pod("x/anchor-plain", node=LOCAL, ip="10.0.1.101"),
    pod("y/anchor-b", node=LOCAL, ip="10.0.1.102", app="b"),
    pod("y/anchor-fe", node=LOCAL, ip="10.0.1.103", tier="fe"),
]
IPS = [f"10.0.1.{i}" for i in range(2, 7)] + ["10.0.2.2", "10.0.2.3", "10.0.1.100"]


def fresh(docs: Sequence[Doc]) -> Ruleset:
    engine = PolicyEngine.from_manifests(parse_documents(("state", d) for d in docs))
    return render_node(engine, LOCAL, OPTIONS)


class Run:
    """A store with `cluster` (default `CLUSTER` and `ANCHORS`), an agent on `LOCAL` and its
    fake kernel."""

    def __init__(self, cluster: Sequence[Doc] = (*CLUSTER, *ANCHORS)) -> None:
        self.store = MemoryStore()
        self.store.put(cluster)
        self.kernel = FakeKernel()
        self.agent = NodeAgent(LOCAL, self.store, self.kernel, options=OPTIONS)
        self.agent.catch_up()
        self.agent.sync(SyncKind.RESYNC)

    def step(self) -> tuple[str, str]:
        """Catch up and sync; (kind, reason) of the write, after checking it is exact."""
        self.agent.catch_up()
        report = self.agent.sync()
        assert report.reason != "delta refused", self.kernel.calls[-2][1]
        expected = fresh(list(self.store.objects.values()))
        assert self.agent.applied_ruleset == expected
        assert self.kernel.state() == table_state(table_text(expected))
        return report.kind, report.reason


@st.composite
def pods(draw: st.DrawFn) -> Doc:
    labels: Mapping[str, str] = draw(st.dictionaries(
        st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b", "c", "fe"]), max_size=2
    ))
    ip: str | tuple[str, str] | None = draw(st.sampled_from(IPS))
    roll = draw(st.integers(0, 19))
    if roll == 0:
        ip = (str(ip), f"fd00::{draw(st.integers(1, 3))}")
    elif roll == 1:
        ip = None
    return pod(
        f"{draw(st.sampled_from(['x', 'y']))}/{draw(st.sampled_from(['p', 'q', 'r']))}",
        node=draw(st.sampled_from([LOCAL, LOCAL, LOCAL, "n2"])), ip=ip,
        ports=draw(st.sampled_from([HTTP, HTTP, DNS_HTTP, ()])), **labels,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), pods(), st.booleans()), min_size=1, max_size=20))
def test_local_and_remote_pod_churn_keeps_the_from_scratch_ruleset(
    ops: list[tuple[bool, Doc, bool]],
) -> None:
    """(delete?, pod, sync now?) steps, mostly local pods in and out of the anchors' groups,
    with moves between nodes, shared and missing addresses and the first IPv6 pod."""
    run = Run()
    for delete, doc, sync_now in [*ops, (False, CLUSTER[0], True)]:
        if delete:
            run.store.remove([key_of(doc)])
        else:
            run.store.put([doc])
        if sync_now:
            run.step()


KEYS = [f"{ns}/{name}" for ns in ("x", "y") for name in ("p", "q", "r", "s", "t")]
WIDER = [  # more verdicts: egress port classes with a named port, the baseline tier
    *CLUSTER,
    netpol("x/fe-out", select(tier="fe"), egress=[peer({}, app="b")],
           ports=[{"port": "dns", "protocol": "UDP"}, {"port": 80}]),
    banp({"subject": {"namespaces": {}}, "egress": [{"name": "deny-c", "action": "Deny", "to": [
        {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "c"}}}}]}]}),
]


@st.composite
def own_address_pods(draw: st.DrawFn) -> Doc:
    """A pod of `KEYS` with an address no other pod has (the structural path's case)."""
    index = draw(st.integers(0, len(KEYS) - 1))
    local = draw(st.integers(0, 4)) > 0
    labels: Mapping[str, str] = draw(st.fixed_dictionaries({}, optional={
        "app": st.sampled_from(["a", "b", "c"]), "tier": st.just("fe")}))
    ip = None if draw(st.integers(0, 9)) == 0 else f"10.0.{1 if local else 2}.{index + 2}"
    return pod(KEYS[index], node=LOCAL if local else "n2", ip=ip,
               ports=draw(st.sampled_from([HTTP, DNS_HTTP, ()])), **labels)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), own_address_pods(), st.integers(0, 3)), min_size=5,
                max_size=30))
def test_local_churn_that_makes_and_drops_verdicts_keeps_the_from_scratch_ruleset(
    ops: list[tuple[bool, Doc, int]],
) -> None:
    """(delete?, pod, sync unless 0) steps with no anchors: verdicts gain their first pod and
    lose their last all the time, so chains, sets and log entries come and go by patches."""
    run = Run(WIDER)
    for delete, doc, sync in ops:
        if delete:
            run.store.remove([key_of(doc)])
        else:
            run.store.put([doc])
        if sync:
            run.step()
    run.step()


def _count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = agent_module.render_with_dispatch

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("render")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(agent_module, "render_with_dispatch", counting)
    return calls


MOVES = [  # a local pod added, moved between the anchors' groups, readdressed, moved away
    ("added to an existing group", pod("x/p", node=LOCAL, ip="10.0.1.2", app="a")),
    ("into the unpoliced group", pod("x/p", node=LOCAL, ip="10.0.1.2")),
    ("into another namespace's group", pod("y/p", node=LOCAL, ip="10.0.1.3", app="b")),
    ("labelled like an anchor", pod("y/p", node=LOCAL, ip="10.0.1.3", tier="fe")),
    ("readdressed", pod("y/p", node=LOCAL, ip="10.0.1.4", tier="fe")),
    ("moved to another node", pod("y/p", node="n2", ip="10.0.2.4", tier="fe")),
    ("moved back", pod("y/p", node=LOCAL, ip="10.0.1.5", app="b")),
]


def test_local_pods_moving_between_groups_the_node_has_are_patched_never_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = Run()
    renders = _count_renders(monkeypatch)
    for what, doc in MOVES:
        run.store.put([doc])
        assert run.step() == ("delta", "patched"), what
    run.store.remove([key_of(MOVES[-1][1])])
    assert run.step() == ("delta", "patched")
    assert renders == []
    assert run.agent.metrics.pod_changes.get("local") == len(MOVES) + 1


STRUCTURAL = [
    ("the first pod of a new verdict", [pod("x/p", node=LOCAL, ip="10.0.1.2", app="c")]),
    ("the last pod of a verdict leaves", [pod("x/anchor-a", node=LOCAL, ip="10.0.1.100")]),
    ("the last pod of a verdict goes", [pod("y/anchor-fe", node="n2", ip="10.0.2.9", tier="fe")]),
    ("one verdict goes, another comes", [pod("x/anchor-a", node=LOCAL, ip="10.0.1.100", app="c")]),
]


@pytest.mark.parametrize("docs", [d for _, d in STRUCTURAL], ids=[w for w, _ in STRUCTURAL])
def test_a_local_change_that_changes_the_structure_is_patched_as_one_delta(
    docs: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run()
    renders = _count_renders(monkeypatch)
    run.store.put(docs)
    assert run.step() == ("delta", "restructured")
    assert renders == []
    assert run.agent.metrics.pod_changes.get("local") == 1


def test_the_first_ipv6_pod_changes_the_families_and_is_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = Run()
    renders = _count_renders(monkeypatch)
    run.store.put([pod("x/p", node=LOCAL, ip=("10.0.1.2", "fd00::2"), app="a")])
    assert run.step() == ("load", "structure changed")
    assert renders == ["render"]
    assert run.agent.metrics.pod_changes.get("render") == 1


def test_a_shared_address_is_rendered_and_fails_closed_as_from_scratch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = Run()
    renders = _count_renders(monkeypatch)
    run.store.put([pod("y/p", node=LOCAL, ip="10.0.1.100", app="b")])
    run.step()
    assert renders == ["render"]
    assert run.agent.applied_ruleset is not None and run.agent.applied_ruleset.problems
    run.store.put([pod("y/q", node=LOCAL, ip="10.0.1.2", app="b")])
    run.step()
    assert renders == ["render", "render"]  # a ruleset with problems is never patched
