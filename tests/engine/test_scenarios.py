"""Scenarios from the Kubernetes documentation and upstream's network policy e2e tests, on the
classic model (namespaces x, y, z × pods a, b, c; ports 80 and 81 on TCP, UDP and SCTP).

Each scenario in `scenarios/*.yaml` gives policies (read through the validating parser, as
`kanal -f` reads them), optional changes to the model (`cluster:` — address family, extra labels,
renamed ports) and the full truth table of one or more probes, written as cyclonus prints it.
Every cell is checked twice: against the vectorised `compute_matrix` and against `explain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kanal.engine import PolicyEngine

from .classic import PODS, assert_truth_tables, manifests, parse_tables, tweaks_from

SCENARIOS = Path(__file__).parent / "scenarios"


def _load() -> list[Any]:
    params = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        for scenario in yaml.safe_load(path.read_text()):
            bug = scenario.get("xfail")
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(scenario, id=scenario["id"], marks=marks))
    return params


ALL = _load()


@pytest.mark.parametrize("scenario", ALL)
def test_scenario_truth_tables(scenario: dict[str, Any]) -> None:
    cluster = scenario.get("cluster") or {}
    m = manifests(
        scenario["policies"],
        family=cluster.get("family", "ipv4"),
        tweaks=tweaks_from(cluster),
    )
    assert_truth_tables(PolicyEngine.from_manifests(m), scenario["expect"])


def test_scenario_ids_are_unique_and_tables_cover_the_whole_model() -> None:
    ids = [p.id for p in ALL]
    assert len(ids) == len(set(ids))
    for param in ALL:
        for table in parse_tables(param.values[0]["expect"]):
            assert table.pods == PODS, param.id
