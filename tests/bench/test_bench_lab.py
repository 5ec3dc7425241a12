"""bench_lab.py's measuring functions run end to end on tiny sizes and clean up after
themselves (no time is asserted: this is not a timed test)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from bench_lab import (  # noqa: E402
    CLIENT,
    IPERF_PORT,
    SERVER,
    abba,
    fan_in_cluster,
    fan_in_policies,
    main,
    markdown_table,
    measure_load_section,
    measure_probe,
    measure_sweep,
    measure_traffic,
    measure_up,
)
from kanal.dataplane.netns import list_netns  # noqa: E402
from kanal.engine import PolicyEngine  # noqa: E402
from kanal.model.objects import Direction, Protocol  # noqa: E402


def test_fan_in_policies_select_the_bench_pods_and_allow_last() -> None:
    docs = fan_in_policies(50)
    assert len(docs) == 50
    assert [d["metadata"]["name"] for d in docs[-2:]] == ["zz-allow-bench"] * 2
    engine = PolicyEngine.from_manifests(fan_in_cluster(10, 50))
    groups = engine.groups()
    egress = engine.chain(groups.group_of(CLIENT), Direction.EGRESS).network
    ingress = engine.chain(groups.group_of(SERVER), Direction.INGRESS).network
    assert len(egress) > 10 and len(ingress) > 10
    assert egress[-1].key.endswith("/zz-allow-bench") and ingress[-1].key.endswith(
        "/zz-allow-bench")
    assert engine.allowed(engine.connection(CLIENT, SERVER, IPERF_PORT, Protocol.TCP))
    first = fan_in_policies(50, allow_first=True)
    assert first[-1]["metadata"]["name"] == "aa-allow-bench"


def test_abba_alternates_pairs() -> None:
    assert abba(3) == [False, True, True, False, False, True]


def test_unknown_section_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
    assert "unknown sections" in capsys.readouterr().err


@pytest.mark.kernel
def test_every_section_runs_small_and_leaves_nothing(netns_prefix: str, tmp_path: Path) -> None:
    prefix = netns_prefix
    results = {
        "up": measure_up(prefix, tmp_path, nodes=2, pods=3, repeat=1),
        "load": measure_load_section(prefix, pods=60, policies=20, scale=(10, 20), repeat=1),
        "probe": measure_probe(prefix, tmp_path, repeat=1, probes=[(80, Protocol.TCP)],
                               timeout_s=0.3),
        "traffic": measure_traffic(prefix, tmp_path, policies=20, rounds=1, iperf_s=1,
                                   conn_s=0.3),
        "sweep": measure_sweep(prefix, tmp_path, [4, 10], rounds=1, conn_s=0.2),
    }
    assert list_netns(prefix) == []

    assert results["up"]["pods"] == 3
    scaling = results["load"]["scaling"]
    assert len({(r["kernel"]["chains"], r["kernel"]["rules"]) for r in scaling}) == 1
    assert scaling[0]["kernel"]["map_elements"] < scaling[1]["kernel"]["map_elements"]
    assert results["load"]["generated"]["kernel"]["rules"] > 0

    probe = results["probe"]
    assert probe["none"]["mismatches"] == probe["deny"]["mismatches"] == 0
    assert probe["deny"]["denied"] == 9 * 8 and probe["none"]["denied"] == 0

    traffic = results["traffic"]
    assert traffic["walk"]["client_egress"]["policy_chains"] >= 1  # its port class at least
    assert traffic["walk"]["server_ingress"]["policy_chains"] >= 1
    assert traffic["failed_connections"] == 0
    assert all(s["iperf"]["bits_per_second"] > 0 and s["conn"]["connections"] > 0
               for s in traffic["steps"])
    assert not [pid for pid in traffic["server_pids"] if Path(f"/proc/{pid}").exists()]

    table = markdown_table(results)
    assert [(t["policies"], t["allow"]) for t in results["sweep"]] == [
        (4, "last"), (10, "last"), (10, "first")]
    for metric in ("lab up", "render + atomic load", "probe matrix", "iperf3", "connections/s",
                   "sorted first"):
        assert metric in table
    json.dumps(results)
