"""bench/bench_agent.py runs end to end on tiny sizes and cleans up after itself (no time is
asserted: this is not a timed test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from bench_agent import Metric, main, markdown  # noqa: E402
from kanal.dataplane.netns import list_netns  # noqa: E402


def test_the_table_shows_p50_p99_and_whether_the_target_is_met() -> None:
    metrics = [
        Metric("fast", "x", [0.001] * 98 + [0.5] * 2, target=0.02),
        Metric("memory", "y", [120.0], unit="MiB", target=300),
        Metric("none", "z"),
    ]
    assert markdown(metrics) == [
        "| metric | what | p50 | p99 | n | target |",
        "|---|---|---|---|---|---|",
        "| fast | x | 1.0 ms | 500.0 ms | 100 | p99 ≤ 20.0 ms ✗ |",
        "| memory | y | 120 MiB |  | 1 | ≤ 300 MiB ✓ |",
        "| none | z | - | - | 0 |  |",
    ]


@pytest.mark.kernel
@pytest.mark.slow
def test_every_section_runs_on_a_tiny_cluster_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--pods", "300", "--policies", "30", "--labels", "4", "--local-labels", "2",
            "--policy-rounds", "2", "--reach-pods", "4", "--json", str(tmp_path / "out.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for name in ("policy_enforcement_latency_policy_creation_seconds",
                 "pod_creation_reachability_latency_seconds",
                 "label change → kernel updated (pod on another node)",
                 "agent memory (RSS, peak)"):
        assert f"| {name} |" in out
    assert (tmp_path / "out.json").exists()
    assert list_netns("kbag") == []
