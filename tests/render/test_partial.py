"""One local pod's share of a render (`kanal.render.partial`): it agrees with the whole render,
and the whole render's structure is exactly what its local pods' verdicts reach (the premise of
the agent's local-pod fast path)."""

from __future__ import annotations

import pytest

from kanal.engine.compiled import CompiledRule
from kanal.model.objects import AdminAction, Direction, Manifests
from kanal.render import RenderOptions, Ruleset, render_node
from kanal.render import ruleset as ruleset_module
from kanal.render.matches import UnrenderableError
from kanal.render.partial import pod_fragment, render_with_dispatch
from kanal.render.ruleset import map_name

from .builders import (
    admin_rule,
    allow_from,
    anp,
    cluster,
    engine_of,
    namespace,
    pod,
    pods_in,
    sel,
    tcp,
)
from .synthetic import synthetic

NODE = "n1"
BASE_CHAINS = {"forward", "raw_prerouting", "raw_output"}
CLUSTERS = {
    "synthetic, two nodes, admin tiers": synthetic(pods=120, policies=16, groups=12, nodes=2),
    "one node, few policies": synthetic(pods=30, policies=3, groups=5, nodes=1),
    "a local pod without an address": cluster(
        namespace("x"), namespace("y"),
        pod("x", "web", "10.0.1.2", app="web"),
        pod("x", "pending", "", app="api"),
        allow_from("x", "web", subject=sel(app="web"), peers=[pods_in("y")], ports=[tcp(80)]),
        allow_from("x", "api", subject=sel(app="api"), peers=[pods_in("y")], ports=[tcp("http")]),
    ),
}
OPTIONS = [RenderOptions(), RenderOptions(log_group=5, vxlan_port=None)]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "logged"])
@pytest.mark.parametrize("manifests", CLUSTERS.values(), ids=list(CLUSTERS))
def test_the_render_with_dispatch_is_render_node_and_its_verdicts_are_the_maps(
    manifests: Manifests, options: RenderOptions
) -> None:
    engine = engine_of(manifests)
    ruleset, dispatch = render_with_dispatch(engine, NODE, options)
    assert ruleset == render_node(engine, NODE, options)
    local = [p for p in engine.pods().values() if p.node_name == NODE]
    assert set(dispatch) == {p.key for p in local}
    maps = {m.name: dict(m.elements) for m in ruleset.maps}
    for p in local:
        for direction in (Direction.EGRESS, Direction.INGRESS):
            for ip in p.ips:
                found = maps[map_name(direction, ip.version)].get(str(ip), "")
                assert found == dispatch[p.key].of(direction), (p.key, direction)


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "logged"])
@pytest.mark.parametrize("manifests", CLUSTERS.values(), ids=list(CLUSTERS))
def test_the_render_holds_exactly_what_its_local_pods_fragments_need(
    manifests: Manifests, options: RenderOptions
) -> None:
    engine = engine_of(manifests)
    ruleset, dispatch = render_with_dispatch(engine, NODE, options)
    chains, sets, log = set(), set(), set()
    for p in engine.pods().values():
        if p.node_name != NODE:
            continue
        fragment = pod_fragment(engine, p, node=NODE, options=options)
        assert fragment.dispatch == dispatch[p.key]
        assert fragment.missing_from(ruleset) == []
        chains |= {c.name for c in fragment.chains}
        sets |= set(fragment.set_names)
        log |= set(fragment.log)
    assert chains == {c.name for c in ruleset.chains} - BASE_CHAINS
    assert sets == {s.name for s in ruleset.sets}
    assert log == set(ruleset.log)


def test_a_pod_whose_policies_the_node_does_not_render_misses_their_chains() -> None:
    engine = engine_of(CLUSTERS["a local pod without an address"])
    ruleset = render_node(engine, NODE)
    newcomer = pod("x", "db", "10.0.1.9", app="db")
    engine.upsert_policy(allow_from("x", "db", subject=sel(app="db"), peers=[pods_in("x")]))
    engine.upsert_pod(newcomer)
    fragment = pod_fragment(engine, newcomer, node=NODE)
    missing = fragment.missing_from(ruleset)
    chains = {m for m in missing if m.startswith("chain ")}
    assert chains == {f"chain {c.name}" for c in fragment.chains}
    assert f"chain {fragment.dispatch.ingress.removeprefix('goto ')}" in chains
    assert any(m.startswith("set pods_ns-x") for m in missing)
    assert any(m.startswith("log entry ") for m in missing)


GUARDED = cluster(
    namespace("x"), namespace("y"),
    pod("x", "web", "10.0.1.2", app="web"),
    anp("guard", 10, subject_namespace="x",
        ingress=[admin_rule(AdminAction.DENY, peer_namespace="y", name="deny-y")]),
)


def test_a_chain_of_the_same_name_with_other_rules_is_missing() -> None:
    """Names alone are not enough: a policy changed since the ruleset was rendered."""
    engine = engine_of(GUARDED)
    ruleset: Ruleset = render_node(engine, NODE)
    engine.upsert_admin_policy(anp("guard", 10, subject_namespace="x", ingress=[
        admin_rule(AdminAction.ALLOW, peer_namespace="y", name="deny-y")]))
    fragment = pod_fragment(engine, engine.pod("x/web"), node=NODE)
    (changed,) = [c for c in fragment.chains if c.name.startswith("anp_guard")]
    assert changed.name in {c.name for c in ruleset.chains}
    assert f"chain {changed.name}" in fragment.missing_from(ruleset)


def test_a_rule_that_cannot_be_rendered_is_a_problem_the_fragment_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = engine_of(GUARDED)
    ruleset = render_node(engine, NODE)
    real = ruleset_module.rule_matches

    def failing(rule: CompiledRule, direction: Direction, **kwargs: object) -> object:
        if rule.name == "deny-y":
            raise UnrenderableError("test")
        return real(rule, direction, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ruleset_module, "rule_matches", failing)
    fragment = pod_fragment(engine, engine.pod("x/web"), node=NODE)
    assert fragment.problems == (
        "ANP `guard` ingress rule 'deny-y' cannot be rendered (test): it drops instead",
    )
    assert f"problem: {fragment.problems[0]}" in fragment.missing_from(ruleset)
