"""AdminNetworkPolicy and BaselineAdminNetworkPolicy (issue 3): priority order, first match,
Allow/Deny/Pass against NetworkPolicies and the baseline, ports of all three forms, networks and
nodes peers, same-priority ordering and the decision chain, all from YAML manifests read by the
validating parser (`policy.networking.k8s.io/v1alpha1`).

The semantics are those of sigs.k8s.io/network-policy-api (apis/v1alpha1 types and their
documentation, quoted in `scenarios/admin/tiers.yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .classic import check_scenario, load_scenarios

ADMIN_SCENARIOS = load_scenarios(Path(__file__).parent / "scenarios" / "admin")


@pytest.mark.parametrize("scenario", ADMIN_SCENARIOS)
def test_admin_scenario_truth_tables(scenario: dict[str, Any]) -> None:
    check_scenario(scenario)
