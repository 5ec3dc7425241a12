"""Benchmark the alert evaluator and print a README table.

What a collector adds per stored record when AlertRules exist: `AlertEvaluator.on_records`
over synthetic records in time order (`--rate` records per second of record time): 2,000
source pods in 20 namespaces, each connecting to 500 destination pods on 20 ports, 30% of the
records denied, every record a new connection (new source port). Rule sets: one Breach on
denied flows per source; five rules (Breach per source in one namespace, RollingAverage of
allowed flows per destination, UniqueCount of destination ports and of destination addresses
per source, a pod-selector scope) with thresholds high enough that alerts are rare (an alert
costs its actions, not the evaluator). Memory: the evaluator's allocations at the end
(tracemalloc), i.e. windows, throttles and the per-rule connection memory.

Run: `.venv/bin/python bench/bench_alerts.py [--records 200000] [--rate 20000]`
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from flows.builders import ALLOW_WEB, DEFAULT_DENY_WEB, T0  # noqa: E402
from kanal.flows.alerts import AlertEvaluator  # noqa: E402
from kanal.flows.records import FlowRecord, Peer  # noqa: E402
from kanal.model.alertrule import AlertRule  # noqa: E402
from kanal.model.parse import parse_documents  # noqa: E402


def rules(*specs: dict[str, Any]) -> list[AlertRule]:
    docs = [{"apiVersion": "kanal.io/v1alpha1", "kind": "AlertRule",
             "metadata": {"name": f"r{i}"}, "spec": spec} for i, spec in enumerate(specs)]
    return list(parse_documents(("bench", d) for d in docs).alert_rules)


RULE_SETS = {
    "none": [],
    "1 Breach": rules({"metric": "DeniedFlows", "threshold": 1000}),
    "5 mixed": rules(
        {"metric": "DeniedFlows", "threshold": 1000, "scope": {"namespace": "ns-3"}},
        {"metric": "AllowedFlows", "type": "RollingAverage", "period": "10s", "window": "1m",
         "threshold": 1000, "groupBy": "Destination"},
        {"metric": "DestinationPorts", "threshold": 50, "verdict": "Denied"},
        {"metric": "DestinationAddresses", "threshold": 1000},
        {"metric": "DeniedFlows", "threshold": 1000,
         "scope": {"podSelector": {"matchLabels": {"app": "app-7"}}}},
    ),
}


def records(count: int, rate: float, seed: int = 7) -> list[FlowRecord]:
    rng = random.Random(seed)
    sources = [Peer(f"10.1.{i // 250}.{i % 250}", None, f"ns-{i % 20}", f"src-{i}",
                    {"app": f"app-{i % 10}"}) for i in range(2000)]
    targets = [Peer(f"10.2.{i // 250}.{i % 250}", None, f"ns-{i % 20}", f"dst-{i}",
                    {"app": f"app-{i % 10}"}) for i in range(500)]
    found = []
    for i in range(count):
        src, dst = rng.choice(sources), rng.choice(targets)
        denied = rng.random() < 0.3
        found.append(FlowRecord(
            time=T0 + i / rate, node="node-0", protocol="TCP",
            src=Peer(src.ip, 10000 + i % 50000, src.namespace, src.pod, src.labels),
            dst=Peer(dst.ip, 8000 + rng.randrange(20), dst.namespace, dst.pod, dst.labels),
            decision=DEFAULT_DENY_WEB if denied else ALLOW_WEB,
        ))
    return found


def measure(name: str, batch: list[FlowRecord]) -> tuple[float, float, int, float]:
    """Rates from one run, memory from a second one under tracemalloc (which slows it)."""
    evaluator, fired = AlertEvaluator(RULE_SETS[name]), 0
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(batch), 256):  # the collector's batches
        fired += len(evaluator.on_records(batch[start:start + 256]))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tracemalloc.start()
    evaluator = AlertEvaluator(RULE_SETS[name])
    for start in range(0, len(batch), 256):
        evaluator.on_records(batch[start:start + 256])
    memory = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    return len(batch) / wall, len(batch) / cpu, fired, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20_000)
    args = parser.parse_args()
    batch = records(args.records, args.rate)
    print(f"`.venv/bin/python bench/bench_alerts.py --records {args.records} "
          f"--rate {args.rate:g}`\n")
    print("| rules | records/s (wall) | records/s (cpu) | alerts | evaluator memory MiB |")
    print("|---|---|---|---|---|")
    for name in RULE_SETS:
        per_wall, per_cpu, fired, memory = measure(name, batch)
        print(f"| {name} | {per_wall / 1000:.0f}k | {per_cpu / 1000:.0f}k | {fired} | "
              f"{memory:.1f} |")


if __name__ == "__main__":
    main()
