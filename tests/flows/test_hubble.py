"""Hubble's JSON flows: the samples in tests/flows/hubble (a `hubble observe -o json` stream and
a flow exporter's file) are read as the decisions they hold; every bad line is named by file,
line and field and stores nothing; `-o hubble` writes the shape Hubble prints, and exporting
then importing gives back every field both formats have."""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kanal.cli.main import main
from kanal.engine import Outcome, Tier
from kanal.flows.filters import FlowFilter
from kanal.flows.hubble import HubbleFormatError, read_flows, to_hubble
from kanal.flows.records import Decision, FlowRecord, Peer, Source, iso_time
from kanal.flows.store import FlowStore
from kanal.model.objects import Direction, PolicyKey

from .builders import ALLOW_WEB, ANP_DENY, DEFAULT_DENY_WEB, OTHER, WEB, record

SAMPLES = Path(__file__).parent / "hubble"


def _brief(r: FlowRecord) -> tuple[Any, ...]:
    return (iso_time(r.time), r.node, r.protocol, r.verdict.value, r.direction.value,
            r.src.with_port(), r.dst.with_port(), r.decision.describe(), r.source)


def test_a_hubble_observe_stream_gives_its_policy_decisions() -> None:
    with open(SAMPLES / "observe.jsonl", encoding="utf-8") as lines:
        found = read_flows(lines, source="observe.jsonl")
    hubble = Source.HUBBLE
    assert [_brief(r) for r in found.records] == [
        ("2024-05-02T09:14:07.120334Z", "kind-worker", "TCP", "allowed", "Ingress",
         "y/client-a:40512", "x/web:80", "[NetworkPolicy x/allow-clients] Allow", hubble),
        ("2024-05-02T09:14:09.004006Z", "kind-worker", "TCP", "denied", "Ingress",
         "z/other:51234", "x/web:81", "default deny", hubble),
        ("2024-05-02T09:14:10.500000Z", "kind-worker2", "TCP", "denied", "Egress",
         "z/other:44002", "db/postgres-0:5432", "[NetworkPolicy z/no-db-from-z] Deny", hubble),
        ("2024-05-02T09:14:11.000000Z", "kind-worker", "UDP", "allowed", "Egress",
         "y/client-a:33211", "192.0.2.53:53", "not isolated", hubble),
        ("2024-05-02T09:14:16.000000Z", "kind-worker", "TCP", "allowed", "Egress",
         "x/web:38000", "10.89.0.3:10250", "[ANP kubelet] Allow", hubble),
    ]
    first, denied, _, external, host = found.records
    assert first.src.labels == {"app": "client"} and first.dst.labels == {"app": "web"}
    assert first.src_group == "y" and external.dst_group == "world"
    assert denied.summary == "default deny (Hubble: DROPPED, POLICY_DENIED)"
    assert denied.decision == Decision(Direction.INGRESS, Outcome.DEFAULT_DENY, Tier.NETWORK)
    assert host.dst.node == "kind-worker" and host.decision.tier is Tier.ADMIN
    assert dict(found.skipped) == {
        "replies (no new decision)": 1,
        "event type 4 (not a policy verdict or a drop)": 1,
        "drops for INVALID_SOURCE_IP (not a policy decision)": 1,
        "verdict AUDIT (not a policy decision)": 1,
        "node_status (not a flow)": 1,
        "lost_events (Hubble says it lost flows: what is imported is not all)": 1,
    }


def test_an_exporter_file_of_bare_flows_with_numbered_enums() -> None:
    with open(SAMPLES / "exporter.jsonl", encoding="utf-8") as lines:
        found = read_flows(lines, source="exporter.jsonl")
    assert [_brief(r) for r in found.records] == [
        ("2024-05-02T09:20:00.000000Z", "kind-worker", "SCTP", "denied", "Egress",
         "y/client-b:3868", "x/web:3868", "default deny", Source.HUBBLE),
        ("2024-05-02T09:20:01.000000Z", "kind-worker", "TCP", "allowed", "Ingress",
         "y/client-b:41001", "x/web:80", "[NetworkPolicy x/allow-clients] Allow",
         Source.HUBBLE),
    ]


GOOD = json.dumps(to_hubble(record()))


def _with(path: str, value: object) -> str:
    """GOOD with `flow.<path>` set to value (None: removed)."""
    line = json.loads(GOOD)
    *parents, last = path.split(".")
    target = line["flow"]
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return json.dumps(line)


BAD = [
    ("a line that is not JSON", '{"flow": {"verdict": "DROPPED"',
     "not JSON: Expecting ',' delimiter at column 31"),
    ("a line that is a list", "[1, 2]", "expected a JSON object, got a list"),
    ("an unknown verdict", _with("verdict", "MAYBE"), "`flow.verdict`: unknown verdict 'MAYBE'"),
    ("a decision without its direction", _with("traffic_direction", None),
     "`flow.traffic_direction`: missing: a Kanal record is one direction's decision"),
    ("a port that is a name", _with("l4.TCP.destination_port", "http"),
     "`flow.l4.TCP.destination_port`: expected a port number 1-65535, got 'http'"),
    ("no transport", _with("l4", None),
     "`flow.l4`: expected one of TCP, UDP, SCTP, ICMPv4, ICMPv6"),
    ("a pod without its namespace", _with("source.namespace", None),
     "`flow.source.namespace`: missing for pod `client-a`"),
    ("labels that are no list", _with("destination.labels", "app=web"),
     "`flow.destination.labels`: expected a list of strings, got a string"),
    ("a policy without a name", _with("ingress_allowed_by", [{"namespace": "x"}]),
     "`flow.ingress_allowed_by[0].name`: missing"),
    ("a policy of a kind Kanal does not know",
     _with("ingress_allowed_by", [{"name": "p", "kind": "GlobalNetworkPolicy"}]),
     "`flow.ingress_allowed_by[0].kind`: unknown kind 'GlobalNetworkPolicy'"),
    ("a time that is no time", _with("time", "yesterday"),
     "`flow.time`: expected an RFC 3339 time"),
    ("a node name with a control character", _with("node_name", "n\u0000"),
     "`flow.node_name`: control characters in 'n\\x00'"),
]


@pytest.mark.parametrize(("line", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_line_is_named_by_file_line_and_field(line: str, message: str) -> None:
    with pytest.raises(HubbleFormatError) as raised:
        read_flows(io.StringIO(f"{GOOD}\n\n{line}\n{GOOD}\n"), source="flows.json")
    assert str(raised.value).startswith(f"`flows.json` line 3: {message}")


def test_a_record_is_written_as_hubble_prints_a_policy_verdict() -> None:
    assert to_hubble(record()) == {"flow": {
        "time": "2023-11-14T22:13:20.000000Z", "verdict": "FORWARDED",
        "IP": {"source": "10.244.1.3", "destination": "10.244.1.2", "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": 80}},
        "source": {"namespace": "y", "labels": ["k8s:io.kubernetes.pod.namespace=y",
                                                 "k8s:app=client"], "pod_name": "client-a"},
        "destination": {"namespace": "x", "labels": ["k8s:io.kubernetes.pod.namespace=x",
                                                      "k8s:app=web"], "pod_name": "web"},
        "Type": "L3_L4", "node_name": "node-0", "event_type": {"type": 5},
        "traffic_direction": "INGRESS",
        "ingress_allowed_by": [{
            "name": "allow-clients", "namespace": "x",
            "labels": ["k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy",
                       "k8s:io.cilium.k8s.policy.name=allow-clients",
                       "k8s:io.cilium.k8s.policy.namespace=x", "kanal:rule=0"],
            "kind": "NetworkPolicy"}],
        "is_reply": False,
        "Summary": "[NetworkPolicy x/allow-clients] rule #0 allows from y on http/TCP",
    }, "node_name": "node-0", "time": "2023-11-14T22:13:20.000000Z"}
    drop = to_hubble(record(decision=ANP_DENY))["flow"]
    assert (drop["verdict"], drop["drop_reason_desc"], drop["event_type"]) == (
        "DROPPED", "POLICY_DENY", {"type": 1, "sub_type": 181})
    assert drop["egress_denied_by"][0]["kind"] == "AdminNetworkPolicy"
    assert "namespace" not in drop["egress_denied_by"][0]


# -- export, then import: the fields both formats have ----------------------------------------


def _shared(r: FlowRecord) -> tuple[Any, ...]:
    """What Hubble can carry: no groups, bytes, isolating policies, or why an unnamed allow was
    allowed (Self, OwnNode, NotAPod all read back as not isolated)."""
    d = r.decision
    outcome = Outcome.NOT_ISOLATED if d.allowed and d.policy is None else d.outcome
    policy = None if d.policy is None else (d.tier, d.policy, d.rule_index, d.rule_name)
    return (iso_time(r.time), r.node, r.protocol, r.verdict, d.direction, outcome, policy,
            r.src, r.dst)


PODS = st.builds(
    lambda ns, pod, labels: Peer(f"10.244.{len(pod)}.{len(ns)}", None, ns, pod, labels),
    st.sampled_from(["x", "y", "kube-system"]), st.sampled_from(["web", "db-0", "client-a"]),
    st.dictionaries(st.sampled_from(["app", "tier", "app.kubernetes.io/name"]),
                    st.sampled_from(["web", "", "v1.2"]), max_size=2))
OUTSIDE = st.builds(Peer, st.sampled_from(["192.0.2.9", "2001:db8::1"]))
NODES = st.builds(lambda n: Peer("10.89.0.3", None, node=n), st.sampled_from(["n1", "n2"]))
DECISIONS = st.sampled_from([
    ALLOW_WEB, DEFAULT_DENY_WEB, ANP_DENY,
    Decision(Direction.EGRESS, Outcome.ALLOW, Tier.BASELINE, PolicyKey("default"), 2, "dns"),
    Decision(Direction.INGRESS, Outcome.NOT_ISOLATED),
    Decision(Direction.EGRESS, Outcome.SELF),
    Decision(Direction.INGRESS, Outcome.ALLOW, Tier.NETWORK, PolicyKey("x/np"), 0, "",
             fail_closed=True),
])


@settings(max_examples=200)
@given(src=st.one_of(PODS, OUTSIDE, NODES), dst=st.one_of(PODS, OUTSIDE, NODES),
       protocol=st.sampled_from(["TCP", "UDP", "SCTP", "ICMP", "ICMPv6"]),
       ports=st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
       decision=DECISIONS, micros=st.integers(0, 10**12))
def test_export_then_import_gives_back_what_both_formats_have(
    src: Peer, dst: Peer, protocol: str, ports: tuple[int, int], decision: Decision,
    micros: int,
) -> None:
    if protocol in ("TCP", "UDP", "SCTP"):
        src, dst = replace(src, port=ports[0]), replace(dst, port=ports[1])
    written = record(time=1.7e9 + micros / 1e6, src=src, dst=dst, protocol=protocol,
                     decision=decision, node="kind-worker")
    [back] = read_flows([json.dumps(to_hubble(written))], source="-").records
    expected = _shared(written)
    if decision.fail_closed:  # denied although its rule allows: Hubble says that policy denied
        expected = (*expected[:5], Outcome.DENY, expected[6], *expected[7:])
    assert _shared(back) == expected


# -- the commands --------------------------------------------------------------------------------


def _run(command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(shlex.split(command))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_stores_the_flows_and_says_what_it_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "new" / "flows.db"
    code, out, err = _run(f"flows import --format hubble {SAMPLES / 'observe.jsonl'} --db {db}",
                          capsys)
    assert code == 0
    assert out == f"imported 5 flows from {SAMPLES / 'observe.jsonl'} into {db}\n"
    assert err.splitlines() == [
        "note: skipped 1: drops for INVALID_SOURCE_IP (not a policy decision)",
        "note: skipped 1: event type 4 (not a policy verdict or a drop)",
        "note: skipped 1: lost_events (Hubble says it lost flows: what is imported is not all)",
        "note: skipped 1: node_status (not a flow)",
        "note: skipped 1: replies (no new decision)",
        "note: skipped 1: verdict AUDIT (not a policy decision)",
    ]
    code, out, _ = _run(f"flows --db {db} --verdict denied -o json", capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["source"], r["dst"].get("pod"), r["direction"]) for r in lines] == [
        ("hubble", "web", "ingress"), ("hubble", "postgres-0", "egress")]
    assert lines[0]["default_deny"] == {"tier": "NetworkPolicy", "isolated_by": []}


def test_a_bad_line_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "flows.db"
    store = FlowStore(db)
    store.insert([record()])
    store.close()
    bad = tmp_path / "flows.json"
    bad.write_text(f"{GOOD}\n{GOOD}\n{_with('l4.TCP.source_port', -1)}\n")
    code, out, err = _run(f"flows import --format hubble {bad} --db {db}", capsys)
    assert (code, out) == (2, "")
    assert err == (f"error: `{bad}` line 3: `flow.l4.TCP.source_port`: expected a port number "
                   "1-65535, got -1\n")
    store = FlowStore(db, create=False)
    assert store.stats()["rows"] == 1
    store.close()


def test_flows_pipe_through_hubble_into_another_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    store = FlowStore(first)
    written = [record(), record(time=record().time + 1, src=OTHER, decision=DEFAULT_DENY_WEB),
               record(time=record().time + 2, decision=ANP_DENY, src=WEB,
                      dst=Peer("192.0.2.9", 443))]
    store.insert(written)
    store.close()
    code, exported, _ = _run(f"flows --db {first} --last 10 -o hubble", capsys)
    assert code == 0 and len(exported.splitlines()) == 3
    monkeypatch.setattr("sys.stdin", io.StringIO(exported))
    code, out, _ = _run(f"flows import --format hubble - --db {second}", capsys)
    assert (code, out) == (0, f"imported 3 flows from standard input into {second}\n")
    store = FlowStore(second, create=False)
    back = store.query(FlowFilter())
    store.close()
    assert [_shared(r) for r in back] == [_shared(r) for r in written]


def test_a_missing_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(f"flows import --format hubble {tmp_path / 'nope.json'} --db {tmp_path / 'f.db'}",
             capsys)
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (2, "")
    assert err == f"error: cannot read `{tmp_path / 'nope.json'}`: No such file or directory\n"
    assert not (tmp_path / "f.db").exists()
