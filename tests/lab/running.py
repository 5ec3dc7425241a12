"""A lab under test: `Lab` plus a directory for the manifests the test applies, and the checks
every lab test ends with (nothing left behind)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kanal.dataplane.netns import list_netns, netns_path
from kanal.lab.lab import Lab, LabChange, PodStatus
from kanal.lab.probe import ProbeReport, report_text
from kanal.model.objects import Protocol

from .docs import Doc, write

TIMEOUT_S = 0.5
PARALLELISM = 64


@dataclass
class Running:
    lab: Lab
    state_dir: Path
    files: Path
    prefix: str
    server_pids: set[int] = field(default_factory=set)
    _count: int = 0

    def _write(self, docs: Sequence[Doc]) -> str:
        self._count += 1
        return write(self.files / f"{self._count:03}.yaml", docs)

    def apply(self, docs: Sequence[Doc]) -> LabChange:
        change = self.lab.apply([self._write(docs)])
        self._remember_servers()
        return change

    def delete(self, docs: Sequence[Doc]) -> LabChange:
        change = self.lab.delete([self._write(docs)])
        self._remember_servers()
        return change

    def probe(
        self,
        probes: Sequence[tuple[int, Protocol]] = (),
        *,
        sources: Sequence[str] = (),
        destinations: Sequence[str] = (),
    ) -> ProbeReport:
        return self.lab.probe(
            probes,
            sources=sources,
            destinations=destinations,
            timeout_s=TIMEOUT_S,
            parallelism=PARALLELISM,
        )

    def agreeing_probe(
        self, probes: Sequence[tuple[int, Protocol]] = (), **kwargs: Sequence[str]
    ) -> ProbeReport:
        """Probe and require that the kernel did exactly what the engine predicts."""
        report = self.probe(probes, **kwargs)
        assert not report.mismatches, "\n".join(report_text(report))
        return report

    def pod(self, key: str) -> PodStatus:
        return next(p for p in self.lab.status().pods if p.name == key)

    def _remember_servers(self) -> None:
        nodes = self.lab.status().nodes
        self.server_pids |= {n.server_pid for n in nodes if n.server_pid}
        self.server_pids |= {n.agent_pid for n in nodes if n.agent_pid}
        self.server_pids |= {n.collector["pid"] for n in nodes if n.collector}


def allowed(report: ProbeReport, source: str, destination: str, probe: str = "") -> bool | None:
    """The measured cell of `source -> destination` in the table of `probe` (default: first)."""
    table = next(t for t in report.tables if not probe or t.probe == probe)
    return table.measured[table.pods.index(source)][table.pods.index(destination)]


def netns_inode(name: str) -> int:
    return os.stat(netns_path(name)).st_ino


@contextmanager
def running_lab(
    prefix: str, tmp: Path, docs: Sequence[Doc], *, flows: bool = False
) -> Iterator[Running]:
    """`up` on `docs` (with flow collectors if `flows`), yield, then `down` and check that
    nothing is left."""
    state_dir = tmp / "state"
    files = tmp / "files"
    files.mkdir()
    lab = Lab(state_dir, prefix=prefix)
    running = Running(lab, state_dir, files, prefix)
    try:
        lab.up([write(files / "up.yaml", docs)], flows=flows)
        running._remember_servers()
        yield running
    finally:
        lab.down()
    assert_removed(running)


def assert_removed(running: Running) -> None:
    """No netns with the prefix, no server, agent or collector process, no state directory."""
    assert list_netns(running.prefix) == []
    assert not running.state_dir.exists()
    assert running.lab.fleet.strays() == []
    assert running.lab.agents.strays() == []
    assert running.lab.collectors.strays() == []
    alive = [pid for pid in running.server_pids if Path(f"/proc/{pid}").exists()]
    assert alive == [], f"server processes still running: {alive}"
