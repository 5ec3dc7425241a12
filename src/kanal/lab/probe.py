"""`kanal lab probe`: real connections between every selected pod pair, beside the engine's
prediction for the same pods, port and protocol.

A probe counts as *allowed* when its packet reached the destination pod and the pod's kernel
answered: connected (TCP handshake, UDP echo, SCTP INIT-ACK) or refused (RST, ICMP port or
protocol unreachable, ABORT). A refusal crossed both firewalls (the answer is a reply or
related packet of the attempt's conntrack entry), so policy allowed it, even if nothing listens
on that port; the engine's question is the same ("may this packet reach the pod?"). Policy
drops without an answer, so *denied* is a timeout; anything else (no route, say) is denied too
and shows in the detail.

A pod to itself is probed and shown but not compared, as upstream's e2e tests do (ignoreLoopback):
that packet never leaves the pod's netns, so no node firewall sees it, and the engine allows it by
definition. (SCTP to itself on a port it does not serve even times out: the prober's own raw
socket takes the INIT, so the kernel sends no protocol-unreachable.)

Every probe of every table runs in one `probe_many` batch, `parallelism` at a time: wall time is
about (denied probes / parallelism) × timeout. Output formats: text (the measured table per
probe, mismatching cells marked `!`, and the engine's table when they differ), JSON (the `kanal
matrix` schema plus `expected` and `mismatches` per probe; cells not probed are null) and JUnit
XML (a test case per pair, a failure per mismatch).
"""

from __future__ import annotations

import itertools
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from kanal.engine import PolicyEngine
from kanal.engine.matrix import Matrix, compute_matrix
from kanal.lab.prober import Probe, ProbeResult, probe_many
from kanal.model.objects import Protocol

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_PARALLELISM = 64
Cell = bool | None
Grid = tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class PodTarget:
    """Where a pod is: its netns (to probe from) and its address (to probe to)."""

    key: str
    netns: str
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class Mismatch:
    source: str
    destination: str
    port: int
    protocol: Protocol
    measured: bool
    expected: bool
    detail: str

    def sentence(self) -> str:
        return (
            f"{self.source} -> {self.destination} {self.port}/{self.protocol}: measured "
            f"{_word(self.measured)} ({self.detail}), the engine expects {_word(self.expected)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.destination,
            "port": self.port,
            "protocol": self.protocol.value,
            "measured": self.measured,
            "expected": self.expected,
        }


@dataclass(frozen=True)
class ProbeTable:
    """One port/protocol: `measured[i][j]` and `expected[i][j]` for pods[i] -> pods[j]; None
    where the pair was not selected."""

    port: int
    protocol: Protocol
    pods: tuple[str, ...]
    measured: Grid
    expected: Grid
    mismatches: tuple[Mismatch, ...]

    @property
    def probe(self) -> str:
        return f"{self.port}/{self.protocol}"

    def probed(self) -> int:
        return sum(cell is not None for row in self.measured for cell in row)


@dataclass(frozen=True)
class ProbeReport:
    tables: tuple[ProbeTable, ...]
    elapsed_s: float
    timeout_s: float
    parallelism: int

    @property
    def mismatches(self) -> tuple[Mismatch, ...]:
        return tuple(m for t in self.tables for m in t.mismatches)

    @property
    def connections(self) -> int:
        return sum(t.probed() for t in self.tables)


def reached(result: ProbeResult) -> bool:
    """The packet got to the pod and the pod answered (see the module docstring)."""
    return result.connected or result.detail.startswith("refused")


def run_probes(
    engine: PolicyEngine,
    targets: Mapping[str, PodTarget],
    probes: Sequence[tuple[int, Protocol]],
    *,
    sources: Sequence[str],
    destinations: Sequence[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    parallelism: int = DEFAULT_PARALLELISM,
) -> ProbeReport:
    """Probe `sources` × `destinations` for each (port, protocol) and compare with the engine."""
    pods = tuple(sorted({*sources, *destinations}))
    pairs = [(s, d) for s in sorted(set(sources)) for d in sorted(set(destinations))]
    batch = [
        Probe(targets[s].netns, targets[d].ip, port, protocol)
        for port, protocol in probes
        for s, d in pairs
    ]
    start = time.monotonic()
    results = probe_many(batch, timeout_s=timeout_s, parallelism=parallelism)
    elapsed = time.monotonic() - start
    tables = []
    for number, (port, protocol) in enumerate(probes):
        chunk = results[number * len(pairs) : (number + 1) * len(pairs)]
        expected = compute_matrix(engine, port=port, protocol=protocol, pods=pods)
        tables.append(_table(expected, pairs, chunk))
    return ProbeReport(tuple(tables), elapsed, timeout_s, parallelism)


def _table(
    prediction: Matrix,
    pairs: Sequence[tuple[str, str]],
    results: Sequence[ProbeResult],
) -> ProbeTable:
    port, protocol, pods = prediction.port, prediction.protocol, tuple(prediction.pods)
    index = {p: i for i, p in enumerate(pods)}
    measured: list[list[Cell]] = [[None] * len(pods) for _ in pods]
    expected: list[list[Cell]] = [[None] * len(pods) for _ in pods]
    mismatches = []
    for (s, d), result in zip(pairs, results, strict=True):
        i, j = index[s], index[d]
        got, want = reached(result), bool(prediction.allowed[i, j])
        measured[i][j], expected[i][j] = got, want
        if got != want and s != d:
            mismatches.append(Mismatch(s, d, port, protocol, got, want, result.detail))
    return ProbeTable(
        port, protocol, pods, _freeze(measured), _freeze(expected), tuple(mismatches)
    )


def _freeze(grid: list[list[Cell]]) -> Grid:
    return tuple(tuple(row) for row in grid)


def _mismatches(count: int) -> str:
    return f"{count} mismatch" + ("es" if count != 1 else "")


def _word(allowed: bool) -> str:
    return "allowed" if allowed else "denied"


# -- output ------------------------------------------------------------------------------------


def report_text(report: ProbeReport) -> Iterator[str]:
    """Per probe: a heading, the measured table (`.` allowed, `X` denied, `!` where the
    engine expects the opposite), and on disagreement the engine's table and each mismatch."""
    for number, table in enumerate(report.tables):
        if number:
            yield ""
        count = len(table.mismatches)
        verdict = (
            f"the engine agrees on all {table.probed()} pairs"
            if not count
            else f"{count} of {table.probed()} pairs disagree with the engine (marked !)"
        )
        yield f"{table.probe} measured in the kernel: {verdict}"
        yield from _grid_lines(table.probe, table.pods, table.measured, table.expected)
        if count:
            yield f"{table.probe} expected by the engine:"
            yield from _grid_lines(table.probe, table.pods, table.expected, table.expected)
            yield from (f"mismatch: {m.sentence()}" for m in table.mismatches)
    total = len(report.mismatches)
    yield ""
    yield (
        f"{report.connections} connections in {report.elapsed_s:.1f} s "
        f"({report.parallelism} at a time, {report.timeout_s:g} s timeout): "
        + ("the kernel enforces what the engine predicts" if not total else _mismatches(total))
    )


def _grid_lines(corner: str, pods: Sequence[str], cells: Grid, reference: Grid) -> Iterator[str]:
    """`kanal matrix`'s text layout: bordered, the probe in the corner, sources down; only
    the rows and columns of probed pairs."""
    rows = [i for i, row in enumerate(cells) if any(c is not None for c in row)]
    columns = [j for j in range(len(pods)) if any(row[j] is not None for row in cells)]
    first = max([len(corner), *(len(pods[i]) for i in rows)])
    widths = {j: max(len(pods[j]), 2) for j in columns}
    names = "".join(f" {pods[j].ljust(widths[j])} |" for j in columns)
    header = f"| {corner.ljust(first)} |{names}"
    border = "".join("+" if ch == "|" else "-" for ch in header)
    yield border
    yield header
    yield border
    for i in rows:
        rendered = [
            _cell(cells[i][j], reference[i][j] if i != j else None).ljust(widths[j])
            for j in columns
        ]
        yield f"| {pods[i].ljust(first)} |" + "".join(f" {c} |" for c in rendered)
    yield border


def _cell(cell: Cell, reference: Cell) -> str:
    if cell is None:
        return ""
    symbol = "." if cell else "X"
    return symbol + "!" if reference is not None and reference != cell else symbol


def report_json(report: ProbeReport) -> dict[str, Any]:
    return {
        "probes": [
            {
                "port": t.port,
                "protocol": t.protocol.value,
                "pods": list(t.pods),
                "allowed": [list(row) for row in t.measured],
                "expected": [list(row) for row in t.expected],
                "mismatches": [m.to_json() for m in t.mismatches],
            }
            for t in report.tables
        ]
    }


def report_junit(report: ProbeReport) -> str:
    """One `testsuite` per probe, one `testcase` per probed pair, `failure` on a mismatch."""
    suites = ET.Element(
        "testsuites",
        name="kanal lab probe",
        tests=str(report.connections),
        failures=str(len(report.mismatches)),
        time=f"{report.elapsed_s:.3f}",
    )
    for table in report.tables:
        wrong = {(m.source, m.destination): m for m in table.mismatches}
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=table.probe,
            tests=str(table.probed()),
            failures=str(len(wrong)),
        )
        for (i, source), (j, destination) in itertools.product(
            enumerate(table.pods), enumerate(table.pods)
        ):
            cell = table.measured[i][j]
            if cell is None:
                continue
            case = ET.SubElement(
                suite, "testcase", classname=table.probe, name=f"{source} -> {destination}"
            )
            mismatch = wrong.get((source, destination))
            if mismatch is not None:
                ET.SubElement(case, "failure", message=mismatch.sentence())
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


__all__ = [
    "DEFAULT_PARALLELISM",
    "DEFAULT_TIMEOUT_S",
    "Mismatch",
    "PodTarget",
    "ProbeReport",
    "ProbeTable",
    "reached",
    "report_json",
    "report_junit",
    "report_text",
    "run_probes",
]
