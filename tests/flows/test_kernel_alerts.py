"""Alerts from real packets: a collector process reads an AlertRule from the datastore, real
denied connections cross its threshold, and the alert is logged, stored, posted to a webhook
on the host's loopback and quarantines the pod in the datastore; repeats are throttled.

The minilab and its tables are `test_kernel_collector`'s; no agent runs here, so the quarantine
is checked in the datastore (the lab's tests check that agents then isolate the pod).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kanal.flows.alertstore import AlertFilter, AlertStore
from kanal.flows.collector import collector_command
from kanal.flows.filters import FlowFilter
from kanal.flows.store import FlowStore
from kanal.model.objects import Protocol
from kanal.store.api import ObjectRef
from kanal.store.sqlite import SqliteStore

from . import cluster
from .test_alerting import QUARANTINE_POLICY
from .test_kernel_collector import GROUP, Lab, _probe, _wait_for, lab, servers  # noqa: F401
from .test_webhook import Hook, hook  # noqa: F401

pytestmark = pytest.mark.kernel


def test_denied_probes_fire_one_alert_that_quarantines_the_pod(
    lab: Lab, servers: None, hook: Hook, tmp_path: Path  # noqa: F811
) -> None:
    rule = {
        "apiVersion": "kanal.io/v1alpha1", "kind": "AlertRule",
        "metadata": {"name": "denied-into-x"},
        "spec": {"metric": "DeniedFlows", "threshold": 2, "period": "1m", "throttle": "1h",
                 "scope": {"namespace": "x"},
                 "actions": [{"quarantine": {}}, {"webhook": {"url": hook.url}}]},
    }
    datastore = SqliteStore(tmp_path / "store.db")
    datastore.apply([("test", d) for d in [*cluster.documents(
        [p.node for p in lab.minilab.pods], [str(p.ip) for p in lab.minilab.pods]),
        QUARANTINE_POLICY, rule]])
    node = lab.pod("web").node
    ready = tmp_path / "ready"
    argv = collector_command(node=node, netns=node, group=GROUP, db=lab.db,
                             manifests=tmp_path / "store.db", ready_file=ready,
                             python=sys.executable)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    alerts = None
    try:
        _wait_for(lambda: ready.exists() or proc.poll() is not None, 15)
        assert proc.poll() is None, proc.communicate()
        revision = datastore.revision()
        attempts = [("client-a", "web", 81, Protocol.TCP)] * 3  # denied: x's default deny
        assert _probe(lab, attempts) == [False] * 3
        alerts = AlertStore(lab.db)
        _wait_for(lambda: alerts.query(AlertFilter()), 10)
        assert _probe(lab, attempts) == [False] * 3  # throttled: no second alert
        flows = FlowStore(lab.db, create=False)
        _wait_for(lambda: len(flows.query(FlowFilter(port=81))) >= 6, 10)
        flows.close()
        _wait_for(lambda: len(hook.bodies) == 1, 10)
        [alert] = alerts.query(AlertFilter())
        assert (alert.rule, alert.key.text, alert.node, alert.value) == (
            "denied-into-x", "y/client-a", node, 3.0)
        assert alert.actions[0] == (f"quarantined y/client-a: labelled kanal.io/quarantine=true "
                                    f"(store revision {revision + 1})")
        pod = datastore.get(ObjectRef("Pod", "y", "client-a"))
        assert pod is not None and pod.doc["metadata"]["labels"]["kanal.io/quarantine"] == "true"
        assert hook.bodies == [alert.to_json()]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        if alerts is not None:
            assert [a.rule for a in alerts.query(AlertFilter())] == ["denied-into-x"]
            alerts.close()
        datastore.close()
    assert proc.returncode == 0, err
    assert "alert rules: denied-into-x" in err
    flows = FlowStore(lab.db, create=False)
    counters = {c.name: c.value for c in flows.counters() if c.name.startswith("alert")}
    flows.close()
    assert counters == {"alerts_fired": 1, "alerts_throttled": 3, "alert_quarantines": 1,
                        "alert_webhooks": 1}
    assert err.count("alert `denied-into-x`: y/client-a sent 3 denied flows within 1m "
                     "(scope: namespace x): more than 2; quarantined y/client-a") == 1
