"""The pipeline from parsed kernel events to stored records: logged packets, connections no
rule logged, completion by DESTROY, unknown log ids held for a reload, bounded state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kanal.engine import Outcome
from kanal.flows.attribute import Attributor
from kanal.flows.conntrack import CtEvent, parse_event
from kanal.flows.filters import FlowFilter
from kanal.flows.netlink import split_messages
from kanal.flows.nflog import LogEvent, parse_packet
from kanal.flows.pipeline import FlowPipeline
from kanal.flows.records import FlowRecord
from kanal.flows.store import FlowStore
from kanal.flows.tables import FlowStoreError
from kanal.render import RenderOptions, render_node

from . import cluster
from .messages import ct_event, ipv4, nflog_packet, ports

CLIENT_A, CLIENT_B, WEB = "10.244.1.3", "10.244.2.2", "10.244.1.2"
TIMEOUTS = {"tcp_timeout_time_wait": 120.0}


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[FlowPipeline]:
    store = FlowStore(tmp_path / "flows.db")
    engine = cluster.engine()
    table = render_node(engine, "node-0", RenderOptions(log_group=7)).log_table()
    yield FlowPipeline(store, Attributor(engine, table, node="node-0"), timeouts=TIMEOUTS,
                       grace_s=0.5)
    store.close()


def _log(pipeline: FlowPipeline, outcome: Outcome, src: str, sport: int, dport: int,
         time: float = 10.0) -> LogEvent:
    prefix = next(i for i, e in pipeline.attributor.log_table.items() if e.outcome is outcome)
    [msg] = split_messages(nflog_packet(prefix, ipv4(src, WEB, 6, ports(sport, dport))))
    event = parse_packet(msg, received=time)
    assert event is not None
    return event


def _ct(*, destroy: bool, src: str, sport: int, dport: int = 80, time: float = 10.0,
        **fields: object) -> CtEvent:
    [msg] = split_messages(ct_event(destroy=destroy, src=src, dst=WEB, protocol=6, sport=sport,
                                    dport=dport, **fields))  # type: ignore[arg-type]
    event = parse_event(msg, received=time)
    assert event is not None
    return event


def _stored(pipeline: FlowPipeline) -> list[tuple[str, str, str, object]]:
    return [(r.direction.value, r.decision.describe(), r.source.value,
             None if r.completion is None else r.completion.bytes)
            for r in pipeline.store.query(FlowFilter())]


def test_a_logged_connection_gets_its_bytes_when_it_ends(pipeline: FlowPipeline) -> None:
    pipeline.on_log_events([_log(pipeline, Outcome.ALLOW, CLIENT_B, 5000, 80)])
    pipeline.on_ct_events([_ct(destroy=False, src=CLIENT_B, sport=5000)], now=10.0)
    pipeline.tick(now=10.6)  # client-b runs on node-1: nothing else to record here
    pipeline.on_ct_events([_ct(destroy=True, src=CLIENT_B, sport=5000, orig=(6, 500),
                               reply=(5, 900), start_ns=10 * 10**9, stop_ns=132 * 10**9,
                               tcp_state=7)], now=140.0)
    pipeline.tick(now=140.0)
    assert _stored(pipeline) == [
        ("Ingress", "[NetworkPolicy x/allow-clients] rule #0 Allow", "nflog", 1400)]
    [record] = pipeline.store.query(FlowFilter())
    assert record.completion is not None and record.completion.duration == 2.0
    assert not pipeline.open and not pipeline.pending


def test_an_unlogged_local_direction_is_recorded_after_the_grace(pipeline: FlowPipeline) -> None:
    pipeline.on_log_events([_log(pipeline, Outcome.ALLOW, CLIENT_A, 5001, 80)])
    pipeline.on_ct_events([_ct(destroy=False, src=CLIENT_A, sport=5001)], now=10.0)
    pipeline.tick(now=10.2)
    assert len(_stored(pipeline)) == 1  # still within the grace
    pipeline.tick(now=10.6)
    assert _stored(pipeline) == [
        ("Ingress", "[NetworkPolicy x/allow-clients] rule #0 Allow", "nflog", None),
        ("Egress", "not isolated", "conntrack", None)]
    pipeline.on_ct_events([_ct(destroy=True, src=CLIENT_A, sport=5001, orig=(3, 180),
                               reply=(2, 120))], now=20.0)
    pipeline.tick(now=20.0)
    assert [b for *_, b in _stored(pipeline)] == [300, 300]


def test_a_connection_ending_within_the_grace_is_recorded_and_completed(
    pipeline: FlowPipeline
) -> None:
    pipeline.on_ct_events([_ct(destroy=False, src=CLIENT_A, sport=5002, dport=81)], now=10.0)
    pipeline.on_ct_events([_ct(destroy=True, src=CLIENT_A, sport=5002, dport=81,
                               orig=(1, 60))], now=10.1)
    pipeline.tick(now=10.1)
    # The engine would deny web's ingress on 81, yet conntrack confirmed the connection, so
    # the kernel allowed it: that direction is counted as a disagreement, not recorded.
    assert _stored(pipeline) == [("Egress", "not isolated", "conntrack", 60)]
    assert pipeline.health["disagreements"] == 1


def test_denied_records_wait_for_no_destroy(pipeline: FlowPipeline) -> None:
    pipeline.on_log_events([_log(pipeline, Outcome.DEFAULT_DENY, CLIENT_B, 5003, 81)])
    pipeline.tick(now=11.0)
    assert [d for _, d, _, _ in _stored(pipeline)] == [
        "default deny (isolated by x/allow-clients, x/default-deny)"]
    assert not pipeline.open


def test_unknown_ids_are_held_for_a_reload_then_counted(pipeline: FlowPipeline) -> None:
    known = _log(pipeline, Outcome.ALLOW, CLIENT_B, 5004, 80)
    unknown = LogEvent("k:000000000000", 7, 10.0, known.packet)
    pipeline.on_log_events([unknown, known])
    assert pipeline.unknown == [unknown] and len(pipeline.batch) == 1
    assert pipeline.retry_unknown() == ["k:000000000000"]
    assert pipeline.health["unknown_log_ids"] == 1 and pipeline.unknown == []


def test_open_connections_are_bounded(pipeline: FlowPipeline) -> None:
    pipeline.max_open = 2
    pipeline.on_log_events([_log(pipeline, Outcome.ALLOW, CLIENT_B, p, 80) for p in (1, 2, 3)])
    pipeline.flush()
    assert [key[2] for key in pipeline.open] == [2, 3] and pipeline.health["forgotten"] == 1


def test_a_store_that_fails_loses_nothing(pipeline: FlowPipeline,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.store.insert
    calls = iter([True, False])

    def flaky(records: list[FlowRecord]) -> list[int]:
        if next(calls, False):
            raise FlowStoreError("cannot use flow database: database is locked")
        return real(records)

    monkeypatch.setattr(pipeline.store, "insert", flaky)
    pipeline.on_log_events([_log(pipeline, Outcome.ALLOW, CLIENT_B, 5005, 80)])
    pipeline.on_ct_events([_ct(destroy=True, src=CLIENT_B, sport=5005, orig=(2, 100))],
                          now=10.0)
    with pytest.raises(FlowStoreError):
        pipeline.tick(now=10.0)
    pipeline.tick(now=10.1)
    assert _stored(pipeline) == [
        ("Ingress", "[NetworkPolicy x/allow-clients] rule #0 Allow", "nflog", 100)]
