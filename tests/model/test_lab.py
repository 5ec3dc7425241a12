"""The `Lab` kind: defaults, both spellings of nodes, and every problem at once."""

from __future__ import annotations

import ipaddress

import pytest

from kanal.errors import ManifestError
from kanal.model.lab import Backend, IpamMode, LabSpec
from kanal.model.parse import parse_documents


def _lab(spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "kanal.io/v1alpha1",
        "kind": "Lab",
        "metadata": {"name": "demo"},
        "spec": spec,
    }


def test_an_empty_spec_gets_the_defaults() -> None:
    lab = parse_documents([("lab.yaml", _lab({}))]).lab
    assert lab == LabSpec(name="demo")
    assert lab.nodes == ("node-1", "node-2")
    assert lab.backend is Backend.VXLAN and lab.ipam is IpamMode.NODE


def test_a_node_count_names_the_nodes_and_every_field_is_read() -> None:
    spec = {
        "nodes": 3,
        "backend": "host-gw",
        "ipam": "namespace",
        "clusterCIDR": "10.50.0.0/16",
        "blockPrefix": 26,
    }
    lab = parse_documents([("lab.yaml", _lab(spec))]).lab
    assert lab == LabSpec(
        "demo",
        ("node-1", "node-2", "node-3"),
        Backend.HOST_GW,
        IpamMode.NAMESPACE,
        ipaddress.IPv4Network("10.50.0.0/16"),
        26,
    )


def test_manifests_without_a_lab_have_none() -> None:
    assert parse_documents([]).lab is None


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        pytest.param({"nodes": 0}, "spec.nodes: 0 nodes: a lab has 1 to 16 nodes", id="zero nodes"),
        pytest.param(
            {"nodes": ["a", "a"]},
            "spec.nodes: node names must be unique, at most 16",
            id="duplicate node names",
        ),
        pytest.param(
            {"nodes": ["Bad_Name"]},
            "spec.nodes[0]: invalid node name 'Bad_Name'",
            id="node names are DNS subdomains",
        ),
        pytest.param(
            {"backend": "gre"},
            "spec.backend: unsupported value 'gre': use vxlan or host-gw",
            id="unknown backend",
        ),
        pytest.param(
            {"ipam": "pod"},
            "spec.ipam: unsupported value 'pod': use node or namespace",
            id="unknown ipam mode",
        ),
        pytest.param(
            {"clusterCIDR": "fd00::/64"},
            "spec.clusterCIDR: the lab supports IPv4 cluster CIDRs only",
            id="IPv6 cluster CIDR",
        ),
        pytest.param(
            {"blockPrefix": 8},
            "spec.blockPrefix: 8 must be longer than the cluster prefix /16 and at most 30",
            id="block larger than the cluster",
        ),
        pytest.param(
            {"nodez": 2}, "spec.nodez: unknown field: did you mean 'nodes'?", id="misspelled field"
        ),
    ],
)
def test_bad_lab_fields_are_reported(spec: dict[str, object], line: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_documents([("lab.yaml", _lab(spec))])
    assert any(str(p).startswith(f"lab.yaml: Lab demo: {line}") for p in caught.value.problems), (
        caught.value
    )


def test_every_problem_of_a_lab_is_reported_at_once() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_documents([("lab.yaml", _lab({"backend": "gre", "ipam": "pod", "nodes": 0}))])
    assert len(caught.value.problems) == 3


def test_two_labs_are_rejected() -> None:
    other = _lab({}) | {"metadata": {"name": "other"}}
    with pytest.raises(ManifestError, match="one Lab per set of manifests"):
        parse_documents([("a.yaml", _lab({})), ("b.yaml", other)])
