"""`kanal alerts` on a flow database in tmp_path: exact output and exit codes.

`KANAL_LAB_DIR` points at tmp_path, so `tmp_path/flows.db` is the default database; now is fixed.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kanal.cli import alerts as alerts_cli
from kanal.cli.main import main
from kanal.flows.alerts import Alert
from kanal.flows.alertscope import AlertKey
from kanal.flows.alertstore import AlertStore
from kanal.model.alertrule import AlertMetric, AlertType

T0 = 1_700_000_000.0
NOW = T0 + 600

HAMMER = Alert("hammering-x", AlertMetric.DENIED_FLOWS, AlertType.BREACH,
               AlertKey("z/other", "z", "other", "10.244.2.3"), 3.0, 2.0, 60.0, None, T0 + 2,
               "node-0", "namespace x",
               "z/other sent 3 denied flows within 1m (scope: namespace x): more than 2",
               ("quarantined z/other: labelled kanal.io/quarantine=true (store revision 7)",
                "webhook POST http://127.0.0.1:9000/alerts"))
SWEEP = Alert("sweep", AlertMetric.DESTINATION_ADDRESSES, AlertType.UNIQUE_COUNT,
              AlertKey("192.0.2.9", ip="192.0.2.9"), 6.0, 5.0, 30.0, None, T0 + 400, "node-1",
              "every flow",
              "192.0.2.9 sent flows to 6 distinct destination addresses within 30s: more than 5")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlertStore]:
    monkeypatch.setenv("KANAL_LAB_DIR", str(tmp_path))
    monkeypatch.setattr(alerts_cli, "CLOCK", lambda: NOW)
    found = AlertStore(tmp_path / "flows.db")
    found.insert([HAMMER, SWEEP])
    yield found
    found.close()


def _run(command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str, str]:
    try:
        code: int | str | None = main(shlex.split(command))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_the_table(store: AlertStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run("alerts", capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "TIME (UTC)                NODE     RULE          KEY         SUMMARY" + " " * 76
        + "ACTIONS",
        "2023-11-14 22:13:22.000   node-0   hammering-x   z/other     z/other sent 3 denied "
        "flows within 1m (scope: namespace x): more than 2            quarantined z/other: "
        "labelled kanal.io/quarantine=true (store revision 7); webhook POST "
        "http://127.0.0.1:9000/alerts",
        "2023-11-14 22:20:00.000   node-1   sweep         192.0.2.9   192.0.2.9 sent flows to 6 "
        "distinct destination addresses within 30s: more than 5   -",
    ]


def test_json_lines_are_the_webhook_body(
    store: AlertStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run("alerts -o json --rule hammering-x", capsys)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [{
        "time": "2023-11-14T22:13:22.000000Z", "node": "node-0", "rule": "hammering-x",
        "metric": "DeniedFlows", "type": "Breach", "key": "z/other",
        "pod": {"namespace": "z", "name": "other"}, "ip": "10.244.2.3", "value": 3.0,
        "threshold": 2.0, "period_s": 60.0, "window_s": None, "scope": "namespace x",
        "summary": HAMMER.summary, "actions": list(HAMMER.actions),
    }]


@pytest.mark.parametrize(("args", "rules"), [
    ("--since 5m", ["sweep"]), ("--since 20m", ["hammering-x", "sweep"]), ("--last 1", ["sweep"]),
    ("--rule sweep", ["sweep"]), ("--rule nope", [])],
    ids=["since 5m", "since 20m", "last 1", "one rule", "an unknown rule"])
def test_filters(
    store: AlertStore, capsys: pytest.CaptureFixture[str], args: str, rules: list[str]
) -> None:
    code, out, _ = _run(f"alerts -o json {args}", capsys)
    assert (code, [json.loads(line)["rule"] for line in out.splitlines()]) == (0, rules)


def test_the_last_twenty_by_default(store: AlertStore, capsys: pytest.CaptureFixture[str]) -> None:
    store.insert([replace(SWEEP, time=T0 + 500 + i) for i in range(30)])
    _, out, _ = _run("alerts -o json", capsys)
    assert len(out.splitlines()) == 20


def test_follow_prints_alerts_as_they_are_stored(
    store: AlertStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    polls = iter(range(100))

    def stop() -> bool:
        """The first poll stores a new alert (as a collector would); the second stops."""
        poll = next(polls)
        if poll == 0:
            writer = AlertStore(tmp_path / "flows.db")
            writer.insert([replace(HAMMER, node="node-7", time=T0 + 590)])
            writer.close()
        return poll >= 2

    monkeypatch.setattr(alerts_cli, "FOLLOW_STOP", stop)
    code, out, _ = _run("alerts --follow --last 1", capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].startswith("TIME (UTC)                NODE         RULE")
    assert "   node-1       sweep" in lines[1] and "   node-7       hammering-x" in lines[2]


@pytest.mark.parametrize(("command", "code", "error"), [
    ("alerts --db other.db", 2, "error: there is no flow database at `other.db`: start "
     "the lab's flow collectors, or give its path with --db\n"),
    ("alerts --since soon", 2, "kanal alerts: error: argument --since: `soon` is not a "
     "duration: a number and a unit (ms, s, m, h, d), like 5m or 1h30m\n"),
])
def test_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    command: str, code: int, error: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    result, out, err = _run(command, capsys)
    assert (result, out) == (code, "")
    assert err.endswith(error)
