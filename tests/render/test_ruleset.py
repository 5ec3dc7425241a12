"""The shape of one node's ruleset: what is shared, what is local, what fails closed."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from kanal.engine.compiled import CompiledPort
from kanal.model.objects import Direction
from kanal.render import RenderOptions, Ruleset, render_node, table_text
from kanal.render import network as network_module
from kanal.render.matches import UnrenderableError
from kanal.render.names import MAX_NAME

from .builders import allow_from, cluster, deny_all, engine_of, namespace, pod, pods_in, sel, tcp

NFT_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
BASE = cluster(
    namespace("x"),
    namespace("y"),
    pod("x", "web-1", "10.244.1.2", app="web"),
    pod("x", "web-2", "10.244.1.3", app="web"),
    pod("x", "api-1", "10.244.1.4", app="api"),
    pod("y", "client-1", "10.244.1.5", app="client"),
    pod("y", "client-2", "10.244.2.5", node="n2", app="client"),
    allow_from("x", "web", subject=sel(app="web"), peers=[pods_in("y")], ports=[tcp(80)]),
    allow_from("x", "api", subject=sel(app="api"), peers=[pods_in("y")], ports=[tcp(8080)]),
)


def _render(**options: object) -> Ruleset:
    return render_node(engine_of(BASE), "n1", RenderOptions(**options))  # type: ignore[arg-type]


def _chain(ruleset: Ruleset, prefix: str) -> list[str]:
    return [c.name for c in ruleset.chains if c.name.startswith(prefix)]


def test_a_peer_selector_used_by_two_policies_is_one_set_with_pods_of_every_node() -> None:
    ruleset = _render()
    (clients,) = [s for s in ruleset.sets if s.comment == "ns:kubernetes.io/metadata.name=y"]
    assert clients.elements == ("10.244.1.5", "10.244.2.5")
    text = table_text(ruleset)
    assert text.count(f"ip saddr @{clients.name} ") == 2


def test_pods_of_one_group_share_a_dispatch_chain_and_groups_with_other_policies_do_not() -> None:
    ruleset = _render()
    ingress = dict(ruleset.maps[1].elements)
    assert ingress["10.244.1.2"] == ingress["10.244.1.3"] != ingress["10.244.1.4"]
    assert len(_chain(ruleset, "ingress_")) == 2
    assert len(_chain(ruleset, "npport_in_")) == 2  # one rule each: port 80 and port 8080


def test_only_local_pods_are_dispatched_and_only_their_policies_rendered() -> None:
    remote = render_node(engine_of(BASE), "n2")
    assert all(not m.elements for m in remote.maps)  # client-2 is selected by nothing
    assert _chain(remote, "np") == [] and remote.sets == ()


def test_an_address_claimed_by_two_local_pods_with_different_chains_fails_closed() -> None:
    m = replace(BASE, pods=(*BASE.pods, pod("y", "clone", "10.244.1.2", app="client")))
    ruleset = render_node(engine_of(m), "n1")
    assert dict(ruleset.maps[1].elements)["10.244.1.2"] == "drop"
    assert any("10.244.1.2 is claimed by pods" in p for p in ruleset.problems)


def test_a_rule_that_cannot_be_rendered_becomes_a_logged_drop_ahead_of_the_port_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = network_module.numeric_span

    def failing(port: CompiledPort) -> object:
        if port.port == 8080:
            raise UnrenderableError("test")
        return real(port)

    monkeypatch.setattr(network_module, "numeric_span", failing)
    ruleset = _render(log_group=2)
    target = dict(ruleset.maps[1].elements)["10.244.1.4"].removeprefix("goto ")
    (api,) = [c for c in ruleset.chains if c.name == target]
    assert [r.verdict for r in api.rules] == ["drop", "drop"]  # the rule, then default deny
    entry = ruleset.log_table()[api.rules[0].log]  # type: ignore[index]
    assert entry.fail_closed and entry.policy == "x/api"
    assert ruleset.problems == (
        "NetworkPolicy `x/api` ingress rule #0 cannot be rendered (test): it drops instead",
    )


def test_every_logged_rule_has_an_entry_and_every_id_fits_an_nflog_prefix() -> None:
    ruleset = _render(log_group=2)
    used = {r.log for c in ruleset.chains for r in c.rules if r.log is not None}
    assert used == set(ruleset.log_table())
    assert all(len(i) <= 63 for i in used)
    assert table_text(ruleset).count("log prefix") == sum(
        1 for c in ruleset.chains for r in c.rules if r.log is not None
    )


def test_the_json_summary_carries_sizes_log_table_and_problems() -> None:
    document = json.loads(json.dumps(_render(log_group=2).to_json()))
    assert document["node"] == "n1" and document["log_group"] == 2
    assert document["stats"]["rules"] > 0 and document["problems"] == []
    assert {e["outcome"] for e in document["log"]} == {"Allow", "DefaultDeny"}


def test_logging_is_off_by_default() -> None:
    assert "log " not in table_text(_render())


def test_every_name_is_a_short_valid_nft_identifier_even_for_long_policy_names() -> None:
    long_name = "a" * 200 + ".example"
    m = replace(BASE, policies=(*BASE.policies, deny_all("x", long_name, Direction.EGRESS),
                                allow_from("x", "x.y", subject=sel(), peers=[pods_in("x")])))
    ruleset = render_node(engine_of(m), "n1")
    names = [c.name for c in ruleset.chains] + [s.name for s in ruleset.sets]
    for name in names:
        assert NFT_NAME.fullmatch(name) and len(name) <= MAX_NAME + 20, name
    assert len(set(names)) == len(names)


def test_the_vxlan_notrack_chains_can_be_left_out() -> None:
    assert "notrack" in table_text(_render())
    assert "notrack" not in table_text(_render(vxlan_port=None))


@pytest.mark.parametrize(
    "options",
    [{"allow_mark": 3}, {"allow_mark": 0x10, "pass_mark": 0x10}, {"log_group": 70000}],
    ids=["a mark of two bits", "the same bit twice", "a log group out of range"],
)
def test_invalid_options_are_refused(options: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RenderOptions(**options)  # type: ignore[arg-type]
