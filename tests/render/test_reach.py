"""What a table's roots reach (`kanal.render.reach`): a render holds exactly that, and counting
roots per item says what a verdict's last pod takes away."""

from __future__ import annotations

import pytest

from kanal.model.objects import Manifests
from kanal.render import RenderOptions, render_node
from kanal.render.ir import Chain, Rule
from kanal.render.names import ChainName, LogId
from kanal.render.partial import render_with_dispatch
from kanal.render.reach import ReachCount, reach, refs, verdict_target

from .builders import allow_from, cluster, engine_of, namespace, pod, pods_in, sel, tcp
from .synthetic import synthetic

CLUSTERS = {
    "synthetic, two nodes, admin tiers": synthetic(pods=120, policies=16, groups=12, nodes=2),
    "synthetic, one node": synthetic(pods=30, policies=3, groups=5, nodes=1),
}


def test_refs_reads_jumps_inline_map_targets_sets_and_log_ids() -> None:
    chain = Chain(ChainName("egress_1"), (
        Rule(verdict="meta l4proto . th dport vmap { tcp . 80 : jump npport_eg_a, "
                     "udp . 53 : jump npport_eg_b }"),
        Rule(("ip daddr @pods_x_v4", "ip daddr . meta l4proto . th dport @port_http_v4"),
             verdict="jump np_x_y_eg"),
        Rule(verdict="drop", log=LogId("k:0123456789ab")),
    ))
    found = refs(chain)
    assert found.chains == ("npport_eg_a", "npport_eg_b", "np_x_y_eg")
    assert found.sets == ("pods_x_v4", "port_http_v4")
    assert found.logs == ("k:0123456789ab",)
    assert [verdict_target(v) for v in ("jump egress_1", "goto ingress_2", "drop", "")] == [
        "egress_1", "ingress_2", None, None]


@pytest.mark.parametrize("options", [RenderOptions(), RenderOptions(pod_interfaces="cali")],
                         ids=["plain", "guarded"])
@pytest.mark.parametrize("manifests", CLUSTERS.values(), ids=list(CLUSTERS))
def test_a_render_holds_exactly_what_its_base_chains_and_local_verdicts_reach(
    manifests: Manifests, options: RenderOptions
) -> None:
    engine = engine_of(manifests)
    ruleset, dispatch = render_with_dispatch(engine, "n1", options)
    roots = [c.name for c in ruleset.chains if c.hook is not None]
    roots += [t for d in dispatch.values() for _, v in d.verdicts() if (t := verdict_target(v))]
    found = reach(roots, {c.name: c for c in ruleset.chains})
    assert found.chains == {c.name for c in ruleset.chains}
    assert found.sets - {m.name for m in ruleset.maps} == {s.name for s in ruleset.sets}
    assert found.logs == {e.id for e in ruleset.log}


def test_a_policy_chain_no_dispatch_chain_enters_is_not_rendered() -> None:
    """The only pod `x/api` selects declares no port `http`: its chain could never match."""
    manifests = cluster(
        namespace("x"), namespace("y"),
        pod("x", "pending", "10.0.1.2", app="api"),
        allow_from("x", "api", subject=sel(app="api"), peers=[pods_in("y")], ports=[tcp("http")]),
    )
    ruleset = render_node(engine_of(manifests), "n1")
    assert [c.name for c in ruleset.chains if c.name.startswith("np_")] == []
    assert ruleset.sets == ()
    assert [e.policy for e in ruleset.log] == [None]  # only the default deny's end


def _chains(*edges: tuple[str, str]) -> dict[ChainName, Chain]:
    names = {n for edge in edges for n in edge}
    return {ChainName(n): Chain(ChainName(n), tuple(
        Rule(verdict=f"jump {b}") for a, b in edges if a == n)) for n in sorted(names)}


def test_reach_count_keeps_what_another_root_still_reaches() -> None:
    chains = _chains(("d1", "shared"), ("d2", "shared"), ("d2", "own"))
    count = ReachCount()
    count.reset([ChainName("d1")], chains)
    delta, added, removed = count.plan([ChainName("d2")], [], chains)
    assert sorted(added) == [("chain", "d2"), ("chain", "own")] and removed == []
    count.commit(delta)
    delta, added, removed = count.plan([], [ChainName("d1")], chains)
    assert added == [] and removed == [("chain", "d1")]
    count.commit(delta)
    delta, added, removed = count.plan([], [ChainName("d2")], chains)
    assert sorted(removed) == [("chain", "d2"), ("chain", "own"), ("chain", "shared")]
