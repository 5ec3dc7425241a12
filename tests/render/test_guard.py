"""The pod guard (`kanal.render.guard`): with `pod_interfaces`, a base chain ahead of the policy
drops what a pod interface carries for an address no local pod has; the local pod sets hold
exactly the node's pods' addresses."""

from __future__ import annotations

import pytest

from kanal.render import RenderOptions, render_node, table_text

from .builders import cluster, engine_of, namespace, pod

GUARDED = RenderOptions(pod_interfaces="cali", vxlan_port=None)
V4_ONLY = cluster(
    namespace("x"),
    pod("x", "a", "10.0.1.3"),
    pod("x", "b", "10.0.1.2"),
    pod("x", "pending", ""),
    pod("x", "remote", "10.0.2.2", node="n2"),
)
DUAL = cluster(
    namespace("x"),
    pod("x", "a", "10.0.1.2"),
    pod("x", "v6", "fd00::1:2"),
    pod("x", "remote", "fd00::2:2", node="n2"),
)


def _sets(options: RenderOptions, manifests: object) -> dict[str, tuple[str, ...]]:
    ruleset = render_node(engine_of(manifests), "n1", options)  # type: ignore[arg-type]
    return {s.name: s.elements for s in ruleset.sets if s.name.startswith("local_pods_")}


def test_v4_only_the_guard_drops_unknown_v4_and_all_v6_of_pod_interfaces() -> None:
    text = table_text(render_node(engine_of(V4_ONLY), "n1", GUARDED))
    assert "\tchain pod_guard {\n" \
        "\t\ttype filter hook forward priority filter - 5; policy accept;\n" \
        "\t\tcomment \"pod interfaces: only addresses of pods this node knows\"\n" \
        "\t\tiifname \"cali*\" ip saddr != @local_pods_v4 drop\n" \
        "\t\toifname \"cali*\" ip daddr != @local_pods_v4 drop\n" \
        "\t\tiifname \"cali*\" meta nfproto ipv6 drop\n" \
        "\t\toifname \"cali*\" meta nfproto ipv6 drop\n" \
        "\t}\n" in text
    assert _sets(GUARDED, V4_ONLY) == {"local_pods_v4": ("10.0.1.2", "10.0.1.3")}


def test_with_ipv6_pods_each_family_has_its_set_of_local_addresses_only() -> None:
    ruleset = render_node(engine_of(DUAL), "n1", GUARDED)
    (guard,) = [c for c in ruleset.chains if c.name == "pod_guard"]
    assert [" ".join(r.matches) for r in guard.rules] == [
        'iifname "cali*" ip saddr != @local_pods_v4', 'oifname "cali*" ip daddr != @local_pods_v4',
        'iifname "cali*" ip6 saddr != @local_pods_v6',
        'oifname "cali*" ip6 daddr != @local_pods_v6',
    ]
    assert _sets(GUARDED, DUAL) == {"local_pods_v4": ("10.0.1.2",), "local_pods_v6": ("fd00::1:2",)}
    names = [s.name for s in ruleset.sets]
    assert names == sorted(names)


def test_without_pod_interfaces_there_is_no_guard() -> None:
    ruleset = render_node(engine_of(V4_ONLY), "n1", RenderOptions())
    assert "pod_guard" not in {c.name for c in ruleset.chains}
    assert _sets(RenderOptions(), V4_ONLY) == {}


@pytest.mark.parametrize("prefix", ["", "cali*", "a b", "x" * 15, 'k"'])
def test_a_prefix_that_cannot_start_an_interface_name_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="pod interface prefix"):
        RenderOptions(pod_interfaces=prefix)
