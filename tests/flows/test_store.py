"""The flow store: records round-trip, Hubble-style filters, completion and counters,
retention by age, rows and size, the follow stream and JSON-lines export."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kanal.flows.filters import FilterError, FlowFilter, parse_duration, split_pod
from kanal.flows.records import FlowRecord, Source, Verdict
from kanal.flows.store import FlowStore
from kanal.flows.tables import FlowStoreError

from .builders import (
    ANP_DENY,
    CLIENT_B,
    EGRESS_DENY_OTHER,
    NOT_ISOLATED_EGRESS,
    OTHER,
    T0,
    at,
    denied,
    finished,
    record,
    to_port,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlowStore]:
    opened = FlowStore(tmp_path / "flows.db")
    yield opened
    opened.close()


def test_records_come_back_as_they_went_in_with_their_ids(store: FlowStore) -> None:
    written = [record(), record(denied, at(1)),
               record(at(2), decision=NOT_ISOLATED_EGRESS, source=Source.CONNTRACK,
                      src=CLIENT_B),
               record(at(3), dst=replace(OTHER, pod=None, namespace=None, labels={},
                                         node="node-1"))]
    ids = store.insert(written)
    assert ids == [1, 2, 3, 4]
    expected = [replace(r, id=i) for r, i in zip(written, ids, strict=True)]
    assert store.query(FlowFilter()) == expected


CASES: list[tuple[str, FlowFilter, list[int]]] = [
    ("no filter", FlowFilter(), [1, 2, 3, 4, 5, 6]),
    ("from pod", FlowFilter(from_pod=("z", "other")), [2, 5]),
    ("to pod", FlowFilter(to_pod=("x", "web")), [1, 2, 3, 4, 6]),
    ("from namespace", FlowFilter(from_namespace="y"), [1, 3, 4, 6]),
    ("to namespace", FlowFilter(to_namespace="y"), [5]),
    ("denied", FlowFilter(verdict=Verdict.DENIED), [2, 5, 6]),
    ("allowed", FlowFilter(verdict=Verdict.ALLOWED), [1, 3, 4]),
    ("policy by rule and default deny", FlowFilter(policy="x/allow-clients"), [1, 2, 3, 4]),
    ("policy by default deny it isolates", FlowFilter(policy="x/default-deny"), [2]),
    ("cluster-scoped policy", FlowFilter(policy="guard"), [6]),
    ("unknown policy", FlowFilter(policy="x/nope"), []),
    ("port, either end", FlowFilter(port=81), [3]),
    ("source port matches too", FlowFilter(port=40001), [4]),
    ("protocol, any case", FlowFilter(protocol="udp"), [4]),
    ("node", FlowFilter(node="node-1"), [5]),
    ("unknown node", FlowFilter(node="node-9"), []),
    ("since", FlowFilter(since=T0 + 2), [3, 4, 5, 6]),
    ("combined", FlowFilter(from_namespace="y", verdict=Verdict.ALLOWED, port=80), [1]),
]


@pytest.mark.parametrize(("flow_filter", "expected"), [(f, e) for _, f, e in CASES],
                         ids=[c[0] for c in CASES])
def test_filters(store: FlowStore, flow_filter: FlowFilter, expected: list[int]) -> None:
    store.insert([
        record(),
        record(denied, at(1)),
        record(to_port(81), at(2)),
        record(at(3), protocol="UDP", src=CLIENT_B, dst=replace(record().dst, port=53)),
        record(at(4), node="node-1", src=OTHER, dst=replace(CLIENT_B, port=80),
               decision=EGRESS_DENY_OTHER),
        record(at(5), decision=ANP_DENY),
    ])
    assert [r.id for r in store.query(flow_filter)] == expected


def test_last_n_gives_the_last_to_arrive_in_time_order(store: FlowStore) -> None:
    store.insert([record(at(i)) for i in range(10)])
    store.insert([record(at(4.5))])  # a conntrack record arrives after its time
    assert [r.id for r in store.query(FlowFilter(), last=3)] == [11, 9, 10]
    assert [r.id for r in store.query(FlowFilter())][4:7] == [5, 11, 6]


def test_completion_sets_bytes_and_counts_them_per_flow_and_rule(store: FlowStore) -> None:
    [ident] = store.insert([record()])
    store.complete([(record(id=ident), finished(1432, 8, 0.25))])
    [back] = store.query(FlowFilter())
    assert back.completion == finished(1432, 8, 0.25)
    assert back.to_json()["bytes"] == 1432 and back.to_json()["duration_s"] == 0.25
    counters = {(c.name, json.dumps(c.labels, sort_keys=True)): c.value
                for c in store.counters()}
    flow = json.dumps({"direction": "ingress", "node": "node-0", "verdict": "allowed"},
                      sort_keys=True)
    rule = json.dumps({"decision": "k:aaaaaaaaaaaa"})
    assert counters == {("flows", flow): 1, ("flow_bytes", flow): 1432,
                        ("flow_packets", flow): 8, ("decision_hits", rule): 1,
                        ("decision_bytes", rule): 1432, ("decision_packets", rule): 8}


def test_retention_drops_the_oldest_rows_and_keeps_the_counters(store: FlowStore) -> None:
    store.insert([record(at(i)) for i in range(100)])
    assert store.prune(now=T0 + 100, max_age=50.5) == 50
    assert store.prune(now=T0 + 100, max_rows=20) == 30
    assert [r.id for r in store.query(FlowFilter())] == list(range(81, 101))
    hits = next(c.value for c in store.counters() if c.name == "decision_hits")
    assert hits == 100
    assert store.stats()["pruned"] == 80


def test_retention_by_size_keeps_what_fits(store: FlowStore) -> None:
    store.insert([record(at(i), summary=f"sentence {i} " + "x" * 200) for i in range(2000)])
    size = store.size_bytes()
    dropped = store.prune(now=T0, max_bytes=size // 2)
    assert 900 <= dropped <= 1100
    assert store.size_bytes() < size  # pages are given back


def test_follow_yields_rows_committed_by_another_writer(tmp_path: Path) -> None:
    reader = FlowStore(tmp_path / "flows.db", poll_interval=0.01)
    writer = FlowStore(tmp_path / "flows.db")
    writer.insert([record()])
    got: list[FlowRecord] = []
    done = threading.Event()
    after = reader.last_id()

    def follow() -> None:
        for found in reader.follow(FlowFilter(after_id=after, verdict=Verdict.DENIED),
                                   stop=done.is_set):
            got.append(found)
            if len(got) == 2:
                done.set()

    thread = threading.Thread(target=follow)
    thread.start()
    writer.insert([record(denied), record(), record(denied)])
    thread.join(timeout=5)
    done.set()
    assert [r.id for r in got] == [2, 4]
    reader.close()
    writer.close()


def test_export_writes_one_json_object_per_line(store: FlowStore) -> None:
    store.insert([record(), record(denied)])
    out = io.StringIO()
    assert store.export_jsonl(FlowFilter(verdict=Verdict.DENIED), out) == 1
    [line] = out.getvalue().splitlines()
    assert json.loads(line)["default_deny"]["isolated_by"][1] == {
        "namespace": "x", "name": "default-deny"}


def test_a_missing_database_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(FlowStoreError, match=r"no flow database at .*start the lab's flow"):
        FlowStore(tmp_path / "none.db", create=False)
    assert not (tmp_path / "none.db").exists()


def test_a_database_of_something_else_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(FlowStoreError, match="not a kanal flow database"):
        FlowStore(other)


@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300.0), ("90s", 90.0), ("1h30m", 5400.0), ("2d", 172800.0), ("250ms", 0.25),
    ("1.5h", 5400.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "5y", "-5m"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(FilterError, match="like 5m or 1h30m"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["web", "x/", "/web", "x/web/1"])
def test_pods_are_namespace_slash_name(text: str) -> None:
    with pytest.raises(FilterError, match="NAMESPACE/NAME"):
        split_pod(text)
    assert split_pod("x/web") == ("x", "web")

