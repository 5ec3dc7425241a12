"""The collector's alert stage end to end, without a kernel: NFLOG messages through the flow
pipeline, AlertRules and the quarantine policy read from a real datastore, alerts stored in the
real flow database, posted to a real HTTP server and quarantining the pod in the datastore,
after which the engine denies it everywhere; repeats are throttled and counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kanal.engine import Outcome, PolicyEngine
from kanal.flows.alerting import AlertDispatcher
from kanal.flows.alertstore import AlertFilter, AlertStore
from kanal.flows.attribute import Attributor
from kanal.flows.netlink import split_messages
from kanal.flows.nflog import LogEvent, parse_packet
from kanal.flows.pipeline import FlowPipeline
from kanal.flows.stats import prometheus_text
from kanal.flows.store import FlowStore
from kanal.model.objects import Protocol
from kanal.render import RenderOptions, render_node
from kanal.store.api import ObjectRef
from kanal.store.sqlite import SqliteStore

from . import cluster
from .messages import ipv4, nflog_packet, ports
from .test_webhook import Hook, hook  # noqa: F401 (the fixture)

OTHER, WEB = "10.244.2.3", "10.244.1.2"
T0 = 1_700_000_000.0

QUARANTINE_POLICY = {
    "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
    "metadata": {"name": "quarantine"},
    "spec": {
        "priority": 0,
        "subject": {"pods": {"namespaceSelector": {},
                             "podSelector": {"matchLabels": {"kanal.io/quarantine": "true"}}}},
        "ingress": [{"name": "isolate-in", "action": "Deny", "from": [{"namespaces": {}}]}],
        "egress": [{"name": "isolate-out", "action": "Deny",
                    "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}],
    },
}


def alert_rule(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "kanal.io/v1alpha1", "kind": "AlertRule",
        "metadata": {"name": "hammering-x"},
        "spec": {"metric": "DeniedFlows", "threshold": 2, "period": "1m", "throttle": "1h",
                 "scope": {"namespace": "x"},
                 "actions": [{"quarantine": {}}, {"webhook": {"url": url, "retries": 0}}]},
    }


@dataclass
class Stage:
    datastore: SqliteStore
    pipeline: FlowPipeline
    dispatcher: AlertDispatcher
    db: Path
    said: list[str]

    def denied(self, sport: int, at: float) -> None:
        """z/other -> x/web:80, dropped by x's default deny at node-0."""
        table = self.pipeline.attributor.log_table
        prefix = next(i for i, e in table.items() if e.outcome is Outcome.DEFAULT_DENY)
        [msg] = split_messages(nflog_packet(prefix, ipv4(OTHER, WEB, 6, ports(sport, 80))))
        event = parse_packet(msg, received=T0 + at)
        assert isinstance(event, LogEvent)
        self.pipeline.on_log_events([event])
        self.pipeline.tick(now=T0 + at)


@pytest.fixture
def stage(tmp_path: Path, hook: Hook) -> Iterator[Stage]:  # noqa: F811
    datastore = SqliteStore(tmp_path / "store.db")
    datastore.apply([("test", d) for d in [*cluster.documents(), QUARANTINE_POLICY,
                                           alert_rule(hook.url)]])
    manifests = datastore.manifests()
    engine = PolicyEngine.from_manifests(manifests)
    table = render_node(engine, "node-0", RenderOptions(log_group=7)).log_table()
    flows = FlowStore(tmp_path / "flows.db")
    pipeline = FlowPipeline(flows, Attributor(engine, table, node="node-0"), timeouts={})
    said: list[str] = []
    dispatcher = AlertDispatcher(node="node-0", db=tmp_path / "flows.db",
                                 datastore=tmp_path / "store.db", say=said.append,
                                 webhook_backoff_s=0.01)
    dispatcher.load(manifests)
    pipeline.observers.append(dispatcher)
    yield Stage(datastore, pipeline, dispatcher, tmp_path / "flows.db", said)
    dispatcher.close()
    flows.close()
    datastore.close()


def test_an_alert_is_logged_stored_posted_and_quarantines_the_pod(
    stage: Stage, hook: Hook  # noqa: F811
) -> None:
    revision = stage.datastore.revision()
    for i in range(2):
        stage.denied(40000 + i, at=i)
    assert stage.said == ["alert rules: hammering-x"]
    stage.denied(40002, at=2)

    summary = "z/other sent 3 denied flows within 1m (scope: namespace x): more than 2"
    quarantined = (f"quarantined z/other: labelled kanal.io/quarantine=true (store revision "
                   f"{revision + 1})")
    assert stage.said[1:] == [f"alert `hammering-x`: {summary}; {quarantined}; webhook POST "
                              f"{hook.url}"]
    alerts = AlertStore(stage.db, create=False)
    [alert] = alerts.query(AlertFilter())
    alerts.close()
    assert (alert.rule, alert.key.text, alert.value, alert.time, alert.summary) == (
        "hammering-x", "z/other", 3.0, T0 + 2, summary)
    assert alert.actions == (quarantined, f"webhook POST {hook.url}")

    pod = stage.datastore.get(ObjectRef("Pod", "z", "other"))
    assert pod is not None and pod.doc["metadata"]["labels"]["kanal.io/quarantine"] == "true"
    engine = PolicyEngine.from_manifests(stage.datastore.manifests())
    isolated = engine.explain("z/other", "x/web", 80, Protocol.TCP)
    assert not isolated.allowed
    assert isolated.egress.deciding.policy == "quarantine"

    assert stage.dispatcher.wait_webhooks(10)
    assert hook.bodies == [alert.to_json()]


def test_repeats_are_throttled_and_everything_is_counted(stage: Stage) -> None:
    for i in range(6):
        stage.denied(40000 + i, at=i)
    revision = stage.datastore.revision()
    stage.denied(40010, at=30)
    assert stage.datastore.revision() == revision  # no second label
    assert stage.dispatcher.wait_webhooks(10)
    flows = FlowStore(stage.db, create=False)
    flows.add_counters(stage.dispatcher.counters())
    text = prometheus_text(flows.totals())
    flows.close()
    samples = [line for line in text.splitlines() if line.startswith("kanal_alert")]
    assert samples == [
        'kanal_alerts_fired_total{node="node-0",rule="hammering-x"} 1',
        'kanal_alerts_throttled_total{node="node-0",rule="hammering-x"} 4',
        'kanal_alert_webhooks_total{node="node-0",outcome="delivered",rule="hammering-x"} 1',
        'kanal_alert_quarantines_total{node="node-0",outcome="labelled",rule="hammering-x"} 1',
    ]


def test_alerts_wait_for_a_flow_database_that_fails(stage: Stage, tmp_path: Path) -> None:
    stage.dispatcher._db = tmp_path / "missing-dir" / "nope" / "flows.db"
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    for i in range(3):
        stage.denied(40000 + i, at=i)
    assert any(line.startswith("warning: 1 alert(s) not stored yet") for line in stage.said)
    stage.dispatcher._db = stage.db
    stage.dispatcher.flush()
    alerts = AlertStore(stage.db, create=False)
    assert [a.rule for a in alerts.query(AlertFilter())] == ["hammering-x"]
    alerts.close()
