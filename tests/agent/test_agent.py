"""NodeAgent with an in-memory store and a fake kernel: which calls reach the kernel for which
changes, and that every failure keeps the table that is there (fail closed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import kanal.agent.agent as agent_module
from kanal.agent.agent import NodeAgent, SyncError
from kanal.agent.runner import SyncKind
from kanal.engine import PolicyEngine
from kanal.model.parse import parse_documents
from kanal.render import RenderOptions, render_node, table_text
from kanal.store.api import ObjectRef, StoreError

from .builders import namespace, netpol, node, peer, pod, select
from .fakes import FakeKernel, MemoryStore, TableState, table_state

OPTIONS = RenderOptions(vxlan_port=None)

BASE = [
    namespace("x", team="blue"),
    node("n1", "192.168.0.1"),
    node("n2", "192.168.0.2"),
    pod("x/web", node="n1", ip="10.0.1.2", app="web"),
    pod("x/client", node="n2", ip="10.0.2.2", app="client"),
    netpol("x/allow-client", select(app="web"), ingress=[peer(app="client")]),
]


@dataclass
class Harness:
    store: MemoryStore
    kernel: FakeKernel
    agent: NodeAgent

    def step(self, kind: SyncKind = SyncKind.CHANGES) -> str:
        """Catch up and sync once; the kind of write (`load`, `delta`, `unchanged`)."""
        self.agent.catch_up()
        return self.agent.sync(kind).kind

    def expected(self) -> TableState:
        engine = PolicyEngine.from_manifests(self.store.manifests())
        return table_state(table_text(render_node(engine, "n1", OPTIONS)))

    def in_step(self) -> bool:
        return self.kernel.state() == self.expected()


@pytest.fixture
def harness() -> Iterator[Harness]:
    store = MemoryStore()
    store.put(BASE)
    kernel = FakeKernel()
    yield Harness(store, kernel, NodeAgent("n1", store, kernel, options=OPTIONS))


def test_the_first_sync_loads_the_whole_table_and_makes_the_agent_ready(
    harness: Harness,
) -> None:
    assert not harness.agent.status().ready
    assert harness.step(SyncKind.RESYNC) == "load"
    status = harness.agent.status()
    assert status.ready and status.applied_revision == harness.store.rev == 1
    assert status.last_sync is not None and status.last_sync.reason == "first load"
    assert harness.kernel.kinds() == ["full"]
    assert harness.in_step()
    assert harness.agent.metrics.changes_applied.get("load") == 1


def test_a_sync_before_the_store_was_listed_writes_nothing(harness: Harness) -> None:
    with pytest.raises(SyncError, match="store: the store has not been listed"):
        harness.agent.sync(SyncKind.RESYNC)
    assert harness.kernel.calls == []


def test_a_table_found_at_start_is_replaced_in_one_load_never_flushed(harness: Harness) -> None:
    harness.kernel.apply_full("table inet kanal {\n\tchain old {\n\t\tdrop\n\t}\n}\n")
    harness.kernel.calls.clear()
    harness.step(SyncKind.RESYNC)
    assert harness.kernel.kinds() == ["full"]
    status = harness.agent.status()
    assert status.last_sync is not None
    assert status.last_sync.reason == (
        "first load, replacing the table found (1 chains, 1 rules) atomically"
    )


def test_a_remote_pods_label_change_is_an_element_delta_without_a_render(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.step(SyncKind.RESYNC)
    renders = _count_renders(monkeypatch)
    harness.store.put([pod("x/other", node="n2", ip="10.0.2.3", app="client")])
    assert harness.step() == "delta"
    assert renders == []
    assert re.fullmatch(
        r"add element inet kanal pods_ns-x-app-client_[0-9a-f]{10}_v4 \{ 10\.0\.2\.3 \}\n",
        harness.kernel.calls[-1][1],
    )
    assert harness.in_step()


def test_a_local_pod_with_verdicts_the_node_has_is_patched_without_a_render(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.step(SyncKind.RESYNC)
    renders = _count_renders(monkeypatch)
    harness.store.put([pod("x/web2", node="n1", ip="10.0.1.3", app="web")])
    assert harness.step() == "delta"
    assert renders == []
    assert harness.agent.status().last_sync.reason == "patched"  # type: ignore[union-attr]
    assert "add element inet kanal ingress_pods_v4 { 10.0.1.3 : goto ingress_" in (
        harness.kernel.calls[-1][1]
    )
    assert harness.agent.metrics.pod_changes.get("local") == 1
    assert harness.in_step()


def test_a_local_pod_that_needs_a_new_dispatch_chain_adds_it_in_a_delta_and_takes_it_away(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.step(SyncKind.RESYNC)
    renders = _count_renders(monkeypatch)
    harness.store.put([netpol("x/db-from-web", select(app="db"), ingress=[peer(app="web")])])
    harness.step()  # no pod of the node has app=db: the policy adds nothing yet
    harness.store.put([pod("x/db", node="n1", ip="10.0.1.4", app="db")])
    assert harness.step() == "delta"
    assert harness.agent.status().last_sync.reason == "restructured"  # type: ignore[union-attr]
    sent = harness.kernel.calls[-1][1]
    assert sent.startswith("table inet kanal {\n\tset pods_ns-x-app-web_")  # its peers' set
    assert "\n\tchain ingress_" in sent
    assert "add element inet kanal ingress_pods_v4 { 10.0.1.4 : goto ingress_" in sent
    assert renders == ["n1"]  # the policy's, not the pod's
    assert harness.agent.metrics.pod_changes.get("local") == 1
    assert harness.in_step()
    harness.store.remove([ObjectRef("Pod", "x", "db")])
    assert harness.step() == "delta"
    sent = harness.kernel.calls[-1][1]
    assert sent.index("delete element inet kanal ingress_pods_v4 { 10.0.1.4 }") < sent.index(
        "delete chain inet kanal ingress_")
    assert renders == ["n1"]
    assert harness.in_step()


def test_a_new_policy_reloads_the_table_whole(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    harness.store.put([netpol("x/deny-egress", select(app="web"), egress=[])])
    assert harness.step() == "load"
    assert harness.agent.status().last_sync.reason == "structure changed"  # type: ignore[union-attr]
    assert harness.in_step()


def test_a_change_that_does_not_concern_the_node_writes_nothing_but_is_applied(
    harness: Harness,
) -> None:
    harness.step(SyncKind.RESYNC)
    harness.store.put([pod("x/lonely", node="n2", ip="10.0.2.9", app="nobody-selects-me")])
    assert harness.step() == "unchanged"
    assert harness.agent.status().applied_revision == harness.store.rev


def test_a_refused_delta_falls_back_to_a_whole_load(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    harness.kernel.fail("delta")
    harness.store.put([pod("x/other", node="n2", ip="10.0.2.3", app="client")])
    assert harness.step() == "load"
    assert harness.kernel.kinds() == ["full", "delta", "full"]
    assert harness.in_step()


def test_a_refused_load_keeps_the_old_table_and_the_retry_reloads(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    before = harness.kernel.state()
    harness.kernel.fail("full")
    harness.store.put([netpol("x/deny-egress", select(app="web"), egress=[])])
    with pytest.raises(SyncError, match="kernel: injected failure"):
        harness.step()
    assert harness.kernel.state() == before
    status = harness.agent.status()
    assert not status.ready and status.failures == 1 and status.applied_revision == 1
    assert harness.agent.metrics.sync_errors.get("kernel") == 1
    assert harness.step() == "load"  # the kernel's state is unknown: rewritten whole
    assert harness.in_step() and harness.agent.status().ready


def test_a_failing_render_keeps_the_old_table_and_is_reported(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.step(SyncKind.RESYNC)
    before = harness.kernel.state()
    calls = len(harness.kernel.calls)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("set name collides")

    monkeypatch.setattr(agent_module, "render_with_dispatch", broken)
    harness.store.put([netpol("x/deny-egress", select(app="web"), egress=[])])
    with pytest.raises(SyncError, match="render: RuntimeError: set name collides"):
        harness.step()
    assert len(harness.kernel.calls) == calls and harness.kernel.state() == before
    assert harness.agent.metrics.sync_errors.get("render") == 1
    monkeypatch.undo()
    assert harness.step() == "load"
    assert harness.in_step()


def test_an_engine_that_raises_is_rebuilt_from_the_mirror(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.step(SyncKind.RESYNC)
    engine = harness.agent.engine

    def broken(*args: object) -> None:
        raise AssertionError("broken invariant")

    monkeypatch.setattr(engine, "upsert_pod", broken)
    harness.store.put([pod("x/other", node="n2", ip="10.0.2.3", app="client")])
    harness.step()
    assert harness.agent.engine is not engine
    assert harness.agent.metrics.sync_errors.get("feed") == 1
    assert harness.in_step()


def test_an_unreadable_local_pod_is_denied_and_reported(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    bad = pod("x/bad", node="n1", ip="10.0.1.9", app="web")
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    harness.store.put([bad])
    harness.step()
    assert harness.kernel.maps["ingress_pods_v4"]["10.0.1.9"] == "drop"
    assert harness.kernel.maps["egress_pods_v4"]["10.0.1.9"] == "drop"
    status = harness.agent.status()
    assert any("Pod x/bad on node `n1` cannot be read" in p for p in status.problems)
    assert harness.agent.metrics.rejected_objects.value == 1
    harness.store.put([pod("x/bad", node="n1", ip="10.0.1.9", app="web")])  # fixed
    harness.step()
    assert harness.kernel.maps["ingress_pods_v4"]["10.0.1.9"].startswith("goto ingress_")
    assert harness.agent.status().problems == ()


def test_an_unreadable_policy_keeps_its_last_readable_version(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    before = harness.kernel.state()
    bad = netpol("x/allow-client", select(app="web"), ingress=[peer(app="client")])
    bad["spec"]["policyTypes"] = ["Sideways"]
    harness.store.put([bad])
    harness.step()
    assert harness.kernel.state() == before
    assert harness.agent.status().problems[0].startswith(
        "NetworkPolicy x/allow-client cannot be read ("
    )


def test_a_compacted_log_makes_the_agent_list_again_and_converge(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    harness.store.put([pod("x/other", node="n2", ip="10.0.2.3", app="client")])
    harness.store.remove([ObjectRef("Pod", "x", "client")])
    harness.store.compact()
    harness.step()
    assert harness.agent.metrics.store_relists.get() == 1
    assert harness.in_step()


def test_a_resync_repairs_a_table_changed_by_hand(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    structure = harness.kernel.structure
    assert structure is not None
    harness.kernel.structure = {
        key: tuple(line for line in lines if "ct state invalid" not in line)
        for key, lines in structure.items()
    }
    assert harness.step(SyncKind.RESYNC) == "load"
    assert harness.agent.status().last_sync.reason == "drift repaired"  # type: ignore[union-attr]
    assert harness.agent.metrics.drift_repairs.get() == 1
    assert harness.in_step()
    harness.step(SyncKind.RESYNC)
    assert harness.agent.status().last_sync.reason == "periodic resync"  # type: ignore[union-attr]


def test_metrics_describe_the_table_last_written(harness: Harness) -> None:
    harness.step(SyncKind.RESYNC)
    m = harness.agent.metrics
    stats = render_node(
        PolicyEngine.from_manifests(parse_documents(("t", d) for d in BASE)), "n1", OPTIONS
    ).stats()
    assert (m.rules.value, m.set_elements.value, m.map_elements.value) == (
        stats["rules"], stats["set_elements"], stats["map_elements"]
    )
    text = m.exposition()
    assert 'kanal_agent_changes_applied_total{kind="load"} 1' in text
    assert "kanal_agent_applied_revision 1" in text
    assert "kanal_agent_sync_duration_seconds_count 1" in text


def _count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = agent_module.render_with_dispatch

    def counting(engine: PolicyEngine, node_name: str, options: RenderOptions | None = None):  # type: ignore[no-untyped-def]
        calls.append(node_name)
        return real(engine, node_name, options)

    monkeypatch.setattr(agent_module, "render_with_dispatch", counting)
    return calls


def test_a_store_hiccup_makes_the_agent_unready_until_the_store_answers_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.step(SyncKind.RESYNC)
    calls = len(harness.kernel.calls)

    def locked(since: int, *, timeout: float = 0.0) -> object:
        raise StoreError("database is locked")

    monkeypatch.setattr(harness.store, "poll", locked)
    with pytest.raises(StoreError):
        harness.agent.catch_up()
    harness.agent.note_store_error(StoreError("database is locked"))
    assert not harness.agent.status().ready
    monkeypatch.undo()
    harness.agent.catch_up()
    status = harness.agent.status()
    assert (status.ready, status.last_error) == (True, None)
    assert len(harness.kernel.calls) == calls  # the table was never touched


def test_what_the_renderer_cannot_express_is_reported_in_status_metric_and_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.store.put([pod("x/twin", node="n1", ip="10.0.1.2", app="client")])  # web's address
    with caplog.at_level("WARNING", logger="kanal.agent"):
        harness.step(SyncKind.RESYNC)
        harness.step(SyncKind.RESYNC)
    problems = harness.agent.status().problems
    assert any("address 10.0.1.2 is claimed by pods `x/twin`, `x/web`" in p for p in problems)
    assert harness.agent.metrics.render_problems.value == len(problems)
    logged = [r.getMessage() for r in caplog.records if "is claimed by" in r.getMessage()]
    assert len(logged) == 1, "each problem is logged once, not at every sync"
    assert harness.kernel.maps["ingress_pods_v4"]["10.0.1.2"] == "drop"  # they disagree: closed
