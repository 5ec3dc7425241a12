"""Scenarios from the Kubernetes documentation and upstream's network policy e2e tests, on the
classic model (namespaces x, y, z × pods a, b, c; ports 80 and 81 on TCP, UDP and SCTP).

Each scenario in `scenarios/*.yaml` gives policies (read through the validating parser, as
`kanal -f` reads them), optional changes to the model (`cluster:` — address family, extra labels,
renamed ports) and the full truth table of one or more probes, written as cyclonus prints it.
Every cell is checked twice: against the vectorised `compute_matrix` and against `explain`.
The admin-tier scenarios (`scenarios/admin/`) run in test_admin_tiers.py.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kanal.engine import PolicyEngine
from kanal.model.objects import Pod, PolicyKey, Protocol
from kanal.model.parse import parse_documents

from .classic import (
    PODS,
    Table,
    assert_truth_tables,
    check_scenario,
    load_scenarios,
    manifests,
    parse_tables,
)

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


# -- upstream's "updated" tests: the engine, changed in place, reaches the scenario's tables -------

BY_ID = {p.id: p.values[0] for p in ALL}
EVERYTHING_ALLOWED = Table(80, Protocol.TCP, PODS, ((True,) * len(PODS),) * len(PODS)).render()


def _engine(scenario_id: str) -> PolicyEngine:
    """The model with the scenario's policies but without its `cluster:` tweaks."""
    return PolicyEngine.from_manifests(manifests(BY_ID[scenario_id]["policies"]))


def _relabelled(pod: Pod, **labels: str) -> Pod:
    return replace(pod, labels=pod.labels.with_changes(labels))


def test_deleting_a_policy_stops_enforcing_it() -> None:
    """upstream: should stop enforcing policies after they are deleted"""
    engine = _engine("default deny all isolates x both ways")
    assert_truth_tables(engine, BY_ID["default deny all isolates x both ways"]["expect"])
    engine.delete_policy(PolicyKey("x/deny-all"))
    assert_truth_tables(engine, EVERYTHING_ALLOWED)


def test_updating_an_allow_all_policy_to_deny_all() -> None:
    """upstream: should enforce updated policy"""
    engine = _engine("an allow-all ingress policy alone changes nothing")
    assert_truth_tables(engine, EVERYTHING_ALLOWED)
    updated = copy.deepcopy(BY_ID["an allow-all ingress policy alone changes nothing"]["policies"])
    updated[0]["spec"]["ingress"] = []
    engine.upsert_policy(parse_documents([("updated", updated[0])]).policies[0])
    deny = "a policy without rules or policyTypes is a default deny for ingress only"
    assert_truth_tables(engine, BY_ID[deny]["expect"])


def test_labelling_a_pod_isolates_it() -> None:
    """upstream: should deny ingress access to updated pod"""
    scenario = "a pod carrying the selected label is isolated, the others are not"
    engine = _engine(scenario)
    assert_truth_tables(engine, EVERYTHING_ALLOWED)
    engine.upsert_pod(_relabelled(engine.pod("x/a"), target="isolated"))
    assert_truth_tables(engine, BY_ID[scenario]["expect"])


def test_labelling_a_pod_admits_it() -> None:
    """upstream: should allow ingress access from updated pod"""
    scenario = "a pod label change is seen through the podSelector"
    engine = _engine(scenario)
    assert not engine.explain("x/b", "x/a", 80).allowed
    engine.upsert_pod(_relabelled(engine.pod("x/b"), pod2="updated"))
    assert_truth_tables(engine, BY_ID[scenario]["expect"])


def test_labelling_a_namespace_admits_its_pods() -> None:
    """upstream: should allow ingress access from updated namespace"""
    scenario = "a namespace label change is seen through the namespaceSelector"
    m = manifests(BY_ID[scenario]["policies"])
    engine = PolicyEngine.from_manifests(m)
    assert not engine.explain("y/a", "x/a", 80).allowed
    y = next(ns for ns in m.namespaces if ns.name == "y")
    engine.upsert_namespace(replace(y, labels=y.labels.with_changes({"ns2": "updated"})))
    assert_truth_tables(engine, BY_ID[scenario]["expect"])
