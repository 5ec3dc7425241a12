"""One case per rule of NetworkPolicy semantics, each on the smallest cluster that shows it, each
checking the verdict and the explanation: which policy, rule, peer and port decided in each
direction, or the default deny with the isolating policies, or "not isolated", or "not a pod".

The rules are those of the Kubernetes documentation ("Network Policies") and API reference
(`NetworkPolicySpec`, `NetworkPolicyPeer`, `NetworkPolicyPort`); where upstream leaves a choice
open (address family, which of several allowing rules to name), the case id says which one
kanal makes.
"""

from __future__ import annotations

import pytest

from kanal.engine import Outcome, PolicyEngine
from kanal.engine.matrix import compute_matrix
from kanal.errors import NotFoundError
from kanal.model.objects import Direction, Protocol

from .builders import (
    NOT_A_POD,
    NOT_ISOLATED,
    Case,
    Doc,
    Tweak,
    answer,
    case,
    chain,
    cluster,
    ips,
    labels,
    matrix_cell,
    namespace,
    netpol,
    no_ip,
    node,
    node_ip,
    on_node,
    pod,
    serves,
)

OUTSIDE = "192.0.2.10"


def deny(*policies: str) -> str:
    return f"[NetworkPolicy] DefaultDeny (isolated by {', '.join(policies)})"


def allow(policy: str, rule: int, peer: str, port: str = "any port") -> str:
    return f"[NetworkPolicy {policy}] Allow #{rule} ({peer}; {port})"


def db(key: str = "x/db", *tweaks: Tweak) -> Doc:
    return pod(key, labels(app="db"), serves(80), serves(5432, name="pg"), *tweaks)


def web(key: str = "x/web", *tweaks: Tweak) -> Doc:
    return pod(key, labels(app="web"), *tweaks)


def db_ingress(key: str, *rules: str) -> Doc:
    """A policy of x/db's namespace selecting it, with these ingress rules (YAML flow maps)."""
    return netpol(
        key, f"{{podSelector: {{matchLabels: {{app: db}}}}, ingress: [{', '.join(rules)}]}}"
    )


def web_egress(key: str, *rules: str) -> Doc:
    spec = "{podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [%s]}"
    return netpol(key, spec % ", ".join(rules))


FROM_WEB = "{from: [{podSelector: {matchLabels: {app: web}}}]}"
WEB_IN_X = "pods app=web in namespace x"


SELECTION = [
    case(
        "a pod selected by no policy is not isolated in either direction",
        [db(), web()],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "an empty podSelector selects every pod of the policy's namespace",
        [db(), web("y/web"), netpol("x/deny", "podSelector: {}")],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/deny"),
    ),
    case(
        "a policy's podSelector selects pods of its own namespace only",
        [db("y/db"), web(), netpol("x/deny", "podSelector: {matchLabels: {app: db}}")],
        "x/web -> y/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "a podSelector matching no pod isolates nothing",
        [db(), web(), netpol("x/deny-none", "podSelector: {matchLabels: {app: nothing}}")],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "the default deny names every policy isolating the pod, by name",
        [
            db(),
            web(),
            netpol("x/a-deny", "podSelector: {}"),
            db_ingress("x/b-narrow", "{ports: [{port: 5432}]}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/a-deny", "x/b-narrow"),
    ),
    case(
        "a policy with policyTypes Egress and no rules denies its pods' egress",
        [db(), web(), netpol("x/egress-only", "{podSelector: {}, policyTypes: [Egress]}")],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=deny("x/egress-only"),
        ingress=NOT_ISOLATED,
    ),
    case(
        "a policy with policyTypes Egress does not isolate its pods for ingress",
        [db(), web("y/web"), netpol("x/egress-only", "{podSelector: {}, policyTypes: [Egress]}")],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "without policyTypes a policy with egress rules isolates for ingress too",
        [
            db(),
            web(),
            netpol("x/egress-rules", "{podSelector: {matchLabels: {app: db}}, egress: [{}]}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/egress-rules"),
    ),
]

PEERS = [
    case(
        "a podSelector peer admits matching pods of the policy's namespace",
        [db(), web(), db_ingress("x/allow-web", FROM_WEB)],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/allow-web", 0, WEB_IN_X),
    ),
    case(
        "an absent namespaceSelector means the policy's own namespace",
        [db(), web("y/web"), db_ingress("x/allow-web", FROM_WEB)],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/allow-web"),
    ),
    case(
        "a namespaceSelector alone admits every pod of the matching namespaces",
        [
            db(),
            web("y/web"),
            namespace("y", labels(team="blue")),
            db_ingress(
                "x/allow-blue", "{from: [{namespaceSelector: {matchLabels: {team: blue}}}]}"
            ),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/allow-blue", 0, "pods in namespaces team=blue"),
    ),
    case(
        "an empty namespaceSelector admits pods of every namespace",
        [db(), pod("z/any"), db_ingress("x/allow-all-ns", "{from: [{namespaceSelector: {}}]}")],
        "z/any -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/allow-all-ns", 0, "pods in namespaces {}"),
    ),
    case(
        "namespaceSelector and podSelector in one peer must both match",
        [
            db(),
            pod("y/other"),
            namespace("y", labels(team="blue")),
            db_ingress(
                "x/blue-web",
                "{from: [{namespaceSelector: {matchLabels: {team: blue}},"
                " podSelector: {matchLabels: {app: web}}}]}",
            ),
        ],
        "y/other -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/blue-web"),
    ),
    case(
        "a pod matching both selectors of one peer is admitted",
        [
            db(),
            web("y/web"),
            namespace("y", labels(team="blue")),
            db_ingress(
                "x/blue-web",
                "{from: [{namespaceSelector: {matchLabels: {team: blue}},"
                " podSelector: {matchLabels: {app: web}}}]}",
            ),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/blue-web", 0, "pods app=web in namespaces team=blue"),
    ),
    case(
        "two peers of one rule are alternatives, and the matching one is named",
        [
            db(),
            web("y/web"),
            db_ingress(
                "x/two-peers",
                "{from: [{podSelector: {matchLabels: {app: web}}},"
                " {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}",
            ),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/two-peers", 0, "pods in namespaces kubernetes.io/metadata.name=y"),
    ),
    case(
        "an undeclared namespace still carries its automatic name label",
        [
            db(),
            pod("q/any"),
            db_ingress(
                "x/by-name",
                "{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: q}}}]}",
            ),
        ],
        "q/any -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/by-name", 0, "pods in namespaces kubernetes.io/metadata.name=q"),
    ),
    case(
        "NotIn matches pods that do not carry the key at all",
        [
            db(),
            pod("q/any", labels(tier="be")),
            db_ingress(
                "x/not-fe",
                "{from: [{namespaceSelector: {},"
                " podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}}]}",
            ),
        ],
        "q/any -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/not-fe", 0, "pods app notin (web) in namespaces {}"),
    ),
    case(
        "matchLabels and matchExpressions of one selector must all hold",
        [
            db(),
            web(),
            db_ingress(
                "x/labelled",
                "{from: [{podSelector: {matchLabels: {app: web},"
                " matchExpressions: [{key: tier, operator: Exists}]}}]}",
            ),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/labelled"),
    ),
]

EXTERNAL = [
    case(
        "a rule without from matches every peer including external IPs",
        [db(), db_ingress("x/any-peer-80", "{ports: [{port: 80}]}")],
        f"{OUTSIDE} -> x/db 80/TCP",
        allowed=True,
        egress=NOT_A_POD,
        ingress=allow("x/any-peer-80", 0, "any peer", "80/TCP"),
    ),
    case(
        "selectors never match an address outside the cluster",
        [db(), db_ingress("x/all-ns", "{from: [{namespaceSelector: {}}]}")],
        f"{OUTSIDE} -> x/db 80/TCP",
        allowed=False,
        egress=NOT_A_POD,
        ingress=deny("x/all-ns"),
    ),
    case(
        "ipBlock matches external addresses",
        [
            db(),
            db_ingress(
                "x/doc-net", "{from: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]}"
            ),
        ],
        f"{OUTSIDE} -> x/db 80/TCP",
        allowed=True,
        egress=NOT_A_POD,
        ingress=allow("x/doc-net", 0, "ipBlock 192.0.2.0/24 except 192.0.2.128/25"),
    ),
    case(
        "an address inside an except is not matched",
        [
            db(),
            db_ingress(
                "x/doc-net", "{from: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]}"
            ),
        ],
        "192.0.2.200 -> x/db 80/TCP",
        allowed=False,
        egress=NOT_A_POD,
        ingress=deny("x/doc-net"),
    ),
    case(
        "an external destination is judged by the source's egress alone",
        [db(), web(), web_egress("x/to-doc-net", "{to: [{ipBlock: {cidr: 192.0.2.0/24}}]}")],
        f"x/web -> {OUTSIDE} 443/TCP",
        allowed=True,
        egress=allow("x/to-doc-net", 0, "ipBlock 192.0.2.0/24"),
        ingress=NOT_A_POD,
    ),
    case(
        "ipBlock matches pod IPs",
        [db(), web(), db_ingress("x/pods-net", "{from: [{ipBlock: {cidr: 10.0.0.0/24}}]}")],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/pods-net", 0, "ipBlock 10.0.0.0/24"),
    ),
    case(
        "an except excludes a pod by its address",
        [
            db(),
            web("x/web", ips("10.0.0.9")),
            db_ingress(
                "x/pods-net", "{from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.8/29]}}]}"
            ),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/pods-net"),
    ),
    case(
        "a pod without an IP never matches an ipBlock",
        [
            db(),
            web("x/web", no_ip),
            db_ingress("x/all-v4", "{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/all-v4"),
    ),
    case(
        "a pod without an IP still matches selectors",
        [db(), web("x/web", no_ip), db_ingress("x/allow-web", FROM_WEB)],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/allow-web", 0, WEB_IN_X),
    ),
]

FAMILIES = [
    case(
        "IPv4 is preferred when both ends are dual-stack, so an IPv6 block misses",
        [
            db("x/db", ips("10.0.0.1", "fd00::1")),
            web("x/web", ips("10.0.0.2", "fd00::2")),
            db_ingress("x/v6", "{from: [{ipBlock: {cidr: 'fd00::/64'}}]}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/v6"),
    ),
    case(
        "IPv4 is preferred when both ends are dual-stack, so an IPv4 block matches",
        [
            db("x/db", ips("10.0.0.1", "fd00::1")),
            web("x/web", ips("10.0.0.2", "fd00::2")),
            db_ingress("x/v4", "{from: [{ipBlock: {cidr: 10.0.0.0/24}}]}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/v4", 0, "ipBlock 10.0.0.0/24"),
    ),
    case(
        "IPv6 is used when it is the only family both ends have",
        [
            db("x/db", ips("fd00::1")),
            web("x/web", ips("10.0.0.2", "fd00::2")),
            db_ingress("x/v6", "{from: [{ipBlock: {cidr: 'fd00::/64'}}]}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/v6", 0, "ipBlock fd00::/64"),
    ),
    case(
        "a pod's address given as the source means that pod, with that address",
        [
            db("x/db", ips("10.0.0.1", "fd00::1")),
            web("x/web", ips("10.0.0.2", "fd00::2")),
            db_ingress("x/v6", "{from: [{ipBlock: {cidr: 'fd00::/64'}}]}"),
        ],
        "fd00::2 -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/v6", 0, "ipBlock fd00::/64"),
    ),
]

PORTS = [
    case(
        "a rule without ports matches every port of every protocol",
        [db(), web(), db_ingress("x/all-ports", FROM_WEB)],
        "x/web -> x/db 9999/SCTP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/all-ports", 0, WEB_IN_X),
    ),
    case(
        "a port without protocol means TCP",
        [db(), web(), db_ingress("x/port-80", "{ports: [{port: 80}]}")],
        "x/web -> x/db 80/UDP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/port-80"),
    ),
    case(
        "a protocol without port matches every port of that protocol",
        [db(), web(), db_ingress("x/udp", "{ports: [{protocol: UDP}]}")],
        "x/web -> x/db 5353/UDP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/udp", 0, "any peer", "any port/UDP"),
    ),
    case(
        "endPort is inclusive",
        [db(), web(), db_ingress("x/range", "{ports: [{port: 8000, endPort: 8080}]}")],
        "x/web -> x/db 8080/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/range", 0, "any peer", "8000-8080/TCP"),
    ),
    case(
        "a port past endPort is not matched",
        [db(), web(), db_ingress("x/range", "{ports: [{port: 8000, endPort: 8080}]}")],
        "x/web -> x/db 8081/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/range"),
    ),
    case(
        "the ports of one rule are alternatives, and the matching one is named",
        [db(), web(), db_ingress("x/two-ports", "{ports: [{port: 5432}, {port: 80}]}")],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/two-ports", 0, "any peer", "80/TCP"),
    ),
    case(
        "a named ingress port resolves against the destination's container ports",
        [db(), web(), db_ingress("x/pg", "{ports: [{port: pg}]}")],
        "x/web -> x/db 5432/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/pg", 0, "any peer", "pg/TCP"),
    ),
    case(
        "a named port means nothing on a destination that declares another number for it",
        [db(), web("x/web", serves(80, name="pg")), db_ingress("x/pg", "{ports: [{port: pg}]}")],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/pg"),
    ),
    case(
        "a named egress port resolves against the destination pod, not the source",
        [
            db(),
            web("x/web", serves(9999, name="pg")),
            web_egress("x/to-pg", "{ports: [{port: pg}]}"),
        ],
        "x/web -> x/db 5432/TCP",
        allowed=True,
        egress=allow("x/to-pg", 0, "any peer", "pg/TCP"),
        ingress=NOT_ISOLATED,
    ),
    case(
        "a named egress port never takes the source's number",
        [
            db(),
            web("x/web", serves(9999, name="pg")),
            web_egress("x/to-pg", "{ports: [{port: pg}]}"),
        ],
        "x/web -> x/db 9999/TCP",
        allowed=False,
        egress=deny("x/to-pg"),
        ingress=NOT_ISOLATED,
    ),
    case(
        "a named egress port never matches an external destination",
        [db(), web(), web_egress("x/to-pg", "{ports: [{port: pg}]}")],
        f"x/web -> {OUTSIDE} 5432/TCP",
        allowed=False,
        egress=deny("x/to-pg"),
        ingress=NOT_A_POD,
    ),
    case(
        "a named port resolves by name and protocol, TCP when the rule gives none",
        [
            pod("x/dns", serves(53, "UDP", name="dns")),
            web(),
            netpol("x/dns-tcp", "{podSelector: {}, ingress: [{ports: [{port: dns}]}]}"),
        ],
        "x/web -> x/dns 53/UDP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=deny("x/dns-tcp"),
    ),
    case(
        "a named port with its protocol matches that container port",
        [
            pod("x/dns", serves(53, "UDP", name="dns")),
            web(),
            netpol(
                "x/dns-udp", "{podSelector: {}, ingress: [{ports: [{port: dns, protocol: UDP}]}]}"
            ),
        ],
        "x/web -> x/dns 53/UDP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/dns-udp", 0, "any peer", "dns/UDP"),
    ),
]

COMBINING = [
    case(
        "egress and ingress must both allow, the ingress side denying here",
        [
            db(),
            web(),
            web_egress("x/web-out", "{to: [{podSelector: {}}]}"),
            netpol("x/deny", "podSelector: {matchLabels: {app: db}}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=allow("x/web-out", 0, "pods {} in namespace x"),
        ingress=deny("x/deny"),
    ),
    case(
        "egress and ingress must both allow, the egress side denying here",
        [db(), web(), web_egress("x/web-nowhere"), db_ingress("x/allow-web", FROM_WEB)],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=deny("x/web-nowhere"),
        ingress=allow("x/allow-web", 0, WEB_IN_X),
    ),
    case(
        "policies are additive, one admitting rule outweighs any default deny",
        [db(), web(), netpol("x/deny", "podSelector: {}"), db_ingress("x/allow-web", FROM_WEB)],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/allow-web", 0, WEB_IN_X),
    ),
    case(
        "when several rules admit, the first policy by name and its first admitting rule are named",
        [
            db(),
            web(),
            db_ingress("x/b-web", FROM_WEB),
            db_ingress("x/a-any", "{ports: [{port: 5432}]}", "{}"),
        ],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=allow("x/a-any", 1, "any peer"),
    ),
]


@pytest.mark.parametrize("case", [*SELECTION, *PEERS, *EXTERNAL, *FAMILIES, *PORTS, *COMBINING])
def test_semantic_rule(case: Case) -> None:
    engine = cluster(*case.docs)
    assert answer(engine, case.flow) == case.expected
    assert matrix_cell(engine, case.flow) in (None, case.allowed)


def test_egress_is_judged_at_the_source_and_ingress_at_the_destination() -> None:
    engine = cluster(db(), web())
    verdict = engine.explain("x/web", "x/db", 80)
    assert (verdict.egress.direction, verdict.egress.subject) == (Direction.EGRESS, "x/web")
    assert (verdict.ingress.direction, verdict.ingress.subject) == (Direction.INGRESS, "x/db")


def test_an_external_source_is_named_by_its_address_and_is_not_a_pod() -> None:
    verdict = cluster(db()).explain(OUTSIDE, "x/db", 80)
    assert (verdict.source, verdict.egress.subject) == (OUTSIDE, OUTSIDE)
    assert verdict.egress.deciding.outcome is Outcome.NOT_A_POD


def test_an_unknown_pod_is_a_user_error_naming_it() -> None:
    with pytest.raises(NotFoundError, match="`x/nope`"):
        cluster(db()).explain("x/nope", "x/db", 80)


# -- the documented exceptions ---------------------------------------------------------------------
#
# Kubernetes documentation, "Network Policies": the entities a pod can talk to are "1. Other pods
# that are allowed (exception: a pod cannot block access to itself) [...] 3. IP blocks
# (exception: traffic to and from the node where a Pod is running is always allowed, regardless
# of the IP address of the Pod or the node)". Only the verdict is asserted: how the explanation
# should name these exceptions is the engine's to decide.

NODE_IP, OTHER_NODE_IP = "192.168.0.10", "192.168.0.11"
DENY_BOTH_WAYS = "{podSelector: {}, policyTypes: [Ingress, Egress]}"


def isolated_db_on_a_node() -> PolicyEngine:
    return cluster(
        db("x/db", on_node("node-1")),
        node("node-1", node_ip(NODE_IP)),
        node("node-2", node_ip(OTHER_NODE_IP)),
        netpol("x/deny-all", DENY_BOTH_WAYS),
    )


def test_a_pod_cannot_block_access_to_itself() -> None:
    engine = isolated_db_on_a_node()
    assert engine.explain("x/db", "x/db", 80).allowed
    assert compute_matrix(engine, port=80, protocol=Protocol.TCP).allowed[0, 0]


def test_traffic_from_the_node_where_the_pod_runs_is_always_allowed() -> None:
    assert isolated_db_on_a_node().explain(NODE_IP, "x/db", 80).allowed


def test_traffic_to_the_node_where_the_pod_runs_is_always_allowed() -> None:
    assert isolated_db_on_a_node().explain("x/db", NODE_IP, 10250).allowed


def test_traffic_from_another_node_is_judged_by_the_policies() -> None:
    verdict = isolated_db_on_a_node().explain(OTHER_NODE_IP, "x/db", 80)
    assert (verdict.allowed, chain(verdict.ingress)) == (False, deny("x/deny-all"))
