"""The kernel takes what the renderer writes: whole tables load atomically and list back as the
IR says, element deltas apply on top and leave the same table a full load of the new state
gives. Each test runs in a throwaway netns (unique prefix, removed in a finalizer)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from kanal.dataplane.netns import create_netns, delete_netns, list_netns
from kanal.dataplane.nft import Nft, load_table_atomically
from kanal.engine import PolicyEngine
from kanal.model.load import load_manifests
from kanal.render import Ruleset, delta_text, only_elements_differ, render_node, table_text

from .builders import allow_from, cluster, engine_of, namespace, pod, pods_in, sel, tcp
from .synthetic import synthetic
from .test_golden import GOLDEN, SCENARIOS

pytestmark = pytest.mark.kernel

BASE = cluster(
    namespace("x"),
    namespace("y"),
    pod("x", "web-1", "10.244.1.2", app="web", ports=()),
    pod("y", "client-1", "10.244.1.3", app="client"),
    allow_from("x", "web", subject=sel(app="web"), peers=[pods_in("y")], ports=[tcp(80)]),
)
GROWN = replace(BASE, pods=(
    *BASE.pods,
    pod("x", "web-2", "10.244.1.4", app="web"),
    pod("y", "client-2", "10.244.2.7", node="n2", app="client"),
))


@pytest.fixture
def nft(netns_prefix: str) -> Iterator[Nft]:
    name = netns_prefix + "render"
    create_netns(name)
    try:
        with Nft(name) as ctx:
            yield ctx
    finally:
        delete_netns(name)
        assert list_netns(netns_prefix) == []


def _objects(nft: Nft) -> list[dict[str, Any]]:
    document = nft.run_json("list table inet kanal")
    assert isinstance(document, dict)
    return [item for item in document["nftables"] if "metainfo" not in item]


def _element(value: Any) -> str:
    """nft's JSON element back to the renderer's text form."""
    if isinstance(value, dict):
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            return "-".join(_element(v) for v in value["range"])
        if "concat" in value:
            return " . ".join(_element(v) for v in value["concat"])
        if "elem" in value:
            return _element(value["elem"]["val"])
    if isinstance(value, list):  # a map element: [key, {"jump": {"target": ...}}]
        (verb, target), = value[1].items()
        return f"{_element(value[0])} : {verb} {target['target']}"
    return str(value)


def _kernel_elements(nft: Nft, kind: str, name: str) -> list[str]:
    document = nft.run_json(f"list {kind} inet kanal {name}")
    assert isinstance(document, dict)
    (found,) = [item[kind] for item in document["nftables"] if kind in item]
    return sorted(_element(e) for e in found.get("elem", []))


def _assert_kernel_holds(nft: Nft, ruleset: Ruleset) -> None:
    objects = _objects(nft)
    chains = {o["chain"]["name"] for o in objects if "chain" in o}
    sets = {o["set"]["name"] for o in objects if "set" in o}
    maps = {o["map"]["name"] for o in objects if "map" in o}
    assert chains == {c.name for c in ruleset.chains}
    assert sets == {s.name for s in ruleset.sets}
    assert maps == {m.name for m in ruleset.maps}
    rules: dict[str, int] = {}
    for o in objects:
        if "rule" in o:
            rules[o["rule"]["chain"]] = rules.get(o["rule"]["chain"], 0) + 1
    assert rules == {c.name: len(c.rules) for c in ruleset.chains if c.rules}


def _golden_rulesets() -> list[tuple[str, Ruleset]]:
    found = []
    for scenario in SCENARIOS:
        engine = PolicyEngine.from_manifests(load_manifests([str(GOLDEN / f"{scenario}.yaml")]))
        for node in sorted({p.node_name for p in engine.pods().values() if p.node_name}):
            found.append((f"{scenario}.{node}", render_node(engine, node)))
    return found


@pytest.mark.parametrize(("name", "ruleset"), _golden_rulesets(), ids=lambda v: str(v)[:30])
def test_every_golden_table_loads_and_lists_back_as_rendered(
    nft: Nft, name: str, ruleset: Ruleset
) -> None:
    load_table_atomically(nft, table_text(ruleset))
    _assert_kernel_holds(nft, ruleset)
    for named in ruleset.sets:
        if not named.interval:  # nft may print intervals in another (equal) form
            assert _kernel_elements(nft, "set", named.name) == sorted(named.elements), name


def test_an_element_delta_applies_on_top_and_equals_a_full_load_of_the_new_state(
    nft: Nft,
) -> None:
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(GROWN), "n1")
    assert only_elements_differ(old, new)
    load_table_atomically(nft, table_text(old))
    nft.run(delta_text(old, new))
    for named in new.sets:
        assert _kernel_elements(nft, "set", named.name) == sorted(named.elements)
    for vmap in new.maps:
        assert _kernel_elements(nft, "map", vmap.name) == sorted(
            f"{k} : {v}" for k, v in vmap.elements
        )
    after_delta = nft.run("list table inet kanal")
    load_table_atomically(nft, table_text(new))
    assert nft.run("list table inet kanal") == after_delta
    nft.run(delta_text(new, old))  # and back
    assert _kernel_elements(nft, "map", "ingress_pods_v4") == sorted(
        f"{k} : {v}" for k, v in old.maps[1].elements
    )


def test_a_structural_change_replaces_the_whole_table(nft: Nft) -> None:
    first = render_node(engine_of(GROWN), "n1")
    second = render_node(engine_of(replace(GROWN, policies=())), "n1")
    load_table_atomically(nft, table_text(first))
    load_table_atomically(nft, table_text(second))
    _assert_kernel_holds(nft, second)


@pytest.mark.slow
def test_a_thousand_policies_over_a_thousand_pods_load_in_one_transaction(nft: Nft) -> None:
    engine = PolicyEngine.from_manifests(synthetic(pods=1000, policies=1000, groups=100, nodes=2))
    ruleset = render_node(engine, "n1")
    start = time.perf_counter()
    load_table_atomically(nft, table_text(ruleset))
    elapsed = time.perf_counter() - start
    _assert_kernel_holds(nft, ruleset)
    assert elapsed < 10, f"loading took {elapsed:.2f} s"
