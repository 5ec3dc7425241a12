"""Raw documents to validated objects: kind dispatch, metadata, labels, selectors, the core
kinds, NetworkPolicy, the admin policies, and what holds across documents.

Every invalid case asserts the exact problem lines a user sees."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from kanal.errors import ManifestError
from kanal.model.objects import (
    EVERYTHING,
    AdminAction,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    ContainerPort,
    Direction,
    IPBlock,
    Labels,
    LabelSelector,
    Manifests,
    Namespace,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
    Requirement,
)
from kanal.model.parse import parse_documents

Doc = dict[str, Any]
Tweak = Callable[[Doc], None]

SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com')"
)
LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')"
)
NAME_PART_HELP = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')"
)
VALUE_HELP = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value')"
)


# --- builders ---------------------------------------------------------------------------------


def put(path: str, value: Any) -> Tweak:
    """Set `a.b.0.c` in a document, creating objects on the way; digits index lists."""

    def tweak(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(last) if last.isdigit() else last] = value

    return tweak


def drop(path: str) -> Tweak:
    def tweak(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part) if part.isdigit() else part]
        del node[last]

    return tweak


def _build(base: Doc, tweaks: tuple[Tweak, ...]) -> Doc:
    doc = copy.deepcopy(base)
    for tweak in tweaks:
        tweak(doc)
    return doc


def namespace(*tweaks: Tweak) -> Doc:
    base = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    return _build(base, tweaks)


def pod(*tweaks: Tweak) -> Doc:
    base = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
    }
    return _build(base, tweaks)


def node(*tweaks: Tweak) -> Doc:
    base = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}
    return _build(base, tweaks)


def netpol(*tweaks: Tweak) -> Doc:
    base = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np", "namespace": "shop"},
        "spec": {"podSelector": {}},
    }
    return _build(base, tweaks)


def anp(*tweaks: Tweak) -> Doc:
    base = {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": "guard"},
        "spec": {"priority": 10, "subject": {"namespaces": {}}},
    }
    return _build(base, tweaks)


def banp(*tweaks: Tweak) -> Doc:
    base = {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {"subject": {"namespaces": {}}},
    }
    return _build(base, tweaks)


def _sources(docs: tuple[object, ...]) -> list[tuple[str, object]]:
    if len(docs) == 1:
        return [("t.yaml", docs[0])]
    return [(f"t.yaml:doc {n}", doc) for n, doc in enumerate(docs, start=1)]


def parse(*docs: object) -> Manifests:
    return parse_documents(_sources(docs))


def problems(*docs: object) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_documents(_sources(docs))
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


def invalid(doc: object, *lines: str, id: str) -> Any:
    return pytest.param(doc, list(lines), id=id)


# --- kinds and dispatch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(
            {"apiVersion": "v1", "metadata": {"name": "x"}},
            "t.yaml: kind: is required (e.g. kind: Pod)",
            id="a document without kind is rejected",
        ),
        invalid(
            {"kind": "Pod", "metadata": {"name": "x"}},
            "t.yaml: apiVersion: is required (e.g. apiVersion: v1)",
            id="a document without apiVersion is rejected",
        ),
        invalid(
            netpol(put("apiVersion", "extensions/v1beta1")),
            "t.yaml: NetworkPolicy shop/np: apiVersion: 'extensions/v1beta1' is not supported "
            "for NetworkPolicy: use networking.k8s.io/v1",
            id="a known kind with another apiVersion is rejected",
        ),
        invalid(
            ["apiVersion", "v1"],
            "t.yaml: must be an object (key: value pairs), not a list",
            id="a document that is a list is rejected",
        ),
        invalid(
            {"apiVersion": "v1", "kind": 3},
            't.yaml: kind: must be a string, not an integer: quote it ("3")',
            id="a kind that is not a string is rejected",
        ),
        invalid(
            {"apiVersion": "v1", "kind": "List", "items": {"a": 1}},
            "t.yaml: items: must be a list of objects",
            id="a List whose items are not a list is rejected",
        ),
    ],
)
def test_kind_problems(doc: object, expected: list[str]) -> None:
    assert problems(doc) == expected


def test_kinds_kanal_does_not_use_are_skipped_with_a_note() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"},
    }
    manifests = parse(deployment, config, {"apiVersion": "v1", "kind": "Secret"})
    assert manifests.notes == (
        "t.yaml:doc 1: skipped Deployment web (kanal does not use this kind)",
        "t.yaml:doc 2: skipped ConfigMap shop/settings (kanal does not use this kind)",
        "t.yaml:doc 3: skipped Secret (kanal does not use this kind)",
    )
    assert manifests == Manifests(notes=manifests.notes)


def test_empty_documents_are_skipped() -> None:
    assert parse(None, namespace()).namespaces == (
        Namespace("shop", Labels({"kubernetes.io/metadata.name": "shop"})),
    )


def test_a_list_is_read_item_by_item_and_named_by_item() -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [pod(), pod(put("metadata.name", "Bad"))]}
    assert problems(doc) == [
        f"t.yaml:item 2: Pod shop/Bad: metadata.name: invalid name 'Bad': {SUBDOMAIN_HELP}"
    ]


def test_a_typed_list_lends_its_kind_to_items_without_one() -> None:
    item = pod(drop("apiVersion"), drop("kind"))
    manifests = parse({"apiVersion": "v1", "kind": "PodList", "items": [item]})
    assert [p.key for p in manifests.pods] == ["shop/web"]


# --- metadata and labels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(pod(drop("metadata")), "t.yaml: Pod: metadata: is required", id="no metadata"),
        invalid(
            pod(drop("metadata.name")),
            "t.yaml: Pod: metadata.name: is required",
            id="a pod without a name is rejected",
        ),
        invalid(
            pod(drop("metadata.name"), put("metadata.generateName", "web-")),
            "t.yaml: Pod: metadata.name: is required: generateName is not supported, give a name",
            id="generateName is not supported",
        ),
        invalid(
            pod(put("metadata.name", "Web_1")),
            f"t.yaml: Pod shop/Web_1: metadata.name: invalid name 'Web_1': {SUBDOMAIN_HELP}",
            id="a pod name must be a DNS-1123 subdomain",
        ),
        invalid(
            pod(put("metadata.name", "a" * 254)),
            f"t.yaml: Pod shop/{'a' * 254}: metadata.name: invalid name '{'a' * 254}': "
            "must be no more than 253 characters",
            id="a pod name is at most 253 characters",
        ),
        invalid(
            namespace(put("metadata.name", "my.shop")),
            f"t.yaml: Namespace my.shop: metadata.name: invalid name 'my.shop': {LABEL_HELP}",
            id="a namespace name must be a DNS-1123 label",
        ),
        invalid(
            namespace(put("metadata.name", "a" * 64)),
            f"t.yaml: Namespace {'a' * 64}: metadata.name: invalid name '{'a' * 64}': "
            "must be no more than 63 characters",
            id="a namespace name is at most 63 characters",
        ),
        invalid(
            pod(put("metadata.namespace", "My_Shop")),
            f"t.yaml: Pod My_Shop/web: metadata.namespace: invalid namespace 'My_Shop': "
            f"{LABEL_HELP}",
            id="metadata.namespace must be a DNS-1123 label",
        ),
        invalid(
            pod(put("metadata.labels", {"-app": "web"})),
            f"t.yaml: Pod shop/web: metadata.labels[-app]: invalid label key '-app': "
            f"{NAME_PART_HELP}",
            id="a label key name must start with an alphanumeric character",
        ),
        invalid(
            pod(put("metadata.labels", {"Example.com/app": "web"})),
            "t.yaml: Pod shop/web: metadata.labels[Example.com/app]: invalid label key "
            f"'Example.com/app': prefix part {SUBDOMAIN_HELP}",
            id="a label key prefix must be a lowercase DNS subdomain",
        ),
        invalid(
            pod(put("metadata.labels", {"app": "web server"})),
            f"t.yaml: Pod shop/web: metadata.labels[app]: invalid label value 'web server': "
            f"{VALUE_HELP}",
            id="a label value has no spaces",
        ),
        invalid(
            pod(put("metadata.labels", {"app": "a" * 64})),
            f"t.yaml: Pod shop/web: metadata.labels[app]: invalid label value '{'a' * 64}': "
            "must be no more than 63 characters",
            id="a label value is at most 63 characters",
        ),
        invalid(
            pod(put("metadata.labels", {"version": 2})),
            't.yaml: Pod shop/web: metadata.labels[version]: must be a string, not an integer: '
            'quote it ("2")',
            id="a numeric label value must be quoted",
        ),
        invalid(
            pod(put("metadata.labels", {"canary": True})),
            't.yaml: Pod shop/web: metadata.labels[canary]: must be a string, not a boolean: '
            'quote it ("true")',
            id="a boolean label value must be quoted",
        ),
        invalid(
            pod(put("metadata.labels", ["app=web"])),
            "t.yaml: Pod shop/web: metadata.labels: must be an object (key: value pairs), "
            "not a list",
            id="labels must be a map",
        ),
    ],
)
def test_metadata_problems(doc: Doc, expected: list[str]) -> None:
    assert problems(doc) == expected


def test_namespaced_objects_default_to_the_default_namespace() -> None:
    assert [p.key for p in parse(pod(drop("metadata.namespace"))).pods] == ["default/web"]


def test_an_empty_label_value_is_valid() -> None:
    (parsed,) = parse(pod(put("metadata.labels", {"canary": ""}))).pods
    assert parsed.labels == Labels({"canary": ""})


# --- Namespace, Pod, Node ---------------------------------------------------------------------


def test_a_namespace_always_carries_its_name_label() -> None:
    doc = namespace(
        put("metadata.labels", {"tier": "web", "kubernetes.io/metadata.name": "other"})
    )
    assert parse(doc).namespaces == (
        Namespace("shop", Labels({"tier": "web", "kubernetes.io/metadata.name": "shop"})),
    )


def test_a_pod_is_read_with_ports_node_and_addresses() -> None:
    doc = pod(
        put("spec.nodeName", "node-1"),
        put("spec.containers", [
            {"name": "c", "ports": [{"name": "http", "containerPort": 80}]},
            {"name": "sidecar", "ports": [
                {"name": "metrics", "containerPort": 9125, "protocol": "UDP"},
                {"containerPort": 9000, "protocol": "SCTP"},
            ]},
        ]),
        put("status", {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}),
    )
    (parsed,) = parse(doc).pods
    assert parsed.labels == Labels({"app": "web"})
    assert parsed.node_name == "node-1"
    assert parsed.ports == (
        ContainerPort(80, Protocol.TCP, "http"),
        ContainerPort(9125, Protocol.UDP, "metrics"),
        ContainerPort(9000, Protocol.SCTP, None),
    )
    assert parsed.ips == (ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("fd00::5"))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({}, (), id="a pod without status has no address yet"),
        pytest.param({"podIP": "10.0.0.5"}, ("10.0.0.5",), id="podIP alone is the address"),
        pytest.param(
            {"podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}]},
            ("fd00::5", "10.0.0.5"),
            id="podIPs keeps its order, primary first",
        ),
    ],
)
def test_pod_addresses(status: Doc, expected: tuple[str, ...]) -> None:
    (parsed,) = parse(pod(put("status", status))).pods
    assert parsed.ips == tuple(ipaddress.ip_address(ip) for ip in expected)


def test_a_pod_without_containers_is_accepted() -> None:
    (parsed,) = parse(pod(drop("spec"))).pods
    assert parsed.ports == ()


PORT_0 = "spec.containers.0.ports.0"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(
            pod(put(f"{PORT_0}.containerPort", 0)),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].containerPort: port 0 must be "
            "between 1 and 65535, inclusive",
            id="containerPort 0 is rejected",
        ),
        invalid(
            pod(put(f"{PORT_0}.containerPort", 65536)),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].containerPort: port 65536 must be "
            "between 1 and 65535, inclusive",
            id="containerPort 65536 is rejected",
        ),
        invalid(
            pod(drop(f"{PORT_0}.containerPort")),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].containerPort: is required",
            id="containerPort is required",
        ),
        invalid(
            pod(put(f"{PORT_0}.containerPort", "80")),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].containerPort: must be an "
            "integer, not a string",
            id="containerPort is a number",
        ),
        invalid(
            pod(put(f"{PORT_0}.protocol", "ICMP")),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].protocol: unsupported protocol "
            "'ICMP': use one of TCP, UDP, SCTP",
            id="a container port protocol is TCP, UDP or SCTP",
        ),
        invalid(
            pod(put(f"{PORT_0}.name", "web-http-frontend")),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].name: invalid port name "
            "'web-http-frontend': must be no more than 15 characters",
            id="a port name is at most 15 characters",
        ),
        invalid(
            pod(put(f"{PORT_0}.name", "8080")),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].name: invalid port name '8080': "
            "must contain at least one letter (a-z)",
            id="a port name has at least one letter",
        ),
        invalid(
            pod(put(f"{PORT_0}.name", "Http--")),
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].name: invalid port name "
            "'Http--': must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].name: invalid port name "
            "'Http--': must not contain consecutive hyphens",
            "t.yaml: Pod shop/web: spec.containers[0].ports[0].name: invalid port name "
            "'Http--': must not begin or end with a hyphen",
            id="a port name reports each of its problems",
        ),
        invalid(
            pod(put("spec.containers", [
                {"name": "c", "ports": [{"name": "http", "containerPort": 80}]},
                {"name": "d", "ports": [{"name": "http", "containerPort": 8080}]},
            ])),
            "t.yaml: Pod shop/web: spec.containers[1].ports[0].name: duplicate port name "
            "'http' (also at spec.containers[0].ports[0]): port names must be unique in a pod, "
            "rename one",
            id="a port name is unique across the containers of a pod",
        ),
        invalid(
            pod(put("spec.nodeName", "Node_1")),
            f"t.yaml: Pod shop/web: spec.nodeName: invalid node name 'Node_1': {SUBDOMAIN_HELP}",
            id="nodeName must be a DNS-1123 subdomain",
        ),
        invalid(
            pod(put("status.podIP", "10.0.0.300")),
            "t.yaml: Pod shop/web: status.podIP: '10.0.0.300' is not a valid IP address "
            "(e.g. 10.9.8.7 or 2001:db8::ffff)",
            id="podIP must be an IP address",
        ),
        invalid(
            pod(put("status", {"podIP": "10.0.0.6", "podIPs": [{"ip": "10.0.0.5"}]})),
            "t.yaml: Pod shop/web: status.podIP: 10.0.0.6 must equal status.podIPs[0] "
            "(10.0.0.5): the first podIPs entry is the primary address",
            id="podIP must agree with podIPs",
        ),
        invalid(
            pod(put("status.podIPs", [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}])),
            "t.yaml: Pod shop/web: status.podIPs: may hold at most one IPv4 and one IPv6 "
            "address (dual-stack)",
            id="podIPs holds one address per family",
        ),
        invalid(
            pod(put("status.podIPs", [{"address": "10.0.0.5"}])),
            "t.yaml: Pod shop/web: status.podIPs[0].ip: is required",
            id="a podIPs entry needs ip",
        ),
    ],
)
def test_pod_problems(doc: Doc, expected: list[str]) -> None:
    assert problems(doc) == expected


def test_a_node_is_read_with_its_internal_addresses() -> None:
    doc = node(
        put("metadata.labels", {"zone": "a"}),
        put("status.addresses", [
            {"type": "Hostname", "address": "node-1"},
            {"type": "InternalIP", "address": "172.18.0.2"},
            {"type": "ExternalIP", "address": "203.0.113.9"},
            {"type": "InternalIP", "address": "fd00:18::2"},
        ]),
    )
    (parsed,) = parse(doc).nodes
    assert (parsed.name, parsed.labels) == ("node-1", Labels({"zone": "a"}))
    assert parsed.ips == (ipaddress.ip_address("172.18.0.2"), ipaddress.ip_address("fd00:18::2"))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(
            node(put("status.addresses", [{"type": "InternalIP", "address": "node-1.local"}])),
            "t.yaml: Node node-1: status.addresses[0].address: 'node-1.local' is not a valid IP "
            "address (e.g. 10.9.8.7 or 2001:db8::ffff)",
            id="an InternalIP must be an IP address",
        ),
        invalid(
            node(put("status.addresses", [{"address": "172.18.0.2"}])),
            "t.yaml: Node node-1: status.addresses[0].type: is required",
            id="an address needs its type",
        ),
    ],
)
def test_node_problems(doc: Doc, expected: list[str]) -> None:
    assert problems(doc) == expected


# --- label selectors (read the same way everywhere; tested through a policy) -----------------

def expression(**fields: Any) -> Tweak:
    return put("spec.podSelector.matchExpressions", [fields])


def selector_of(**fields: Any) -> LabelSelector:
    (policy,) = parse(netpol(put("spec.podSelector", fields))).policies
    return policy.pod_selector


def test_a_selector_reads_labels_and_expressions() -> None:
    selector = selector_of(
        matchLabels={"app": "web"},
        matchExpressions=[
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    )
    assert selector == LabelSelector(
        Labels({"app": "web"}),
        (
            Requirement("tier", Operator.IN, frozenset({"a", "b"})),
            Requirement("legacy", Operator.DOES_NOT_EXIST),
        ),
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(
            netpol(expression(key="tier", operator="In", values=[])),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].values: must "
            "list at least one value when operator is In",
            id="In needs values",
        ),
        invalid(
            netpol(expression(key="tier", operator="NotIn")),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].values: must "
            "list at least one value when operator is NotIn",
            id="NotIn needs values",
        ),
        invalid(
            netpol(expression(key="tier", operator="Exists", values=["a"])),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].values: must "
            "be empty when operator is Exists: remove the values",
            id="Exists takes no values",
        ),
        invalid(
            netpol(expression(key="tier", operator="DoesNotExist", values=["a"])),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].values: must "
            "be empty when operator is DoesNotExist: remove the values",
            id="DoesNotExist takes no values",
        ),
        invalid(
            netpol(expression(key="tier", operator="Equals", values=["a"])),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].operator: "
            "unsupported operator 'Equals': use one of In, NotIn, Exists, DoesNotExist",
            id="an unknown operator is rejected",
        ),
        invalid(
            netpol(expression(values=["a"])),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].key: is required",
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].operator: "
            "is required",
            id="an expression needs key and operator",
        ),
        invalid(
            netpol(expression(key="-tier", operator="In", values=["a b"])),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].key: invalid "
            f"label key '-tier': {NAME_PART_HELP}",
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchExpressions[0].values[0]: "
            f"invalid label value 'a b': {VALUE_HELP}",
            id="expression keys and values are validated as labels",
        ),
        invalid(
            netpol(put("spec.podSelector.matchLabels", {"app": "web web"})),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchLabels[app]: invalid label "
            f"value 'web web': {VALUE_HELP}",
            id="matchLabels values are validated as labels",
        ),
        invalid(
            netpol(put("spec.podSelector", {"matchLabel": {"app": "web"}})),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector.matchLabel: unknown field: did you "
            "mean 'matchLabels'?",
            id="a misspelled selector field is rejected, not read as select-all",
        ),
        invalid(
            netpol(put("spec.podSelector", "app=web")),
            "t.yaml: NetworkPolicy shop/np: spec.podSelector: must be an object (key: value "
            "pairs), not a string",
            id="a selector is an object, not kubectl's string syntax",
        ),
    ],
)
def test_selector_problems(doc: Doc, expected: list[str]) -> None:
    assert problems(doc) == expected


# --- NetworkPolicy ----------------------------------------------------------------------------

INGRESS = frozenset({Direction.INGRESS})
EGRESS = frozenset({Direction.EGRESS})
BOTH = frozenset({Direction.INGRESS, Direction.EGRESS})
SOME_EGRESS: list[Doc] = [{"to": [{"podSelector": {}}]}]


@pytest.mark.parametrize(
    ("tweaks", "expected"),
    [
        pytest.param((), INGRESS, id="no policyTypes and no egress rules means Ingress"),
        pytest.param(
            (put("spec.egress", SOME_EGRESS),),
            BOTH,
            id="no policyTypes with egress rules means Ingress and Egress",
        ),
        pytest.param(
            (put("spec.egress", []),),
            INGRESS,
            id="an empty egress list does not add Egress",
        ),
        pytest.param(
            (put("spec.policyTypes", []), put("spec.egress", SOME_EGRESS)),
            BOTH,
            id="empty policyTypes are defaulted like absent ones",
        ),
        pytest.param(
            (put("spec.policyTypes", ["Egress"]),),
            EGRESS,
            id="explicit Egress alone stays Egress alone",
        ),
        pytest.param(
            (put("spec.policyTypes", ["Ingress"]), put("spec.egress", SOME_EGRESS)),
            INGRESS,
            id="explicit policyTypes are kept even when egress rules exist",
        ),
    ],
)
def test_policy_types_are_defaulted_as_upstream(
    tweaks: tuple[Tweak, ...], expected: frozenset[Direction]
) -> None:
    (policy,) = parse(netpol(*tweaks)).policies
    assert policy.policy_types == expected


def test_an_absent_pod_selector_selects_every_pod() -> None:
    (policy,) = parse(netpol(drop("spec.podSelector"))).policies
    assert policy.pod_selector == EVERYTHING


def test_a_network_policy_is_read_rule_by_rule() -> None:
    doc = netpol(
        put("spec.podSelector", {"matchLabels": {"app": "db"}}),
        put("spec.ingress", [
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"tier": "web"}},
                     "podSelector": {"matchLabels": {"app": "web"}}},
                    {"podSelector": {}},
                    {"ipBlock": {"cidr": "10.0.0.1/8", "except": ["10.1.2.3/16"]}},
                ],
                "ports": [
                    {"port": 5432},
                    {"protocol": "UDP", "port": "metrics"},
                    {"protocol": "TCP", "port": 8000, "endPort": 8080},
                    {"protocol": "SCTP"},
                ],
            },
            {},
        ]),
        put("spec.egress", [{"to": [], "ports": []}]),
    )
    (policy,) = parse(doc).policies
    assert policy.key == "shop/np"
    assert policy.pod_selector == LabelSelector(Labels({"app": "db"}))
    assert policy.policy_types == BOTH
    web, tier_web = LabelSelector(Labels({"app": "web"})), LabelSelector(Labels({"tier": "web"}))
    assert policy.ingress == (
        PolicyRule(
            peers=(
                PolicyPeer(pod_selector=web, namespace_selector=tier_web),
                PolicyPeer(pod_selector=EVERYTHING),
                PolicyPeer(ip_block=IPBlock(
                    ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.1.0.0/16"),)
                )),
            ),
            ports=(
                PolicyPort(Protocol.TCP, 5432),
                PolicyPort(Protocol.UDP, "metrics"),
                PolicyPort(Protocol.TCP, 8000, 8080),
                PolicyPort(Protocol.SCTP, None),
            ),
        ),
        PolicyRule(),
    )
    assert policy.egress == (PolicyRule(),)


RULE = "spec.ingress.0"
NP = "t.yaml: NetworkPolicy shop/np"


def ingress_peer(peer: Any) -> Tweak:
    return put("spec.ingress", [{"from": [peer]}])


def ingress_port(port: Any) -> Tweak:
    return put("spec.ingress", [{"ports": [port]}])


def ip_block(cidr: str, *excepts: str) -> Tweak:
    return ingress_peer({"ipBlock": {"cidr": cidr, "except": list(excepts)}})


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(netpol(drop("spec")), f"{NP}: spec: is required", id="spec is required"),
        invalid(
            netpol(put("spec.ingress", [{"form": [{"podSelector": {}}]}])),
            f"{NP}: spec.ingress[0].form: unknown field: did you mean 'from'?",
            id="a misspelled from is rejected, not read as every peer",
        ),
        invalid(
            netpol(put("spec.podselector", {})),
            f"{NP}: spec.podselector: unknown field: did you mean 'podSelector'?",
            id="field names are case-sensitive",
        ),
        invalid(
            netpol(put("spec.policyTypes", ["ingress"])),
            f"{NP}: spec.policyTypes[0]: unsupported policy type 'ingress': use Ingress or Egress",
            id="policyTypes are Ingress or Egress",
        ),
        invalid(
            netpol(put("spec.policyTypes", ["Ingress", "Egress", "Ingress"])),
            f"{NP}: spec.policyTypes[2]: Ingress is listed twice: remove one",
            id="a policy type is listed once",
        ),
        invalid(
            netpol(ingress_peer({})),
            f"{NP}: spec.ingress[0].from[0]: must specify podSelector, namespaceSelector or "
            "ipBlock (to allow every peer, leave out the whole from/to list instead)",
            id="an empty peer is rejected",
        ),
        invalid(
            netpol(ingress_peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}})),
            f"{NP}: spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or "
            "namespaceSelector in one peer: make them two peers",
            id="ipBlock excludes selectors in the same peer",
        ),
        invalid(
            netpol(ingress_peer({"ipBlock": {"except": ["10.0.0.0/8"]}})),
            f"{NP}: spec.ingress[0].from[0].ipBlock.cidr: is required (e.g. 10.0.0.0/8)",
            id="ipBlock needs a cidr",
        ),
        invalid(
            netpol(ip_block("10.0.0.0")),
            f"{NP}: spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.0' is not a CIDR: add a prefix "
            "length (e.g. 10.0.0.0/32 or 10.0.0.0/8)",
            id="a cidr needs a prefix length",
        ),
        invalid(
            netpol(ip_block("10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/16")),
            f"{NP}: spec.ingress[0].from[0].ipBlock.except[1]: 11.0.0.0/16 must be a strict "
            "subset of cidr 10.0.0.0/8: use a range inside it",
            id="an except outside cidr is rejected",
        ),
        invalid(
            netpol(ip_block("10.0.0.0/8", "10.0.0.0/8")),
            f"{NP}: spec.ingress[0].from[0].ipBlock.except[0]: 10.0.0.0/8 must be a strict "
            "subset of cidr 10.0.0.0/8: use a range inside it",
            id="an except equal to cidr is rejected",
        ),
        invalid(
            netpol(ip_block("10.0.0.0/8", "fd00::/64")),
            f"{NP}: spec.ingress[0].from[0].ipBlock.except[0]: fd00::/64 is IPv6 but cidr "
            "10.0.0.0/8 is IPv4: an except must lie inside cidr",
            id="an except of the other family is rejected",
        ),
        invalid(
            netpol(ip_block("10.0.0.0/8", "10.1.0.0/33")),
            f"{NP}: spec.ingress[0].from[0].ipBlock.except[0]: '10.1.0.0/33' is not a valid CIDR "
            "(e.g. 192.168.1.0/24 or 2001:db8::/64)",
            id="an except must be a valid CIDR",
        ),
        invalid(
            netpol(ingress_port({"protocol": "ICMP"})),
            f"{NP}: spec.ingress[0].ports[0].protocol: unsupported protocol 'ICMP': use one of "
            "TCP, UDP, SCTP",
            id="a policy port protocol is TCP, UDP or SCTP",
        ),
        invalid(
            netpol(ingress_port({"port": 0})),
            f"{NP}: spec.ingress[0].ports[0].port: port 0 must be between 1 and 65535, inclusive",
            id="port 0 is rejected",
        ),
        invalid(
            netpol(ingress_port({"port": "80"})),
            f"{NP}: spec.ingress[0].ports[0].port: '80' is a string, so it would name a port: "
            "write 80 without quotes for a port number",
            id="a quoted port number is rejected with a hint",
        ),
        invalid(
            netpol(ingress_port({"port": "Http"})),
            f"{NP}: spec.ingress[0].ports[0].port: invalid port name 'Http': must contain only "
            "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            id="a named port must be a valid port name",
        ),
        invalid(
            netpol(ingress_port({"endPort": 90})),
            f"{NP}: spec.ingress[0].ports[0].endPort: requires a numeric port: set port to the "
            "first port of the range",
            id="endPort without port is rejected",
        ),
        invalid(
            netpol(ingress_port({"port": "http", "endPort": 90})),
            f"{NP}: spec.ingress[0].ports[0].endPort: cannot be used with the named port 'http': "
            "use a numeric port",
            id="endPort with a named port is rejected",
        ),
        invalid(
            netpol(ingress_port({"port": 80, "endPort": 70})),
            f"{NP}: spec.ingress[0].ports[0].endPort: endPort 70 must be >= port 80",
            id="endPort below port is rejected",
        ),
        invalid(
            netpol(ingress_port({"port": 80, "endPort": 70000})),
            f"{NP}: spec.ingress[0].ports[0].endPort: endPort 70000 must be between 1 and 65535, "
            "inclusive",
            id="endPort above 65535 is rejected",
        ),
        invalid(
            netpol(ingress_port({"port": True})),
            f"{NP}: spec.ingress[0].ports[0].port: must be an integer or a string, not a boolean",
            id="a port is a number or a name",
        ),
        invalid(
            netpol(put("spec.ingress", {"from": []})),
            f"{NP}: spec.ingress: must be a list, not an object",
            id="ingress is a list of rules",
        ),
    ],
)
def test_network_policy_problems(doc: Doc, expected: list[str]) -> None:
    assert problems(doc) == expected


def test_a_port_range_equal_at_both_ends_is_one_port() -> None:
    (policy,) = parse(netpol(ingress_port({"port": 80, "endPort": 80}))).policies
    assert policy.ingress[0].ports == (PolicyPort(Protocol.TCP, 80, 80),)


# --- AdminNetworkPolicy and BaselineAdminNetworkPolicy ----------------------------------------

ANP = "t.yaml: AdminNetworkPolicy guard"
BANP = "t.yaml: BaselineAdminNetworkPolicy default"
WEB = LabelSelector(Labels({"app": "web"}))
PROD = LabelSelector(Labels({"env": "prod"}))


def admin_rule(direction: str = "ingress", /, **rule: Any) -> Tweak:
    peers_key = "from" if direction == "ingress" else "to"
    return put(f"spec.{direction}", [{"action": "Deny", peers_key: [{"namespaces": {}}], **rule}])


def admin_peer(peer: Any, direction: str = "ingress") -> Tweak:
    peers_key = "from" if direction == "ingress" else "to"
    return admin_rule(direction, **{peers_key: [peer]})


def admin_port(port: Any) -> Tweak:
    return admin_rule(ports=[port])


def test_an_admin_policy_is_read_rule_by_rule() -> None:
    doc = anp(
        put("spec.subject", {"pods": {"namespaceSelector": {"matchLabels": {"env": "prod"}},
                                      "podSelector": {"matchLabels": {"app": "web"}}}}),
        put("spec.ingress", [
            {"name": "allow-monitoring", "action": "Allow",
             "from": [{"namespaces": {"matchLabels": {"env": "prod"}}}],
             "ports": [{"portNumber": {"port": 9090}},
                       {"portNumber": {"protocol": "UDP", "port": 53}},
                       {"namedPort": "metrics"},
                       {"portRange": {"start": 8000, "end": 8080}}]},
            {"action": "Pass", "from": [{"pods": {"namespaceSelector": {}, "podSelector": {}}}],
             "ports": []},
        ]),
        put("spec.egress", [
            {"name": "no-nodes", "action": "Deny",
             "to": [{"nodes": {"matchLabels": {"env": "prod"}}},
                    {"networks": ["10.0.0.1/8", "fd00::/64"]}]},
        ]),
    )
    (policy,) = parse(doc).admin_policies
    assert (policy.name, policy.priority, policy.is_baseline) == ("guard", 10, False)
    assert policy.subject == AdminSubject(PROD, WEB)
    assert policy.ingress == (
        AdminRule(
            "allow-monitoring",
            AdminAction.ALLOW,
            (AdminPeer(namespace_selector=PROD),),
            (
                AdminPort(Protocol.TCP, 9090),
                AdminPort(Protocol.UDP, 53),
                AdminPort(None, "metrics"),
                AdminPort(Protocol.TCP, 8000, 8080),
            ),
        ),
        AdminRule("", AdminAction.PASS, (AdminPeer(EVERYTHING, EVERYTHING),), None),
    )
    assert policy.egress == (
        AdminRule(
            "no-nodes",
            AdminAction.DENY,
            (
                AdminPeer(node_selector=PROD),
                AdminPeer(networks=(
                    ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/64")
                )),
            ),
        ),
    )


def test_a_baseline_policy_has_no_priority() -> None:
    manifests = parse(banp(admin_rule(action="Allow")))
    assert manifests.admin_policies == ()
    assert manifests.baseline_policy is not None
    assert manifests.baseline_policy.is_baseline
    assert manifests.baseline_policy.ingress[0].action is AdminAction.ALLOW


def test_admin_policies_are_ordered_by_priority_then_name() -> None:
    docs = [
        anp(put("metadata.name", "c"), put("spec.priority", 5)),
        anp(put("metadata.name", "b"), put("spec.priority", 20)),
        anp(put("metadata.name", "a"), put("spec.priority", 20)),
        anp(put("metadata.name", "d"), put("spec.priority", 0)),
    ]
    manifests = parse(*docs)
    assert [(p.priority, p.name) for p in manifests.admin_policies] == [
        (0, "d"), (5, "c"), (20, "a"), (20, "b")
    ]
    assert manifests.notes == (
        "AdminNetworkPolicies a, b share priority 20: their order is undefined upstream, kanal "
        "evaluates them by name; give each its own",
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        invalid(
            anp(drop("spec.priority")), f"{ANP}: spec.priority: is required", id="no priority"
        ),
        invalid(
            anp(put("spec.priority", 1001)),
            f"{ANP}: spec.priority: priority 1001 must be between 0 and 1000 (policies with a "
            "lower number are evaluated first)",
            id="priority is at most 1000",
        ),
        invalid(
            anp(put("spec.priority", -1)),
            f"{ANP}: spec.priority: priority -1 must be between 0 and 1000 (policies with a "
            "lower number are evaluated first)",
            id="priority is at least 0",
        ),
        invalid(
            anp(put("spec.priority", "high")),
            f"{ANP}: spec.priority: must be an integer, not a string",
            id="priority is a number",
        ),
        invalid(
            anp(put("metadata.name", "Guard")),
            f"t.yaml: AdminNetworkPolicy Guard: metadata.name: invalid name 'Guard': "
            f"{SUBDOMAIN_HELP}",
            id="an admin policy name is a DNS-1123 subdomain",
        ),
        invalid(anp(drop("spec.subject")), f"{ANP}: spec.subject: is required", id="no subject"),
        invalid(
            anp(put("spec.subject", {})),
            f"{ANP}: spec.subject: must set one of namespaces or pods",
            id="an empty subject is rejected",
        ),
        invalid(
            anp(put("spec.subject", {"namespaces": {}, "pods": {"namespaceSelector": {},
                                                               "podSelector": {}}})),
            f"{ANP}: spec.subject: must set only one of namespaces or pods, not namespaces and "
            "pods",
            id="a subject is namespaces or pods, not both",
        ),
        invalid(
            anp(put("spec.subject", {"pods": {"podSelector": {}}})),
            f"{ANP}: spec.subject.pods.namespaceSelector: is required: use {{}} to select "
            "everything",
            id="a pods subject needs a namespaceSelector",
        ),
        invalid(
            anp(put("spec.ingress", [{"action": "Deny", "from": [{"namespaces": {}}]}] * 101)),
            f"{ANP}: spec.ingress: has 101 rules: at most 100 are allowed",
            id="at most 100 ingress rules",
        ),
        invalid(
            anp(admin_rule(name="x" * 101)),
            f"{ANP}: spec.ingress[0].name: must be no more than 100 characters (it has 101)",
            id="a rule name is at most 100 characters",
        ),
        invalid(
            anp(admin_rule(action="Reject")),
            f"{ANP}: spec.ingress[0].action: unsupported action 'Reject': use Allow or Deny or "
            "Pass",
            id="an action is Allow, Deny or Pass",
        ),
        invalid(
            anp(put("spec.ingress", [{"from": [{"namespaces": {}}]}])),
            f"{ANP}: spec.ingress[0].action: is required",
            id="a rule needs an action",
        ),
        invalid(
            anp(put("spec.egress", [{"action": "Deny"}])),
            f"{ANP}: spec.egress[0].to: is required: list at least one peer",
            id="an egress rule needs to",
        ),
        invalid(
            anp(admin_rule(**{"from": []})),
            f"{ANP}: spec.ingress[0].from: must list at least one peer",
            id="an empty from is rejected, never read as every peer",
        ),
        invalid(
            anp(admin_rule(**{"from": [{"namespaces": {}}] * 101})),
            f"{ANP}: spec.ingress[0].from: has 101 peers: at most 100 are allowed",
            id="at most 100 peers",
        ),
        invalid(
            anp(admin_peer({})),
            f"{ANP}: spec.ingress[0].from[0]: must set one of namespaces or pods",
            id="an empty ingress peer is rejected",
        ),
        invalid(
            anp(admin_peer({}, "egress")),
            f"{ANP}: spec.egress[0].to[0]: must set one of namespaces or pods or nodes or networks",
            id="an empty egress peer is rejected",
        ),
        invalid(
            anp(admin_peer({"namespaces": {}, "nodes": {}}, "egress")),
            f"{ANP}: spec.egress[0].to[0]: must set only one of namespaces or pods or nodes or "
            "networks, not namespaces and nodes",
            id="a peer sets exactly one field",
        ),
        invalid(
            anp(admin_peer({"nodes": {}})),
            f"{ANP}: spec.ingress[0].from[0].nodes: is only allowed in egress peers (to), not in "
            "ingress (from)",
            f"{ANP}: spec.ingress[0].from[0]: must set one of namespaces or pods",
            id="nodes peers are egress only",
        ),
        invalid(
            anp(admin_peer({"networks": ["10.0.0.0/8"]})),
            f"{ANP}: spec.ingress[0].from[0].networks: is only allowed in egress peers (to), not "
            "in ingress (from)",
            f"{ANP}: spec.ingress[0].from[0]: must set one of namespaces or pods",
            id="networks peers are egress only",
        ),
        invalid(
            anp(admin_peer({"networks": []}, "egress")),
            f"{ANP}: spec.egress[0].to[0].networks: must list 1 to 25 CIDRs, not 0",
            id="networks lists at least one CIDR",
        ),
        invalid(
            anp(admin_peer({"networks": [f"10.{i}.0.0/16" for i in range(26)]}, "egress")),
            f"{ANP}: spec.egress[0].to[0].networks: must list 1 to 25 CIDRs, not 26",
            id="networks lists at most 25 CIDRs",
        ),
        invalid(
            anp(admin_peer({"networks": ["10.0.0.0/40"]}, "egress")),
            f"{ANP}: spec.egress[0].to[0].networks[0]: '10.0.0.0/40' is not a valid CIDR "
            "(e.g. 192.168.1.0/24 or 2001:db8::/64)",
            id="networks are valid CIDRs",
        ),
        invalid(
            anp(admin_peer({"networks": ["::ffff:10.0.0.0/104"]}, "egress")),
            f"{ANP}: spec.egress[0].to[0].networks[0]: '::ffff:10.0.0.0/104' must be either an "
            "IPv4 or an IPv6 CIDR (IPv4 addresses embedded in IPv6 are not supported)",
            id="IPv4-in-IPv6 networks are rejected as the CRD does",
        ),
        invalid(
            anp(admin_port({})),
            f"{ANP}: spec.ingress[0].ports[0]: must set one of portNumber or namedPort or "
            "portRange",
            id="an empty port is rejected",
        ),
        invalid(
            anp(admin_port({"namedPort": "http", "portNumber": {"port": 80}})),
            f"{ANP}: spec.ingress[0].ports[0]: must set only one of portNumber or namedPort or "
            "portRange, not portNumber and namedPort",
            id="a port sets exactly one field",
        ),
        invalid(
            anp(admin_port({"portNumber": {"port": 0}})),
            f"{ANP}: spec.ingress[0].ports[0].portNumber.port: port 0 must be between 1 and "
            "65535, inclusive",
            id="portNumber port is 1 to 65535",
        ),
        invalid(
            anp(admin_port({"portNumber": {"protocol": "UDP"}})),
            f"{ANP}: spec.ingress[0].ports[0].portNumber.port: is required",
            id="portNumber needs a port",
        ),
        invalid(
            anp(admin_port({"namedPort": "Web"})),
            f"{ANP}: spec.ingress[0].ports[0].namedPort: invalid port name 'Web': must contain "
            "only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            id="namedPort is a valid port name",
        ),
        invalid(
            anp(admin_port({"portRange": {"start": 8080, "end": 8000}})),
            f"{ANP}: spec.ingress[0].ports[0].portRange.end: start 8080 must be less than end "
            "8000 (for a single port use portNumber)",
            id="portRange start must be below end",
        ),
        invalid(
            anp(admin_port({"portRange": {"start": 8080, "end": 8080}})),
            f"{ANP}: spec.ingress[0].ports[0].portRange.end: start 8080 must be less than end "
            "8080 (for a single port use portNumber)",
            id="a one-port portRange is rejected",
        ),
        invalid(
            anp(admin_port({"portRange": {"protocol": "ICMP", "start": 1, "end": 70000}})),
            f"{ANP}: spec.ingress[0].ports[0].portRange.protocol: unsupported protocol 'ICMP': "
            "use one of TCP, UDP, SCTP",
            f"{ANP}: spec.ingress[0].ports[0].portRange.end: end 70000 must be between 1 and "
            "65535, inclusive",
            id="portRange protocol and bounds are validated",
        ),
        invalid(
            anp(admin_rule(action="Allow", **{"form": [{"namespaces": {}}]})),
            f"{ANP}: spec.ingress[0].form: unknown field: did you mean 'from'?",
            id="a misspelled admin field is rejected",
        ),
        invalid(
            banp(admin_rule(action="Pass")),
            f"{BANP}: spec.ingress[0].action: Pass is not allowed in a "
            "BaselineAdminNetworkPolicy: use Allow or Deny",
            id="a baseline rule cannot Pass",
        ),
        invalid(
            banp(put("spec.priority", 10)),
            f"{BANP}: spec.priority: a BaselineAdminNetworkPolicy has no priority (it always "
            "comes last): remove it",
            id="a baseline policy has no priority",
        ),
        invalid(
            banp(put("metadata.name", "baseline")),
            "t.yaml: BaselineAdminNetworkPolicy baseline: metadata.name: invalid name "
            "'baseline': must be 'default': a cluster has one BaselineAdminNetworkPolicy",
            id="a baseline policy is named default",
        ),
    ],
)
def test_admin_policy_problems(doc: Doc, expected: list[str]) -> None:
    assert problems(doc) == expected


# --- across documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        pytest.param(
            (pod(), pod(put("metadata.labels", {"app": "other"}))),
            ["t.yaml:doc 2: Pod shop/web: is defined twice, also in t.yaml:doc 1: remove or "
             "rename one"],
            id="a pod defined twice names both sources",
        ),
        pytest.param(
            (pod(drop("metadata.namespace")), pod(put("metadata.namespace", "default"))),
            ["t.yaml:doc 2: Pod default/web: is defined twice, also in t.yaml:doc 1: remove or "
             "rename one"],
            id="the default namespace counts when comparing",
        ),
        pytest.param(
            (namespace(), namespace()),
            ["t.yaml:doc 2: Namespace shop: is defined twice, also in t.yaml:doc 1: remove or "
             "rename one"],
            id="a namespace defined twice is rejected",
        ),
        pytest.param(
            (banp(), banp()),
            ["t.yaml:doc 2: BaselineAdminNetworkPolicy default: is defined twice, also in "
             "t.yaml:doc 1: remove or rename one"],
            id="two baseline policies are rejected",
        ),
        pytest.param(
            (pod(put("spec.containers.0.ports.0.containerPort", 0)), pod()),
            ["t.yaml:doc 1: Pod shop/web: spec.containers[0].ports[0].containerPort: port 0 must "
             "be between 1 and 65535, inclusive",
             "t.yaml:doc 2: Pod shop/web: is defined twice, also in t.yaml:doc 1: remove or "
             "rename one"],
            id="an invalid object still claims its name",
        ),
    ],
)
def test_duplicate_objects(docs: tuple[Doc, ...], expected: list[str]) -> None:
    assert problems(*docs) == expected


def test_same_name_in_another_namespace_or_kind_is_no_duplicate() -> None:
    manifests = parse(
        pod(), pod(put("metadata.namespace", "other")), netpol(put("metadata.name", "web"))
    )
    assert [p.key for p in manifests.pods] == ["other/web", "shop/web"]
    assert [p.key for p in manifests.policies] == ["shop/web"]


def test_namespaces_in_use_but_not_declared_are_implied() -> None:
    manifests = parse(
        namespace(put("metadata.name", "db"), put("metadata.labels", {"tier": "db"})),
        pod(put("metadata.namespace", "web")),
        netpol(drop("metadata.namespace")),
    )
    assert manifests.namespaces == (
        Namespace("db", Labels({"tier": "db", "kubernetes.io/metadata.name": "db"})),
        Namespace("default", Labels({"kubernetes.io/metadata.name": "default"}), declared=False),
        Namespace("web", Labels({"kubernetes.io/metadata.name": "web"}), declared=False),
    )
    assert manifests.notes == ()


def test_output_order_does_not_depend_on_input_order() -> None:
    docs = [
        pod(put("metadata.name", "b"), put("metadata.namespace", "x")),
        pod(put("metadata.name", "a"), put("metadata.namespace", "y")),
        pod(put("metadata.name", "a"), put("metadata.namespace", "x")),
        netpol(put("metadata.name", "z"), put("metadata.namespace", "a")),
        netpol(put("metadata.name", "b"), put("metadata.namespace", "b")),
        netpol(put("metadata.name", "a"), put("metadata.namespace", "b")),
        node(put("metadata.name", "n2")),
        node(put("metadata.name", "n1")),
        namespace(put("metadata.name", "y")),
    ]
    forward, backward = parse(*docs), parse(*reversed(docs))
    assert forward == backward
    assert [p.key for p in forward.pods] == ["x/a", "x/b", "y/a"]
    assert [p.key for p in forward.policies] == ["a/z", "b/a", "b/b"]
    assert [n.name for n in forward.nodes] == ["n1", "n2"]
    assert [n.name for n in forward.namespaces] == ["a", "b", "x", "y"]


def test_every_problem_of_every_document_is_reported_at_once() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    bad_pod = pod(put("metadata.name", "Web"), put("spec.containers.0.ports.0.protocol", "tcp"))
    bad_policy = netpol(
        put("spec.policyTypes", ["Ingress", "egress"]),
        put("spec.ingress", [{"from": [{}], "ports": [{"port": 80, "endPort": 70}]}]),
    )
    assert problems(bad_pod, namespace(), deployment, bad_policy, {"kind": "Pod"}) == [
        f"t.yaml:doc 1: Pod shop/Web: metadata.name: invalid name 'Web': {SUBDOMAIN_HELP}",
        "t.yaml:doc 1: Pod shop/Web: spec.containers[0].ports[0].protocol: unsupported protocol "
        "'tcp': use one of TCP, UDP, SCTP",
        "t.yaml:doc 4: NetworkPolicy shop/np: spec.policyTypes[1]: unsupported policy type "
        "'egress': use Ingress or Egress",
        "t.yaml:doc 4: NetworkPolicy shop/np: spec.ingress[0].from[0]: must specify "
        "podSelector, namespaceSelector or ipBlock (to allow every peer, leave out the whole "
        "from/to list instead)",
        "t.yaml:doc 4: NetworkPolicy shop/np: spec.ingress[0].ports[0].endPort: endPort 70 must "
        "be >= port 80",
        "t.yaml:doc 5: apiVersion: is required (e.g. apiVersion: v1)",
    ]
