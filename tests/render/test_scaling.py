"""Rules grow with policies, never with pods: only set and map elements grow with pods."""

from __future__ import annotations

import time

import pytest

from kanal.engine import PolicyEngine
from kanal.render import render_node, table_text

from .synthetic import synthetic


def _stats(pods: int, policies: int, **kwargs: int) -> dict[str, int]:
    engine = PolicyEngine.from_manifests(synthetic(pods=pods, policies=policies, **kwargs))
    ruleset = render_node(engine, "n1")
    assert ruleset.problems == ()
    return ruleset.stats()


def test_rules_chains_and_sets_stay_constant_as_pods_grow_tenfold_twice() -> None:
    small, medium, large = (_stats(n, 20) for n in (10, 100, 1000))
    for key in ("chains", "rules", "sets"):
        assert small[key] == medium[key] == large[key], key
    assert small["set_elements"] < medium["set_elements"] < large["set_elements"]
    assert large["map_elements"] == 10 * medium["map_elements"] == 100 * small["map_elements"]


def test_rules_grow_with_policies() -> None:
    assert _stats(100, 40)["rules"] > _stats(100, 20)["rules"]


@pytest.mark.slow
def test_a_thousand_policies_over_a_thousand_pods_render_in_well_under_a_few_seconds() -> None:
    engine = PolicyEngine.from_manifests(
        synthetic(pods=1000, policies=1000, groups=100, nodes=2)
    )
    start = time.perf_counter()
    text = table_text(render_node(engine, "n1"))
    elapsed = time.perf_counter() - start
    assert text.startswith("table inet kanal {")
    assert elapsed < 5.0, f"rendering took {elapsed:.2f} s"
