"""Benchmark the policy engine on synthetic clusters (see generate.py) and print a README table.

```
python bench/bench_engine.py [--sizes 1k/100,10k/1k,100k/10k] [--admin 0|100] [--repeat N]
                             [--json out.json]
```

Each size runs in a fresh subprocess, so its peak RSS (`ru_maxrss`) is its own. Inside, per size:

```
generate (not a target) ─► load+compile × repeat (PolicyEngine.from_manifests, fresh each time)
  ─► matrix for 8080/TCP: first call (cold: builds the per-group chains), then × repeat (warm)
  ─► verdicts on random pod pairs: engine.allowed(engine.connection(...)), and allowed() on
     prebuilt connections; one cold pass, then × repeat
  ─► explain on random pod pairs × repeat ─► peak RSS, groups, distinct selectors
```

Times are wall clock (`time.perf_counter`); the table shows min and median over the repeats,
because the machine is shared and the min is the least disturbed run. This is a benchmark, not a
test: nothing here asserts a time (the targets are printed beside the numbers).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from generate import ClusterSpec, generate
from kanal.engine import Connection, PolicyEngine
from kanal.engine.matrix import compute_matrix
from kanal.model.objects import Manifests, PodKey, Protocol

T = TypeVar("T")
MATRIX_PORT = (8080, Protocol.TCP)
PROBES = [(8080, Protocol.TCP), (9090, Protocol.TCP), (53, Protocol.UDP), (5432, Protocol.TCP)]
MATRIX_MAX_PODS = 20_000
"""Above this the matrix is not computed: 100k pods would be 10^10 cells (10 GB as booleans)."""
TARGETS = (
    "10k pods × 1k policies: full matrix ≤ 2 s; 100k pods × 10k policies: load+compile ≤ 10 s "
    "in ≤ 2 GiB; ≥ 100k verdicts/s"
)

# -- measuring (each returns plain numbers, so a test can run them on a tiny cluster) -------------


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def timed_cpu(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(wall, CPU of this process, result): on a shared machine the CPU time is what the run
    would have taken alone, roughly (the engine is single-threaded)."""
    cpu = time.process_time()
    wall, result = timed(fn)
    return wall, time.process_time() - cpu, result


Times = dict[str, list[float]]


def measure_compile(manifests: Manifests, repeat: int) -> tuple[Times, PolicyEngine]:
    """`repeat` fresh `from_manifests` builds; the previous engine is freed before the next."""
    times: Times = {"wall": [], "cpu": []}
    engine: PolicyEngine | None = None
    for _ in range(repeat):
        engine = None
        gc.collect()
        wall, cpu, engine = timed_cpu(lambda: PolicyEngine.from_manifests(manifests))
        times["wall"].append(wall)
        times["cpu"].append(cpu)
    assert engine is not None
    return times, engine


def measure_matrix(engine: PolicyEngine, repeat: int) -> tuple[Times, Times]:
    """(cold, warm times): the first call builds every group's chains, later ones reuse them."""
    port, protocol = MATRIX_PORT

    def run() -> tuple[float, float]:
        wall, cpu, _ = timed_cpu(lambda: compute_matrix(engine, port=port, protocol=protocol))
        return wall, cpu

    cold_wall, cold_cpu = run()
    warm = [run() for _ in range(repeat)]
    return ({"wall": [cold_wall], "cpu": [cold_cpu]},
            {"wall": [w for w, _ in warm], "cpu": [c for _, c in warm]})


Pair = tuple[PodKey, PodKey, int, Protocol]


def random_pairs(manifests: Manifests, count: int, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    keys = [p.key for p in manifests.pods]
    return [(rng.choice(keys), rng.choice(keys), *rng.choice(PROBES)) for _ in range(count)]


def _rates(run: Callable[[], int], count: int, repeat: int) -> tuple[float, Times]:
    """(cold rate, warm rates by wall and by CPU time) in operations per second."""
    cold, _ = timed(run)
    rates: Times = {"wall": [], "cpu": []}
    for _ in range(repeat):
        wall, cpu, _ = timed_cpu(run)
        rates["wall"].append(count / wall)
        rates["cpu"].append(count / cpu if cpu > 0 else float("inf"))
    return count / cold, rates


def measure_verdicts(
    engine: PolicyEngine, pairs: Sequence[Pair], repeat: int
) -> dict[str, Any]:
    def with_connection() -> int:
        return sum(engine.allowed(engine.connection(s, d, p, proto)) for s, d, p, proto in pairs)

    conns: list[Connection] = [engine.connection(s, d, p, proto) for s, d, p, proto in pairs]

    def prebuilt() -> int:
        return sum(engine.allowed(c) for c in conns)

    cold, warm = _rates(with_connection, len(pairs), repeat)
    _, warm_prebuilt = _rates(prebuilt, len(pairs), repeat)
    return {
        "verdicts_cold_per_s": cold,
        "verdicts_per_s": warm,
        "verdicts_prebuilt_per_s": warm_prebuilt,
        "allowed_fraction": with_connection() / max(1, len(pairs)),
    }


def measure_explain(engine: PolicyEngine, pairs: Sequence[Pair], repeat: int) -> Times:
    def run() -> int:
        return sum(engine.explain(s, d, p, proto).allowed for s, d, p, proto in pairs)

    return _rates(run, len(pairs), repeat)[1]


def peak_rss_mib() -> float:
    """This process's peak resident set (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    spec: ClusterSpec, *, repeat: int, verdicts: int = 20_000, explains: int = 2_000
) -> dict[str, Any]:
    """Every number of one size; meant to run alone in its process (see `run_isolated`)."""
    gen_time, manifests = timed(lambda: generate(spec))
    rss_generated = peak_rss_mib()
    compile_times, engine = measure_compile(manifests, repeat)
    result: dict[str, Any] = {
        "pods": len(manifests.pods),
        "policies": len(manifests.policies),
        "admin_policies": len(manifests.admin_policies),
        "namespaces": len(manifests.namespaces),
        "groups": len(engine.groups().groups()),
        "selectors": len(engine.index().selectors()),
        "generate_s": gen_time,
        "compile_s": compile_times,
        "rss_generated_mib": rss_generated,
        "rss_compiled_mib": peak_rss_mib(),
    }
    if len(manifests.pods) <= MATRIX_MAX_PODS:
        cold, warm = measure_matrix(engine, repeat)
        result |= {"matrix_cold_s": cold, "matrix_s": warm}
    pairs = random_pairs(manifests, verdicts, spec.seed)
    result |= measure_verdicts(engine, pairs, repeat)
    result["explain_per_s"] = measure_explain(engine, pairs[:explains], repeat)
    result["rss_peak_mib"] = peak_rss_mib()
    return result


# -- running sizes in their own processes -------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """`10k/1k` -> (10000, 1000): pods / policies, with k and M suffixes."""

    def number(part: str) -> int:
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:].lower(), 1)
        return int(float(part[:-1] if scale > 1 else part) * scale)

    pods, _, policies = text.partition("/")
    return number(pods), number(policies)


def run_isolated(
    size: str, *, admin: int, baseline: bool, repeat: int, seed: int, timeout: float
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", size, "--admin", str(admin),
               "--repeat", str(repeat), "--seed", str(seed)]
    if baseline:
        command.append("--baseline")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=timeout, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- the table ---------------------------------------------------------------------------------


def _k(n: float) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else f"{n:g}"


def _spread(times: Times) -> str:
    """Wall min / median, then the least CPU time."""
    wall = times["wall"]
    spread = f"{min(wall):.2f}" if len(wall) == 1 else (
        f"{min(wall):.2f} / {statistics.median(wall):.2f}")
    return f"{spread} (cpu {min(times['cpu']):.2f})"


def _per_s(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def _rate(rates: Times) -> str:
    """Wall-clock rates best / median, then the best by CPU time."""
    wall = rates["wall"]
    return (f"{_per_s(max(wall))} / {_per_s(statistics.median(wall))} "
            f"(cpu {_per_s(max(rates['cpu']))})")


COLUMNS = [
    "pods", "policies", "ANPs", "groups", "selectors", "load+compile s", "matrix s (cold)",
    "matrix s (warm)", "verdicts/s", "verdicts/s (prebuilt)", "explain/s", "peak RSS MiB",
]


def table_row(r: dict[str, Any]) -> list[str]:
    has_matrix = "matrix_s" in r
    na = "n/a (pods² cells)"
    return [
        _k(r["pods"]), _k(r["policies"]), str(r["admin_policies"]), str(r["groups"]),
        str(r["selectors"]), _spread(r["compile_s"]),
        _spread(r["matrix_cold_s"]) if has_matrix else na,
        _spread(r["matrix_s"]) if has_matrix else na,
        _rate(r["verdicts_per_s"]), _rate(r["verdicts_prebuilt_per_s"]),
        _rate(r["explain_per_s"]),
        f"{r['rss_compiled_mib']:.0f} / {r['rss_peak_mib']:.0f}",
    ]


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in results]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1k/100,10k/1k,100k/10k",
                        help="comma-separated PODS/POLICIES (default: %(default)s)")
    parser.add_argument("--admin", type=int, default=0, help="AdminNetworkPolicies to add")
    parser.add_argument("--baseline", action="store_true", help="add a BANP too")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per size")
    parser.add_argument("--json", type=Path, help="write every raw number here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one size, JSON on stdout
    args = parser.parse_args(argv)

    if args.one:
        pods, policies = parse_size(args.one)
        spec = ClusterSpec(pods, policies, admin_policies=args.admin, baseline=args.baseline,
                           seed=args.seed)
        print(json.dumps(measure(spec, repeat=args.repeat)))
        return 0

    results = []
    for size in args.sizes.split(","):
        print(f"measuring {size} (admin {args.admin}) ...", file=sys.stderr, flush=True)
        results.append(run_isolated(size, admin=args.admin, baseline=args.baseline,
                                    repeat=args.repeat, seed=args.seed, timeout=args.timeout))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    command = " ".join(["python", "bench/bench_engine.py", *(argv or sys.argv[1:])])
    print(f"```\n{command}\n```\n")
    print(markdown_table(results))
    print(f"\nTimes: wall min / median of {args.repeat} runs (least CPU time); rates: best / "
          f"median wall (best by CPU time). Targets: {TARGETS}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
