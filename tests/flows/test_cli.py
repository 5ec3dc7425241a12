"""`kanal flows | stats | graph` on a flow database in tmp_path: exact output and exit codes.

`KANAL_LAB_DIR` points at tmp_path, so `tmp_path/flows.db` is the default database; now is fixed.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kanal.cli import flows as flows_cli
from kanal.cli.main import main
from kanal.flows.store import FlowStore

from .builders import (
    ANP_DENY,
    OTHER,
    T0,
    at,
    denied,
    finished,
    record,
)
from .test_stats import RULES

NOW = T0 + 600


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlowStore]:
    monkeypatch.setenv("KANAL_LAB_DIR", str(tmp_path))
    monkeypatch.setattr(flows_cli, "CLOCK", lambda: NOW)
    store = FlowStore(tmp_path / "flows.db")
    store.write_catalog("node-0", RULES, [record().decision, record(denied).decision])
    ids = store.insert([record(), record(denied, at(1.5)),
                        record(at(400), decision=ANP_DENY, node="node-1",
                               src=replace(OTHER, port=40100), dst=replace(OTHER, pod=None,
                               namespace=None, labels={}, ip="192.0.2.9", port=443),
                               src_group="z (z/egress-only)", dst_group="world")])
    store.complete([(record(id=ids[0]), finished(1432, 8, 0.25))])
    yield store
    store.close()


def _run(command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(shlex.split(command))
    out, err = capsys.readouterr()
    return code, out, err


def test_flows_table(db: FlowStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run("flows", capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "TIME (UTC)                NODE     SOURCE             DESTINATION     PROTO   "
        "DIRECTION   VERDICT   DECIDED BY                                                   BYTES",
        "2023-11-14 22:13:20.000   node-0   y/client-a:40000   x/web:80        TCP     "
        "ingress     allowed   [NetworkPolicy x/allow-clients] rule #0 Allow                1432",
        "2023-11-14 22:13:21.500   node-0   z/other:40002      x/web:80        TCP     "
        "ingress     denied    default deny (isolated by x/allow-clients, x/default-deny)",
        "2023-11-14 22:20:00.000   node-1   z/other:40100      192.0.2.9:443   TCP     "
        "egress      denied    [ANP guard] rule 'no-db' Deny",
    ]


def test_flows_json_lines_carry_the_issue_fields(
    db: FlowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run("flows -o json --verdict denied", capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2
    assert {k: lines[0][k] for k in ("verdict", "direction", "protocol")} == {
        "verdict": "denied", "direction": "ingress", "protocol": "TCP"}
    assert lines[0]["src"]["pod"] == "other" and lines[0]["dst"]["namespace"] == "x"
    assert lines[0]["default_deny"]["isolated_by"][0] == {"namespace": "x",
                                                          "name": "allow-clients"}
    assert lines[1]["policy"] == {"tier": "AdminNetworkPolicy", "namespace": None,
                                  "name": "guard", "rule": 1, "rule_name": "no-db",
                                  "action": "Deny"}
    assert "policy" not in lines[0] and "default_deny" not in lines[1]


def test_flows_compact_with_filters(db: FlowStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run("flows -o compact --from-pod y/client-a --to-namespace x --port 80 "
                        "--protocol tcp --policy x/allow-clients --node node-0", capsys)
    assert code == 0
    assert out == ("2023-11-14 22:13:20.000 [node-0] y/client-a:40000 -> x/web:80 TCP ingress "
                   "ALLOWED: [NetworkPolicy x/allow-clients] rule #0 allows from y on http/TCP "
                   "(1432 bytes, 8 packets, 0.250s)\n")


@pytest.mark.parametrize(("args", "count"), [
    ("--since 5m", 1), ("--since 10m", 3), ("--last 1", 1), ("--verdict allowed", 1),
    ("--policy x/default-deny", 1), ("--policy guard", 1), ("--node node-9", 0)],
    ids=["since 5m", "since 10m", "last 1", "allowed", "default deny's policy",
         "admin policy", "unknown node"])
def test_flows_filters(
    db: FlowStore, capsys: pytest.CaptureFixture[str], args: str, count: int
) -> None:
    code, out, _ = _run(f"flows -o json {args}", capsys)
    assert code == 0 and len(out.splitlines()) == count


def test_flows_shows_the_last_twenty_by_default(
    db: FlowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    db.insert([record(at(500 + i)) for i in range(30)])
    _, out, _ = _run("flows -o json", capsys)
    assert len(out.splitlines()) == 20


def test_follow_prints_new_flows_as_they_arrive(
    db: FlowStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = FlowStore(db.path)
    inserted = threading.Event()
    polls_after_insert = iter(range(1_000))

    def stop() -> bool:  # polled every 50 ms: stop two polls after the new flow was committed
        return inserted.is_set() and next(polls_after_insert) >= 2

    def insert_later() -> None:
        writer.insert([record(at(550), node="node-7")])
        inserted.set()

    monkeypatch.setattr(flows_cli, "FOLLOW_STOP", stop)
    timer = threading.Timer(0.2, insert_later)
    timer.start()
    code, out, _ = _run("flows --follow --last 1 -o compact", capsys)
    timer.join()
    writer.close()
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and "[node-1]" in lines[0] and "[node-7]" in lines[1]


def test_stats_table(db: FlowStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run("stats", capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "POLICY                            TIER            DIRECTION   RULE           "
        "ACTION        HITS   DENIES   BYTES   STATUS",
        "guard                             ANP             egress      'to-x'         "
        "Pass          0      0        0       pass",
        "guard                             ANP             egress      'no-db'        "
        "Deny          1      1        0       hit",
        "q/unused                          NetworkPolicy   ingress     #0             "
        "Allow         0      0        0       not rendered",
        "x/allow-clients                   NetworkPolicy   ingress     #0             "
        "Allow         1      0        1432    hit",
        "x/allow-clients                   NetworkPolicy   ingress     #1             "
        "Allow         0      0        0       not rendered",
        "z/egress-only                     NetworkPolicy   egress      #0             "
        "Allow         0      0        0       not rendered",
        "x/allow-clients, x/default-deny   NetworkPolicy   ingress     default deny   "
        "DefaultDeny   1      1        0       hit",
        "",
        "egress denied: 1 flows, 0 bytes",
        "ingress allowed: 1 flows, 1432 bytes",
        "ingress denied: 1 flows, 0 bytes",
        "collector: 0 events lost, 0 unknown log ids, 0 disagreements with the engine, "
        "0 reloads",
    ]


def test_stats_warn_when_events_were_lost(
    db: FlowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    db.add_counters({("events_lost", '{"node":"node-0","source":"nflog"}'): 3})
    code, _, err = _run("stats -o json", capsys)
    assert code == 0
    assert err == "warning: the kernel dropped 3 flow event(s): counts are lower bounds\n"


def test_stats_prometheus(db: FlowStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run("stats -o prometheus", capsys)
    assert code == 0
    assert 'kanal_flows_total{direction="ingress",node="node-0",verdict="denied"} 1' in out


def test_graph_mermaid(db: FlowStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run("graph -o mermaid --verdict denied", capsys)
    assert code == 0
    assert out.splitlines() == [
        "flowchart LR",
        '  g0["world"]',
        '  g1["x (x/allow-clients, x/default-deny)"]',
        '  g2["z (z/egress-only)"]',
        """  g2 -.->|"denied: [ANP guard] rule 'no-db' Deny (1)"| g0""",
        '  g2 -.->|"denied: default deny (isolated by x/allow-clients, x/default-deny) (1)"| g1',
    ]


def test_a_missing_database_is_an_error_that_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KANAL_LAB_DIR", str(tmp_path))
    code, out, err = _run("flows", capsys)
    assert (code, out) == (2, "")
    assert err == (f"error: there is no flow database at `{tmp_path / 'flows.db'}`: no lab "
                   f"with flow collectors is up in `{tmp_path}` (`kanal lab up -f PATH` starts "
                   "them, unless --no-flows; set $KANAL_LAB_DIR for another lab), or give a "
                   "database with --db\n")
    code, out, err = _run(f"stats --db {tmp_path / 'other.db'}", capsys)
    assert (code, out) == (2, "")
    assert err == (f"error: there is no flow database at `{tmp_path / 'other.db'}`: start the "
                   "lab's flow collectors, or give its path with --db\n")


def test_a_bad_duration_is_a_usage_error(
    db: FlowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["flows", "--since", "5 minutes"])
    assert exit_info.value.code == 2
    assert "is not a duration" in capsys.readouterr().err
