"""Flows in a lab, end to end: `kanal lab up` starts a collector per node, probes cross the
kernel, and `kanal flows -o json` / `kanal stats -o json` (through the CLI entry point, on the
lab's default database) attribute every attempt with pod names on both ends: denied ones to the
default deny of the isolating policies, allowed ones to the admitting rule, with bytes once the
connection ended. Collectors are reported, restarted when dead, and stopped by `down`. An
AlertRule on y's denied flows fires once past its threshold (`kanal alerts -o json`), is
throttled, and its quarantine label makes an AdminNetworkPolicy isolate the pod.

Layout (nodeName fixed, host-gw): node-1: x/web, y/other    node-2: y/client
x/default-deny isolates every pod of x for ingress; x/allow-client admits y's app=client
pods to app=web on 80/TCP.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kanal.agent.process import alive
from kanal.cli.main import main
from kanal.dataplane.netns import list_netns
from kanal.lab.enforce import open_store
from kanal.model.objects import Protocol
from kanal.store.api import ObjectRef

from .docs import lab, namespace, pod, policy, write
from .running import Running, allowed, running_lab

pytestmark = pytest.mark.kernel

Capsys = pytest.CaptureFixture[str]
TCP = Protocol.TCP
PORTS = ((80, "TCP"), (81, "TCP"))
DOCS = [
    namespace("x", ns="x"),
    namespace("y", ns="y"),
    pod("x/web", ports=PORTS, node="node-1", app="web"),
    pod("y/other", ports=PORTS, node="node-1", app="other"),
    pod("y/client", ports=PORTS, node="node-2", app="client"),
    policy("x/default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]}),
    policy("x/allow-client", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                      "podSelector": {"matchLabels": {"app": "client"}}}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        }],
    }),
    lab("flows", backend="host-gw"),
]
ISOLATED_BY = [{"namespace": "x", "name": "allow-client"},
               {"namespace": "x", "name": "default-deny"}]
ALLOW_RULE = {"tier": "NetworkPolicy", "namespace": "x", "name": "allow-client", "rule": 0,
              "rule_name": "", "action": "Allow"}
WAIT_S = 20.0
"""Bound for every wait: records come within a second, bytes within about 3 s of the end
(1 s TIME_WAIT in lab nodes, then the collector's reaper); a busy machine gets the rest."""


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def flows_json(capsys: Capsys) -> list[dict[str, Any]]:
    """`kanal flows -o json` on the lab's default database (no --db)."""
    code, out, err = run(capsys, "flows", "-o", "json", "--last", "1000")
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def wait_for(found: Callable[[], Any], what: str) -> Any:
    """Poll `found` until it returns something true, at most WAIT_S; that value."""
    deadline = time.monotonic() + WAIT_S
    while not (value := found()):
        assert time.monotonic() < deadline, f"no {what} after {WAIT_S:.0f} s"
        time.sleep(0.2)
    return value


def ends(record: dict[str, Any]) -> tuple[str, str, int]:
    src, dst = record["src"], record["dst"]
    return f"{src['namespace']}/{src['pod']}", f"{dst['namespace']}/{dst['pod']}", dst["port"]


def ingress(records: list[dict[str, Any]], verdict: str) -> list[dict[str, Any]]:
    return [r for r in records if r["direction"] == "ingress" and r["verdict"] == verdict]


@pytest.fixture
def flows_lab(
    netns_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("KANAL_LAB_DIR", str(tmp_path / "state"))  # as `kanal flows` finds it
    with running_lab(netns_prefix, tmp_path, DOCS, flows=True) as running:
        yield running


def test_flows_name_pods_and_the_deciding_rule_and_count_bytes(
    flows_lab: Running, capsys: Capsys
) -> None:
    report = flows_lab.agreeing_probe([(80, TCP), (81, TCP)],
                                      sources=["y/client", "y/other"], destinations=["x/web"])
    measured = {t.probe: t.measured[t.pods.index("y/client")][t.pods.index("x/web")]
                for t in report.tables}
    assert measured == {"80/TCP": True, "81/TCP": False}

    denied_attempts = {("y/client", "x/web", 81), ("y/other", "x/web", 80),
                       ("y/other", "x/web", 81)}
    records = wait_for(
        lambda: (found := flows_json(capsys))
        and {ends(r) for r in ingress(found, "denied")} >= denied_attempts
        and ingress(found, "allowed")
        and any(r["direction"] == "egress" and ends(r)[2] == 80 for r in found) and found,
        "records of every probe",
    )
    denied = ingress(records, "denied")
    assert {ends(r) for r in denied} == denied_attempts  # SYN retransmits: one record each
    for record in denied:
        assert record["default_deny"] == {"tier": "NetworkPolicy", "isolated_by": ISOLATED_BY}
        assert "policy" not in record and record["node"] == "node-1"
        assert record["dst"]["labels"] == {"app": "web"} and record["protocol"] == "TCP"
        assert record["summary"] == (  # `kanal explain`'s words
            "x/web is isolated for ingress by policies `x/allow-client`, `x/default-deny`; "
            f"no rule admits {ends(record)[0]} on {ends(record)[2]}/TCP")
    [allowed] = ingress(records, "allowed")
    assert ends(allowed) == ("y/client", "x/web", 80)
    assert allowed["policy"] == ALLOW_RULE and allowed["node"] == "node-1"
    assert allowed["src"]["labels"] == {"app": "client"} and allowed["source"] == "nflog"
    egress = [r for r in records if r["direction"] == "egress" and ends(r)[0] == "y/client"]
    assert {(ends(r), r["verdict"]) for r in egress} >= {(("y/client", "x/web", 80), "allowed")}
    assert all(r["not_isolated"] is True and r["node"] == "node-2" for r in egress)

    # Bytes once the connection ended (conntrack DESTROY: 1 s TIME_WAIT in lab nodes, then the
    # collector's reaper), on both nodes' records of it.
    def finished() -> list[dict[str, Any]]:
        done = [r for r in flows_json(capsys)
                if ends(r) == ("y/client", "x/web", 80) and r["verdict"] == "allowed"]
        return done if len(done) == 2 and all("bytes" in r for r in done) else []

    for record in wait_for(finished, "bytes on the allowed connection's records"):
        assert record["bytes"] > 0 and record["packets"] >= 5, record  # handshake, data, FINs
        assert record["duration_s"] < 2.0, record

    code, out, err = run(capsys, "stats", "-o", "json")
    assert (code, err) == (0, "")
    stats = json.loads(out)
    [allow] = [p for p in stats["policies"] if p["policy"] == "x/allow-client"]
    [rule] = allow["rules"]
    assert (rule["direction"], rule["rule"], rule["status"]) == ("ingress", 0, "hit")
    assert (rule["hits"], rule["denies"]) == (1, 0) and rule["bytes"] == allowed_bytes(capsys)
    [default] = [d for d in stats["defaults"] if d["outcome"] == "DefaultDeny"]
    assert default["isolated_by"] == ["x/allow-client", "x/default-deny"]
    assert (default["direction"], default["denies"]) == ("ingress", len(denied))
    collector = stats["collector"]
    assert (collector["events_lost"], collector["disagreements"]) == (0, 0)  # kernel = engine


def allowed_bytes(capsys: Capsys) -> int:
    """Bytes of the allowed connection as its ingress record says."""
    [record] = [r for r in ingress(flows_json(capsys), "allowed")]
    value: int = record["bytes"]
    return value


def test_status_shows_collectors_a_dead_one_is_restarted_and_down_stops_them(
    flows_lab: Running, capsys: Capsys
) -> None:
    flows_lab.agreeing_probe([(80, TCP)], sources=["y/client"], destinations=["x/web"])
    status = wait_for(
        lambda: (s := flows_lab.lab.status()) and all(
            n.collector and n.collector["records"] for n in s.nodes) and s,
        "records counted for both nodes",
    )
    assert status.problems == ()
    assert status.flows_db == str(flows_lab.state_dir / "flows.db")
    for node in status.nodes:
        assert node.collector is not None and node.collector["running"] is True
        agent_argv = Path(f"/proc/{node.agent_pid}/cmdline").read_bytes().split(b"\0")
        assert b"--log-group" in agent_argv  # the table logs what the collector reads
    code, out, _ = run(capsys, "lab", "status", "--state-dir", str(flows_lab.state_dir))
    assert code == 0
    old = status.nodes[0].collector
    assert old is not None
    row = next(line.split() for line in out.splitlines() if line.startswith("node-1 "))
    assert row[-2:] == ["running", str(old["records"])]

    os.kill(old["pid"], signal.SIGKILL)
    wait_for(lambda: not alive(old["pid"]), "exit of the killed collector")
    log = flows_lab.state_dir / "collector-node-1.log"
    assert flows_lab.lab.status().problems == (
        f"node `node-1`: its flow collector is not running (see `{log}`): the next "
        "`kanal lab apply` restarts it",
    )
    change = flows_lab.apply([policy("y/idle", {"podSelector": {"matchLabels": {"app": "x"}}})])
    assert change.notes == ("restarted the flow collector of node `node-1`: it was not running",)
    after = flows_lab.lab.status()
    assert after.problems == () and after.nodes[0].collector is not None
    assert after.nodes[0].collector["pid"] != old["pid"]
    before = after.nodes[0].collector["records"]
    flows_lab.agreeing_probe([(81, TCP)], sources=["y/other"], destinations=["x/web"])
    wait_for(lambda: any(ends(r) == ("y/other", "x/web", 81) for r in flows_json(capsys)),
             "a record from the restarted collector")
    assert (flows_lab.lab.status().nodes[0].collector or {})["records"] > before
    # running_lab's `down` then checks: no collector, agent or server left, no netns, no state.


def test_no_flows_runs_no_collector_and_kanal_flows_says_so(
    netns_prefix: str, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("KANAL_LAB_DIR", str(state))
    up = write(tmp_path / "up.yaml", DOCS)
    try:
        code, _, _ = run(capsys, "lab", "up", "-f", up, "--prefix", netns_prefix, "--no-flows")
        assert code == 0
        code, out, _ = run(capsys, "lab", "status", "-o", "json")
        status = json.loads(out)
        assert status["flows"] == {"enabled": False, "db": None}
        assert [n["collector"] for n in status["nodes"]] == [None, None]
        agent_argv = Path(f"/proc/{status['nodes'][0]['agent']['pid']}/cmdline").read_bytes()
        assert b"--log-group" not in agent_argv.split(b"\0")
        code, out, err = run(capsys, "flows")
        assert (code, out) == (2, "")
        assert err.startswith(f"error: there is no flow database at `{state / 'flows.db'}`: no "
                              f"lab with flow collectors is up in `{state}`")
    finally:
        code, out, _ = run(capsys, "lab", "down")
    assert (code, out) == (0, "removed 6 network namespaces and stopped 4 processes\n")
    assert list_netns(netns_prefix) == [] and not state.exists()


QUARANTINE_ANP = {
    "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
    "metadata": {"name": "quarantine"},
    "spec": {
        "priority": 1,
        "subject": {"pods": {"namespaceSelector": {},
                             "podSelector": {"matchLabels": {"kanal.io/quarantine": "true"}}}},
        "ingress": [{"name": "in", "action": "Deny", "from": [{"namespaces": {}}]}],
        "egress": [{"name": "out", "action": "Deny", "to": [{"namespaces": {}}]}],
    },
}
DENIED_BURST = {
    "apiVersion": "kanal.io/v1alpha1", "kind": "AlertRule",
    "metadata": {"name": "denied-burst"},
    "spec": {"metric": "DeniedFlows", "scope": {"namespace": "y"}, "groupBy": "Source",
             "period": "60s", "threshold": 2, "throttle": "5m", "actions": [{"quarantine": {}}]},
}


def alerts_json(capsys: Capsys) -> list[dict[str, Any]]:
    """`kanal alerts -o json` on the lab's default database."""
    code, out, err = run(capsys, "alerts", "-o", "json")
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def denied_from_other(capsys: Capsys) -> int:
    return sum(1 for r in flows_json(capsys)
               if r["verdict"] == "denied" and ends(r)[0] == "y/other")


def test_an_alert_fires_once_past_its_threshold_is_throttled_and_quarantine_isolates_the_pod(
    netns_prefix: str, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANAL_LAB_DIR", str(tmp_path / "state"))
    docs = [*DOCS, QUARANTINE_ANP, DENIED_BURST]
    with running_lab(netns_prefix, tmp_path, docs, flows=True) as running:
        def other_reaches_client() -> bool | None:
            """Measured only: the store may hold the label a moment before the kernel does."""
            report = running.probe([(80, TCP)], sources=["y/other"], destinations=["y/client"])
            return allowed(report, "y/other", "y/client")

        def deny_burst(count: int) -> None:
            """`count` connections from y/other that x/web's default deny drops (or, once
            y/other is quarantined, its own egress rule), each recorded before the next."""
            for _ in range(count):
                before = denied_from_other(capsys)
                running.agreeing_probe([(81, TCP)], sources=["y/other"],
                                       destinations=["x/web"])
                wait_for(lambda b=before: denied_from_other(capsys) > b, "the denied record")

        assert other_reaches_client() is True
        deny_burst(2)
        assert alerts_json(capsys) == []  # 2 is the threshold, not past it
        deny_burst(1)
        [alert] = wait_for(lambda: alerts_json(capsys), "the alert")
        assert (alert["rule"], alert["key"], alert["pod"]) == (
            "denied-burst", "y/other", {"namespace": "y", "name": "other"})
        assert (alert["metric"], alert["value"], alert["threshold"]) == ("DeniedFlows", 3, 2)
        assert alert["node"] == "node-1"
        assert any(a.startswith("quarantined y/other: labelled kanal.io/quarantine=true")
                   for a in alert["actions"]), alert["actions"]

        # The agents enforce the label the collector wrote: the ANP now isolates y/other.
        with open_store(running.state_dir) as store:
            stored = store.get(ObjectRef("Pod", "y", "other"))
            assert stored is not None
            assert stored.doc["metadata"]["labels"]["kanal.io/quarantine"] == "true"
        wait_for(lambda: other_reaches_client() is False, "y/other isolated")
        running.agreeing_probe([(80, TCP)], sources=["y/other"], destinations=["y/client"])

        deny_burst(3)  # past the threshold again, within the 5 minute throttle
        assert [a["rule"] for a in alerts_json(capsys)] == ["denied-burst"]
        quarantined = [r for r in flows_json(capsys) if ends(r)[0] == "y/other"
                       and r.get("policy", {}).get("name") == "quarantine"]
        assert {(r["direction"], r["verdict"], r["policy"]["tier"]) for r in quarantined} == {
            ("egress", "denied", "AdminNetworkPolicy")}
