"""The agent's HTTP endpoints, its metrics exposition, and the loop that ties store, runner and
kernel together (in the root netns on an ephemeral port: no kernel state is touched)."""

from __future__ import annotations

import re
import threading

import pytest

from kanal.agent.agent import NodeAgent, SyncError
from kanal.agent.client import AgentUnreachable, fetch, status
from kanal.agent.http import serving
from kanal.agent.main import run_loop
from kanal.agent.metrics import AgentMetrics, Counter, Histogram
from kanal.agent.runner import BoundedFrequencyRunner, RunnerConfig
from kanal.render import RenderOptions
from kanal.store.api import StoreError

from .builders import namespace, netpol, pod, select
from .fakes import FakeKernel, MemoryStore

OPTIONS = RenderOptions(vxlan_port=None)


def _agent() -> tuple[MemoryStore, FakeKernel, NodeAgent]:
    store = MemoryStore()
    store.put([namespace("x"), pod("x/a", node="n1", ip="10.0.1.2", app="a"),
               netpol("x/deny", select(app="a"), ingress=[])])
    kernel = FakeKernel()
    return store, kernel, NodeAgent("n1", store, kernel, options=OPTIONS)


def test_endpoints_before_and_after_the_first_sync() -> None:
    _, _, agent = _agent()
    with serving(agent, port=0) as server:
        assert fetch("/healthz", port=server.port).body == "ok\n"
        reply = fetch("/readyz", port=server.port)
        assert (reply.status, reply.body) == (503, "no successful sync yet\n")
        agent.catch_up()
        agent.sync()
        assert fetch("/readyz", port=server.port).status == 200
        document = status(port=server.port)
        assert document["ready"] and document["healthy"]
        assert (document["node"], document["applied_revision"]) == ("n1", 1)
        assert document["last_sync"]["kind"] == "load"
        metrics = fetch("/metrics", port=server.port)
        assert "kanal_agent_ready 1\n" in metrics.body
        assert fetch("/nothing", port=server.port).status == 404


def test_a_stalled_loop_is_unhealthy() -> None:
    _, _, agent = _agent()
    with serving(agent, port=0, liveness_timeout=5.0) as server:
        agent.heartbeat -= 10
        reply = fetch("/healthz", port=server.port)
        assert reply.status == 503
        assert re.fullmatch(r"the agent's loop has not run for 1\d s\n", reply.body)


def test_nobody_listening_is_reported_as_unreachable() -> None:
    _, _, agent = _agent()
    with serving(agent, port=0) as server:
        port = server.port
    with pytest.raises(AgentUnreachable, match=f"no agent answers on 127.0.0.1:{port}"):
        fetch("/healthz", port=port, timeout=1.0)


def test_the_exposition_follows_the_prometheus_text_format() -> None:
    metrics = AgentMetrics()
    metrics.sync_duration.observe(0.003)
    metrics.sync_duration.observe(0.3)
    metrics.changes_applied.inc("delta")
    metrics.sync_errors.inc("kernel", 2)
    text = metrics.exposition()
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("# ") or re.fullmatch(
            r"[a-z_]+(\{[a-z]+=\"[^\"]*\"(,[a-z]+=\"[^\"]*\")*\})? \S+", line
        ), line
    assert '# TYPE kanal_agent_sync_duration_seconds histogram' in text
    assert 'kanal_agent_sync_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'kanal_agent_sync_duration_seconds_bucket{le="0.5"} 2' in text
    assert 'kanal_agent_sync_duration_seconds_bucket{le="+Inf"} 2' in text
    assert 'kanal_agent_changes_applied_total{kind="delta"} 1' in text
    assert 'kanal_agent_sync_errors_total{stage="kernel"} 2' in text
    assert re.search(r"^process_resident_memory_bytes [1-9]\d+$", text, re.M)


def test_counters_refuse_label_values_outside_their_fixed_set() -> None:
    counter = Counter("kanal_x_total", "x", label="kind", values=("a",))
    with pytest.raises(ValueError, match="unknown kind value 'b'"):
        counter.inc("b")


def test_a_histogram_counts_values_above_every_bucket_only_in_inf() -> None:
    histogram = Histogram("h", "h", (1.0,))
    histogram.observe(5.0)
    assert histogram.lines() == ['h_bucket{le="1"} 0', 'h_bucket{le="+Inf"} 1', "h_sum 5",
                                 "h_count 1"]


def test_the_loop_lists_syncs_and_stops() -> None:
    store, _kernel, agent = _agent()
    stop = threading.Event()
    loads = 0

    class Stopping(FakeKernel):
        def apply_full(self, text: str) -> None:
            nonlocal loads
            super().apply_full(text)
            loads += 1
            stop.set()

    agent.dataplane = Stopping()
    runner = BoundedFrequencyRunner(agent.sync, RunnerConfig(), retryable=(SyncError,))
    run_loop(agent, runner, stop, max_wait=0.01)
    assert loads == 1 and agent.status().ready
    assert agent.status().applied_revision == store.rev


def test_the_loop_survives_a_store_that_cannot_be_read_and_writes_nothing() -> None:
    store, kernel, agent = _agent()
    stop = threading.Event()
    attempts = 0

    def failing(kind: str | None = None, namespace: str | None = None) -> object:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            stop.set()
        raise StoreError("cannot open `store.db`: database is locked")

    store.list = failing  # type: ignore[method-assign, assignment]
    runner = BoundedFrequencyRunner(agent.sync, RunnerConfig(), retryable=(SyncError,))
    run_loop(agent, runner, stop, max_wait=0.0)
    assert kernel.calls == []
    assert agent.metrics.sync_errors.get("store") == 3
    assert agent.status().last_error == "store: cannot open `store.db`: database is locked"
