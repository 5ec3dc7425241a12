"""Element deltas versus whole-table reloads: membership changes are deltas, anything else is a
structural change; the delta commands name exactly what came and went."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kanal.model.objects import Direction, Manifests, Protocol
from kanal.render import (
    Ruleset,
    delta_text,
    only_elements_differ,
    patch_text,
    plan_update,
    render_node,
    rule_text,
    table_text,
)
from kanal.render.ir import Rule
from kanal.render.names import SetName

from .builders import allow_from, cluster, deny_all, engine_of, namespace, pod, pods_in, sel, tcp

BASE = cluster(
    namespace("x"),
    namespace("y"),
    pod("x", "web-1", "10.244.1.2", app="web"),
    pod("y", "client-1", "10.244.1.3", app="client"),
    allow_from("x", "web", subject=sel(app="web"), peers=[pods_in("y")], ports=[tcp(80)]),
)


def _render(m: Manifests) -> tuple[str, object]:
    ruleset = render_node(engine_of(m), "n1")
    return table_text(ruleset), ruleset


def _with_pods(m: Manifests, *pods: object) -> Manifests:
    return replace(m, pods=m.pods + tuple(pods))  # type: ignore[operator]


def test_a_new_pod_in_an_existing_group_is_an_element_delta() -> None:
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(_with_pods(
        BASE, pod("x", "web-2", "10.244.1.4", app="web"), pod("y", "client-2", "10.244.2.9",
                                                              node="n2", app="client"),
    )), "n1")
    assert only_elements_differ(old, new)
    ingress = next(v for _, v in new.maps[1].elements)
    clients = next(s.name for s in new.sets if s.comment == "ns:kubernetes.io/metadata.name=y")
    assert delta_text(old, new) == (
        f"add element inet kanal {clients} {{ 10.244.2.9 }}\n"
        f"add element inet kanal ingress_pods_v4 {{ 10.244.1.4 : {ingress} }}\n"
    )


def test_a_removed_pod_is_deleted_from_its_set_and_its_map() -> None:
    old = render_node(engine_of(_with_pods(BASE, pod("x", "web-2", "10.244.1.4", app="web"))),
                      "n1")
    new = render_node(engine_of(BASE), "n1")
    assert delta_text(old, new) == "delete element inet kanal ingress_pods_v4 { 10.244.1.4 }\n"


def test_a_label_change_to_a_group_with_another_chain_replaces_the_map_entry() -> None:
    both = allow_from("x", "api", subject=sel(app="api"), peers=[pods_in("x")])
    old_m = _with_pods(replace(BASE, policies=(*BASE.policies, both)),
                       pod("x", "api-1", "10.244.1.5", app="api"),
                       pod("x", "api-2", "10.244.1.6", app="api"))
    new_m = replace(old_m, pods=tuple(
        replace(p, labels=pod("x", "", "", app="web").labels) if p.name == "api-1" else p
        for p in old_m.pods
    ))
    old, new = render_node(engine_of(old_m), "n1"), render_node(engine_of(new_m), "n1")
    assert only_elements_differ(old, new)
    lines = delta_text(old, new).splitlines()
    assert lines[0] == "delete element inet kanal ingress_pods_v4 { 10.244.1.5 }"
    assert lines[-1].startswith("add element inet kanal ingress_pods_v4 { 10.244.1.5 : goto ")


def test_the_last_local_pod_leaving_a_policy_is_a_structural_change() -> None:
    """Only the chains local pods need are rendered, so the first or last local pod selected
    by a policy adds or removes its chain: a (rare) whole-table reload."""
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(replace(BASE, pods=BASE.pods[1:])), "n1")
    assert not only_elements_differ(old, new)


def test_a_new_policy_is_a_structural_change_and_needs_the_whole_table() -> None:
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(replace(
        BASE, policies=(*BASE.policies, deny_all("y", "out", Direction.EGRESS))
    )), "n1")
    assert not only_elements_differ(old, new)
    with pytest.raises(ValueError, match="differ in structure"):
        delta_text(old, new)
    update = plan_update(old, new)
    assert update.full and update.text == table_text(new)


def test_no_change_is_an_empty_delta_and_a_first_render_is_a_full_load() -> None:
    ruleset = render_node(engine_of(BASE), "n1")
    assert plan_update(ruleset, ruleset).text == ""
    assert not plan_update(ruleset, ruleset).full
    assert plan_update(None, ruleset).full


def test_the_first_ipv6_pod_is_a_structural_change() -> None:
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(_with_pods(BASE, pod("x", "v6", "fd00::5", app="web"))), "n1")
    assert new.families == (4, 6) and old.families == (4,)
    assert not only_elements_differ(old, new)


@pytest.mark.parametrize(
    ("rule", "log_group", "text"),
    [
        (Rule(("tcp dport 80",), verdict="accept"), None, "tcp dport 80 accept"),
        (Rule(verdict="drop", log="k:1"), None, "drop"),  # type: ignore[arg-type]
        (Rule(verdict="drop", log="k:1"), 3,  # type: ignore[arg-type]
         'log prefix "k:1" group 3 queue-threshold 1 drop'),
        (Rule(statements=("meta mark set meta mark | 0x1",), verdict="return",
              comment='#0 say "hi"'), None,
         "meta mark set meta mark | 0x1 return comment \"#0 say 'hi'\""),
    ],
    ids=["matches then verdict", "a log id without a group is not logged",
         "with a group, NFLOG before the verdict", "comments cannot break out of quotes"],
)
def test_rule_text(rule: Rule, log_group: int | None, text: str) -> None:
    assert rule_text(rule, log_group) == text


def test_ports_of_every_protocol_render_with_their_protocol_keyword() -> None:
    m = replace(BASE, policies=(allow_from(
        "x", "web", subject=sel(app="web"), ports=[tcp(80)],
    ),))
    for proto, keyword in ((Protocol.UDP, "udp"), (Protocol.SCTP, "sctp")):
        policy = replace(m.policies[0], ingress=(replace(m.policies[0].ingress[0], ports=(
            replace(m.policies[0].ingress[0].ports[0], protocol=proto),
        )),))
        text = table_text(render_node(engine_of(replace(m, policies=(policy,))), "n1"))
        assert f"vmap {{ {keyword} . 80 : jump npport_in_" in text


def _all_names(ruleset: Ruleset) -> set[SetName]:
    return {s.name for s in ruleset.sets} | {m.name for m in ruleset.maps}


def test_patch_text_declares_what_comes_and_deletes_what_goes_callers_first() -> None:
    """The last local pod of a policy leaves: its dispatch chain, the port class chain, the
    policy's chain and its peers' set go, in that order; back again, they are declared in one
    block before the map entry that enters them."""
    with_web = render_node(engine_of(BASE), "n1")
    without = render_node(engine_of(replace(BASE, pods=BASE.pods[1:])), "n1")
    gone = patch_text(with_web, without, changed=_all_names(with_web)).splitlines()
    dispatch = next(c.name for c in with_web.chains if c.name.startswith("ingress_"))
    port_class = next(c.name for c in with_web.chains if c.name.startswith("npport_"))
    assert gone == [
        "delete element inet kanal ingress_pods_v4 { 10.244.1.2 }",
        f"delete chain inet kanal {dispatch}",
        f"delete chain inet kanal {port_class}",
        "delete chain inet kanal np_x_web_in",
        f"delete set inet kanal {next(s.name for s in with_web.sets)}",
    ]
    came = patch_text(without, with_web, changed=_all_names(with_web))
    block = table_text(replace(with_web, sets=with_web.sets, maps=(), chains=tuple(
        c for c in with_web.chains if c.hook is None)))
    entry = f"add element inet kanal ingress_pods_v4 {{ 10.244.1.2 : goto {dispatch} }}\n"
    assert came == block + entry


def test_patch_text_leaves_sets_and_maps_not_named_changed_alone() -> None:
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(_with_pods(BASE, pod("y", "client-2", "10.244.2.9"))), "n1")
    assert patch_text(old, new, changed=set()) == ""
    assert patch_text(old, new, changed=_all_names(new)) == delta_text(old, new)


def test_patch_text_refuses_a_chain_whose_content_changed() -> None:
    old = render_node(engine_of(BASE), "n1")
    new = render_node(engine_of(replace(BASE, policies=(allow_from(
        "x", "web", subject=sel(app="web"), peers=[pods_in("y")], ports=[tcp(81)]),))), "n1")
    with pytest.raises(ValueError, match="chain np_x_web_in of node `n1` changed"):
        patch_text(old, new, changed=_all_names(new))
    v6 = render_node(engine_of(_with_pods(BASE, pod("x", "web-6", "fd00::2", app="web"))), "n1")
    with pytest.raises(ValueError, match="changed its frame"):
        patch_text(old, v6, changed=_all_names(v6))
