"""bench/bench_flows.py keeps working: its events are what the node's table logs, and its
ingest path stores one record per NFLOG message (no timing asserted)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from kanal.engine import PolicyEngine
from kanal.flows.filters import FlowFilter
from kanal.flows.store import FlowStore
from kanal.render import RenderOptions, render_node

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_flows  # noqa: E402
from generate import ClusterSpec, generate  # noqa: E402


def test_the_ingest_benchmark_stores_one_record_per_log_message(tmp_path: Path) -> None:
    manifests = generate(ClusterSpec(pods=200, policies=20, admin_policies=3, baseline=True))
    engine = PolicyEngine.from_manifests(manifests)
    node = min(n.name for n in manifests.nodes)
    table = render_node(engine, node, RenderOptions(log_group=100)).log_table()
    events = bench_flows.logged_events(engine, node, table, count=100, rng=random.Random(3))
    assert events and any(e.allowed for e in events) and not all(e.allowed for e in events)
    result = bench_flows.ingest(engine, node, table, events, total=300, batch=64,
                                conntrack=True, directory=tmp_path)
    store = FlowStore(result.store, create=False)
    records = store.query(FlowFilter())
    store.close()
    allowed = sum(r.verdict.value == "allowed" for r in records)
    assert result.events == 300 and len(records) + 2 * allowed in (300, 301, 302)
    assert all(r.summary and r.decision.log_id for r in records)
    assert any(r.completion is not None and r.completion.bytes == 1800 for r in records)
