"""Probe reports in words, JSON and JUnit, from a made-up result (no kernel)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from kanal.engine.matrix import Matrix
from kanal.lab.probe import (
    Mismatch,
    ProbeReport,
    ProbeTable,
    _table,
    reached,
    report_json,
    report_junit,
    report_text,
)
from kanal.lab.prober import ProbeResult
from kanal.model.objects import Protocol

PODS = ("x/a", "x/b", "y/a")
WRONG = Mismatch("x/b", "x/a", 80, Protocol.TCP, True, False, "connected, reply 'x/a 80/TCP'")


def _report() -> ProbeReport:
    measured = ((True, False, True), (True, True, True), (None, None, None))
    expected = ((True, False, True), (False, True, True), (None, None, None))
    agree = ((True, True, False), (True, True, False), (None, None, None))
    return ProbeReport(
        (
            ProbeTable(80, Protocol.TCP, PODS, measured, expected, (WRONG,)),
            ProbeTable(53, Protocol.UDP, PODS, agree, agree, ()),
        ),
        elapsed_s=1.04,
        timeout_s=0.5,
        parallelism=8,
    )


def test_refused_counts_as_reached_and_a_timeout_as_dropped() -> None:
    assert reached(ProbeResult(False, "refused (RST)", 0.001))
    assert reached(ProbeResult(False, "refused (ICMP protocol unreachable)", 0.001))
    assert not reached(ProbeResult(False, "timed out (no SYN-ACK: dropped?)", 0.5))
    assert not reached(ProbeResult(False, "unreachable: No route to host", 0.001))


def test_text_marks_disagreeing_cells_shows_the_engines_table_and_lists_them() -> None:
    assert list(report_text(_report())) == [
        "80/TCP measured in the kernel: 1 of 6 pairs disagree with the engine (marked !)",
        "+--------+-----+-----+-----+",
        "| 80/TCP | x/a | x/b | y/a |",
        "+--------+-----+-----+-----+",
        "| x/a    | .   | X   | .   |",
        "| x/b    | .!  | .   | .   |",
        "+--------+-----+-----+-----+",
        "80/TCP expected by the engine:",
        "+--------+-----+-----+-----+",
        "| 80/TCP | x/a | x/b | y/a |",
        "+--------+-----+-----+-----+",
        "| x/a    | .   | X   | .   |",
        "| x/b    | X   | .   | .   |",
        "+--------+-----+-----+-----+",
        "mismatch: x/b -> x/a 80/TCP: measured allowed (connected, reply 'x/a 80/TCP'), the "
        "engine expects denied",
        "",
        "53/UDP measured in the kernel: the engine agrees on all 6 pairs",
        "+--------+-----+-----+-----+",
        "| 53/UDP | x/a | x/b | y/a |",
        "+--------+-----+-----+-----+",
        "| x/a    | .   | .   | X   |",
        "| x/b    | .   | .   | X   |",
        "+--------+-----+-----+-----+",
        "",
        "12 connections in 1.0 s (8 at a time, 0.5 s timeout): 1 mismatch",
    ]


def test_json_is_the_matrix_schema_plus_expected_and_mismatches_per_probe() -> None:
    first = report_json(_report())["probes"][0]
    assert list(first) == ["port", "protocol", "pods", "allowed", "expected", "mismatches"]
    assert first["allowed"][2] == [None, None, None], "unprobed pairs are null"
    assert first["mismatches"] == [
        {"from": "x/b", "to": "x/a", "port": 80, "protocol": "TCP", "measured": True,
         "expected": False}
    ]


def test_junit_has_a_case_per_probed_pair_and_a_failure_per_mismatch() -> None:
    root = ET.fromstring(report_junit(_report()))
    assert (root.get("tests"), root.get("failures")) == ("12", "1")
    suites = root.findall("testsuite")
    assert [(s.get("name"), len(s.findall("testcase"))) for s in suites] == [
        ("80/TCP", 6), ("53/UDP", 6)
    ]
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert failed == ["x/b -> x/a"]


def test_a_pod_to_itself_is_shown_but_never_a_mismatch() -> None:
    prediction = Matrix(9000, Protocol.SCTP, ["x/a", "x/b"], np.ones((2, 2), dtype=np.bool_))
    timed_out = ProbeResult(False, "timed out (no INIT-ACK: dropped?)", 0.5)
    answered = ProbeResult(False, "refused (ICMP protocol unreachable)", 0.001)
    table = _table(prediction, [("x/a", "x/a"), ("x/a", "x/b")], [timed_out, answered])
    assert table.mismatches == ()
    report = ProbeReport((table,), elapsed_s=0.5, timeout_s=0.5, parallelism=2)
    assert list(report_text(report))[4] == "| x/a       | X   | .   |"
