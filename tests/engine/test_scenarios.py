"""Scenarios from the Kubernetes documentation and upstream's network policy e2e tests, on the
classic model (namespaces x, y, z × pods a, b, c; ports 80 and 81 on TCP, UDP and SCTP).

Each scenario in `scenarios/*.yaml` gives policies (read through the validating parser, as
`kanal -f` reads them), optional changes to the model (`cluster:` — address family, extra labels,
renamed ports) and the full truth table of one or more probes, written as cyclonus prints it.
Every cell is checked twice: against the vectorised `compute_matrix` and against `explain`.
The admin-tier scenarios (`scenarios/admin/`) run in test_admin_tiers.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .classic import PODS, check_scenario, load_scenarios, parse_tables

SCENARIOS = Path(__file__).parent / "scenarios"
ALL = load_scenarios(SCENARIOS)


@pytest.mark.parametrize("scenario", ALL)
def test_scenario_truth_tables(scenario: dict[str, Any]) -> None:
    check_scenario(scenario)


@pytest.mark.parametrize(
    "scenarios", [ALL, load_scenarios(SCENARIOS / "admin")], ids=["scenarios", "scenarios/admin"]
)
def test_scenario_tables_cover_the_model_with_unique_ids_and_an_open_diagonal(
    scenarios: list[Any],
) -> None:
    ids = [p.id for p in scenarios]
    assert len(ids) == len(set(ids))
    for param in scenarios:
        for table in parse_tables(param.values[0]["expect"]):
            assert table.pods == PODS, param.id
            assert table.diagonal_allowed(), f"{param.id}: a pod cannot block access to itself"
