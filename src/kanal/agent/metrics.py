"""The agent's Prometheus metrics, written in the text exposition format (version 0.0.4) by hand.

A dozen counters, gauges and one histogram do not justify a dependency: the format is a few
lines per family (`# HELP`, `# TYPE`, then `name{labels} value`). Names follow Prometheus'
conventions (DESIGN.md): prefix `kanal_`, base units (seconds, bytes), counters end in `_total`,
label values come from small fixed sets (`kind`, `stage`), never from pod or policy names.

```
kanal_agent_sync_duration_seconds        histogram  a successful sync: render + kernel write
kanal_agent_changes_applied_total{kind}  counter    kernel transactions: load (whole) | delta
kanal_agent_pod_changes_total{path}      counter    pod changes while the table is current, by how
                                                    it follows: remote | local (patched) | render
kanal_agent_resyncs_total                counter    whole-table rewrites by resync (first sync,
                                                    periodic, after a kernel failure)
kanal_agent_drift_repairs_total          counter    resyncs that found the table changed by others
kanal_agent_store_relists_total          counter    the store's log was compacted past the agent
kanal_agent_sync_errors_total{stage}     counter    failures: store | feed | render | kernel
kanal_agent_rules, _chains, _sets        gauge      in the table last written
kanal_agent_set_elements, _map_elements  gauge      in the table last written
kanal_agent_render_problems              gauge      what the renderer could not express (drops)
kanal_agent_rejected_objects             gauge      stored documents the agent cannot read
kanal_agent_applied_revision             gauge      the store revision the kernel reflects
kanal_agent_store_revision               gauge      the newest store revision seen
kanal_agent_last_sync_timestamp_seconds  gauge      Unix time of the last successful sync
kanal_agent_ready                        gauge      1 when /readyz answers 200
process_resident_memory_bytes            gauge      RSS (the client libraries' standard name)
```

Thread-safe: the agent's loop updates, the HTTP thread renders.
"""

from __future__ import annotations

import math
import resource
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

Labels = tuple[tuple[str, str], ...]

SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""From a one-element delta (a few ms) to a whole-table load at 10k pods (about a second)."""


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _label_text(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (
        (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in labels
    )
    return "{" + ",".join(f'{k}="{v}"' for k, v in escaped) + "}"


class _Family:
    def __init__(self, name: str, help_text: str, kind: str) -> None:
        self.name, self.help, self.kind = name, help_text, kind

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    """A monotonically increasing count, optionally per value of one label."""

    def __init__(self, name: str, help_text: str, *, label: str = "", values: Sequence[str] = ()):
        super().__init__(name, help_text, "counter")
        self._label = label
        self._values: dict[str, float] = dict.fromkeys(values or [""], 0.0)

    def inc(self, value: str = "", amount: float = 1.0) -> None:
        if value not in self._values:
            raise ValueError(f"{self.name}: unknown {self._label or 'label'} value {value!r}")
        self._values[value] += amount

    def get(self, value: str = "") -> float:
        return self._values[value]

    def lines(self) -> list[str]:
        if not self._label:
            return [f"{self.name} {_format_value(self._values[''])}"]
        return [
            f"{self.name}{_label_text(((self._label, v),))} {_format_value(n)}"
            for v, n in self._values.items()
        ]


class Gauge(_Family):
    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text, "gauge")
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def lines(self) -> list[str]:
        return [f"{self.name} {_format_value(self.value)}"]


class Histogram(_Family):
    """Cumulative buckets (`le`), `_sum` and `_count`, as Prometheus expects them."""

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text, "histogram")
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * len(self.bounds)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self._counts[i] += 1
                break

    def lines(self) -> list[str]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self._counts, strict=True):
            running += n
            out.append(f'{self.name}_bucket{{le="{_format_value(bound)}"}} {running}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{self.name}_sum {_format_value(self.sum)}")
        out.append(f"{self.name}_count {self.count}")
        return out


class _Memory(Gauge):
    """RSS from /proc/self/statm, read when scraped."""

    def lines(self) -> list[str]:
        self.set(resident_memory_bytes())
        return super().lines()


def resident_memory_bytes() -> int:
    """This process's resident set size (0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * resource.getpagesize()


class AgentMetrics:
    """Every metric of one agent (see the module table)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        p = "kanal_agent_"
        self.sync_duration = Histogram(
            f"{p}sync_duration_seconds", "Duration of successful syncs (render and kernel write).",
            SYNC_BUCKETS,
        )
        self.changes_applied = Counter(
            f"{p}changes_applied_total", "Kernel transactions applied, by kind.",
            label="kind", values=("load", "delta"),
        )
        self.pod_changes = Counter(
            f"{p}pod_changes_total", "Pod changes while the table is current, by how it "
            "follows them: patched for a remote or a local pod, or rendered from scratch.",
            label="path", values=("remote", "local", "render"),
        )
        self.resyncs = Counter(f"{p}resyncs_total", "Full resyncs (rewrite the table whole).")
        self.drift_repairs = Counter(
            f"{p}drift_repairs_total", "Resyncs that found the kernel table changed by others."
        )
        self.store_relists = Counter(
            f"{p}store_relists_total", "Times the store's log was gone and the agent re-listed."
        )
        self.sync_errors = Counter(
            f"{p}sync_errors_total", "Failures, by stage.",
            label="stage", values=("store", "feed", "render", "kernel"),
        )
        self.rules = Gauge(f"{p}rules", "Rules in the table last written.")
        self.chains = Gauge(f"{p}chains", "Chains in the table last written.")
        self.sets = Gauge(f"{p}sets", "Named sets in the table last written.")
        self.set_elements = Gauge(f"{p}set_elements", "Set elements in the table last written.")
        self.map_elements = Gauge(
            f"{p}map_elements", "Verdict map elements (local pod addresses) last written."
        )
        self.render_problems = Gauge(
            f"{p}render_problems", "What the renderer could not express (it drops instead)."
        )
        self.rejected_objects = Gauge(
            f"{p}rejected_objects", "Stored documents the agent could not read."
        )
        self.applied_revision = Gauge(
            f"{p}applied_revision", "The store revision the kernel's table reflects."
        )
        self.store_revision = Gauge(f"{p}store_revision", "The newest store revision seen.")
        self.last_sync = Gauge(
            f"{p}last_sync_timestamp_seconds", "Unix time of the last successful sync."
        )
        self.ready = Gauge(f"{p}ready", "1 when the agent is ready (/readyz answers 200).")
        self.memory = _Memory("process_resident_memory_bytes", "Resident memory size in bytes.")

    def families(self) -> list[_Family]:
        return [v for v in vars(self).values() if isinstance(v, _Family)]

    def exposition(self) -> str:
        """The text format, every family, in a stable order."""
        with self.lock:
            lines = [line for f in self.families() for line in (*f.header(), *f.lines())]
        return "\n".join(lines) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

__all__ = ["CONTENT_TYPE", "AgentMetrics", "Counter", "Gauge", "Histogram"]
