"""AlertStore: alerts in the flow database, read back whole, filtered, followed and pruned."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kanal.flows.alerts import Alert
from kanal.flows.alertscope import AlertKey
from kanal.flows.alertstore import AlertFilter, AlertStore
from kanal.flows.store import FlowStore
from kanal.model.alertrule import AlertMetric, AlertType

from .builders import T0

SCAN = Alert("scan", AlertMetric.DESTINATION_PORTS, AlertType.UNIQUE_COUNT,
             AlertKey("z/other", "z", "other", "10.244.2.3"), 11.0, 10.0, 30.0, None,
             T0 + 0.123456789, "node-1", "namespace x",
             "z/other sent flows to 11 distinct destination ports within 30s (scope: "
             "namespace x): more than 10",
             ("quarantined z/other: labelled kanal.io/quarantine=true (store revision 9)",))
BYTES = Alert("big", AlertMetric.BYTES, AlertType.ROLLING_AVERAGE,
              AlertKey("192.0.2.9", ip="192.0.2.9"), 2.5e6, 1e6, 60.0, 600.0, T0 + 100,
              "node-0", "every flow", "...", ())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    found = AlertStore(tmp_path / "flows.db")
    yield found
    found.close()


def test_alerts_come_back_whole_with_ids(store: AlertStore) -> None:
    stored = store.insert([SCAN, BYTES])
    assert [a.id for a in stored] == [1, 2]
    assert store.query(AlertFilter()) == stored
    assert store.last_id() == 2


@pytest.mark.parametrize(("alert_filter", "last", "rules"), [
    (AlertFilter(), None, ["scan", "big", "scan"]),
    (AlertFilter(since=T0 + 50), None, ["big", "scan"]),
    (AlertFilter(rule="scan"), None, ["scan", "scan"]),
    (AlertFilter(), 1, ["scan"]),
    (AlertFilter(after_id=2), None, ["scan"]),
], ids=["all", "since", "rule", "last", "after an id"])
def test_filters(
    store: AlertStore, alert_filter: AlertFilter, last: int | None, rules: list[str]
) -> None:
    store.insert([SCAN, BYTES, replace(SCAN, time=T0 + 200)])
    assert [a.rule for a in store.query(alert_filter, last=last)] == rules


def test_follow_yields_new_alerts_in_arrival_order(store: AlertStore, tmp_path: Path) -> None:
    store.insert([SCAN])
    writer = AlertStore(tmp_path / "flows.db")
    stream = store.follow(AlertFilter(after_id=1), sleep=lambda _: None)
    writer.insert([BYTES, replace(SCAN, time=T0)])
    assert [(a.rule, a.id) for a in (next(stream), next(stream))] == [("big", 2), ("scan", 3)]
    writer.close()


def test_prune_by_age_and_count(store: AlertStore) -> None:
    store.insert([replace(SCAN, time=T0 + i) for i in range(10)])
    assert store.prune(now=T0 + 100, max_age=95, max_rows=None) == 5
    assert store.prune(now=T0 + 100, max_age=None, max_rows=2) == 3
    assert [a.time for a in store.query(AlertFilter())] == [T0 + 8, T0 + 9]


def test_a_flow_database_from_before_alerts_gains_the_table(tmp_path: Path) -> None:
    FlowStore(tmp_path / "flows.db").close()
    AlertStore(tmp_path / "flows.db").close()
    tables = sqlite3.connect(tmp_path / "flows.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert ("alerts",) in tables and ("flows",) in tables
    FlowStore(tmp_path / "flows.db", create=False).close()  # still a flow database
