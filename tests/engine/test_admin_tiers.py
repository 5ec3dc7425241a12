"""AdminNetworkPolicy and BaselineAdminNetworkPolicy (issue 3): priority order, first match,
Allow/Deny/Pass against NetworkPolicies and the baseline, ports of all three forms, networks and
nodes peers, same-priority ordering and the decision chain, all from YAML manifests read by the
validating parser (`policy.networking.k8s.io/v1alpha1`).

The semantics are those of sigs.k8s.io/network-policy-api (apis/v1alpha1 types and their
documentation, quoted in `scenarios/admin/tiers.yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kanal.cli.analysis import explain_lines
from kanal.engine import PolicyEngine, Verdict
from kanal.errors import ManifestError
from kanal.model.parse import parse_documents

from .builders import (
    NOT_A_POD,
    NOT_ISOLATED,
    Case,
    Doc,
    anp,
    answer,
    banp,
    case,
    chain,
    cluster,
    labels,
    matrix_cell,
    namespace,
    netpol,
    node,
    node_ip,
    pod,
    serves,
)
from .classic import check_scenario, load_scenarios

ADMIN_SCENARIOS = load_scenarios(Path(__file__).parent / "scenarios" / "admin")


@pytest.mark.parametrize("scenario", ADMIN_SCENARIOS)
def test_admin_scenario_truth_tables(scenario: dict[str, Any]) -> None:
    check_scenario(scenario)


# -- one connection at a time, with its decision chain ---------------------------------------------

SUBJECT_X = "{namespaces: {matchLabels: {env: prod}}}"
FROM_DEV = "from: [{namespaces: {matchLabels: {env: dev}}}]"
FROM_ALL = "from: [{namespaces: {}}]"
FROM_WEB = "from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]"
TO_ALL = "to: [{namespaces: {}}]"
DEV = "namespaces env=dev"
ALL_NS = "namespaces {}"
WEB_PODS = "pods app=web in namespaces {}"
OUTSIDE = "192.0.2.10"
INFRA_IP = "192.168.0.10"


def rule(name: str, action: str, peers: str, ports: str = "") -> str:
    """An admin rule as a YAML flow map; `ports` is a flow list."""
    return f"{{name: {name}, action: {action}, {peers}" + (f", ports: {ports}}}" if ports else "}")


def admin(
    name: str,
    priority: int,
    *,
    ingress: tuple[str, ...] = (),
    egress: tuple[str, ...] = (),
    subject: str = SUBJECT_X,
) -> Doc:
    return anp(
        name,
        f"{{priority: {priority}, subject: {subject}, "
        f"ingress: [{', '.join(ingress)}], egress: [{', '.join(egress)}]}}",
    )


def baseline(
    *,
    ingress: tuple[str, ...] = (),
    egress: tuple[str, ...] = (),
    subject: str = "{namespaces: {}}",
) -> Doc:
    return banp(
        f"{{subject: {subject}, ingress: [{', '.join(ingress)}], egress: [{', '.join(egress)}]}}"
    )


def np_allow_web(key: str = "x/allow-web") -> Doc:
    return netpol(
        key,
        "{podSelector: {matchLabels: {app: db}}, "
        "ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}]}]}",
    )


NP_ALLOW_WEB = "[NetworkPolicy x/allow-web] Allow #0 (pods app=web in namespaces {}; any port)"


def world(*docs: Doc) -> PolicyEngine:
    """x (env=prod): db, web; y (env=dev): web, other; a node `infra-1` at INFRA_IP."""
    return cluster(
        namespace("x", labels(env="prod")),
        namespace("y", labels(env="dev")),
        node("infra-1", labels(role="infra"), node_ip(INFRA_IP)),
        pod("x/db", labels(app="db"), serves(80), serves(53, "UDP", name="dns")),
        pod("x/web", labels(app="web"), serves(5353, "UDP", name="dns")),
        pod("y/web", labels(app="web")),
        pod("y/other"),
        *docs,
    )


def step(tier_policy: str, action: str, rule_name: str, peer: str, port: str = "any port") -> str:
    return f"[{tier_policy}] {action} '{rule_name}' ({peer}; {port})"


ORDER = [
    case(
        "a lower priority number is evaluated first, whatever the names",
        [
            admin("a-deny", 10, ingress=(rule("deny-dev", "Deny", FROM_DEV),)),
            admin("z-allow", 5, ingress=(rule("allow-dev", "Allow", FROM_DEV),)),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=step("ANP z-allow", "Allow", "allow-dev", DEV),
    ),
    case(
        "the rules of one policy match in order, the first match deciding",
        [
            admin(
                "web-first",
                5,
                ingress=(rule("deny-web", "Deny", FROM_WEB), rule("allow-all", "Allow", FROM_ALL)),
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("ANP web-first", "Deny", "deny-web", WEB_PODS),
    ),
    case(
        "a peer the first rule misses falls to the next rule",
        [
            admin(
                "web-first",
                5,
                ingress=(rule("deny-web", "Deny", FROM_WEB), rule("allow-all", "Allow", FROM_ALL)),
            )
        ],
        "y/other -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=step("ANP web-first", "Allow", "allow-all", ALL_NS),
    ),
    case(
        "an unnamed rule is shown by its index",
        [admin("unnamed", 5, ingress=("{action: Deny, from: [{namespaces: {}}]}",))],
        "y/other -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=f"[ANP unnamed] Deny #0 ({ALL_NS}; any port)",
    ),
    case(
        "an ANP that selects neither end has no effect",
        [
            admin(
                "y-only",
                5,
                subject="{namespaces: {matchLabels: {env: dev}}}",
                ingress=(rule("deny-all", "Deny", FROM_ALL),),
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "ANP egress rules are judged at the source",
        [
            admin(
                "y-out",
                5,
                subject="{namespaces: {matchLabels: {env: dev}}}",
                egress=(
                    rule("deny-prod", "Deny", "to: [{namespaces: {matchLabels: {env: prod}}}]"),
                ),
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=step("ANP y-out", "Deny", "deny-prod", "namespaces env=prod"),
        ingress=NOT_ISOLATED,
    ),
    case(
        "an ANP subject of pods needs both its namespace and pod selectors",
        [
            admin(
                "db-only",
                5,
                subject="{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}",
                ingress=(rule("deny-all", "Deny", FROM_ALL),),
            )
        ],
        "y/web -> x/web 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
]

TIERS = [
    case(
        "an ANP Allow is final even against a NetworkPolicy default deny",
        [
            admin("allow-dev", 5, ingress=(rule("allow-dev", "Allow", FROM_DEV),)),
            netpol("x/deny-all", "podSelector: {}"),
        ],
        "y/other -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=step("ANP allow-dev", "Allow", "allow-dev", DEV),
    ),
    case(
        "an ANP Deny is final even against a NetworkPolicy that allows",
        [admin("deny-dev", 5, ingress=(rule("deny-dev", "Deny", FROM_DEV),)), np_allow_web()],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("ANP deny-dev", "Deny", "deny-dev", DEV),
    ),
    case(
        "when no ANP rule matches, NetworkPolicies decide as if there were no ANP",
        [
            admin(
                "deny-none",
                5,
                ingress=(rule("deny-w", "Deny", "from: [{namespaces: {matchLabels: {env: w}}}]"),),
            ),
            netpol("x/deny-all", "podSelector: {}"),
        ],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress="[NetworkPolicy] DefaultDeny (isolated by x/deny-all)",
    ),
    case(
        "Pass hands the decision to the NetworkPolicy tier, which allows",
        [admin("pass-dev", 5, ingress=(rule("pass-dev", "Pass", FROM_DEV),)), np_allow_web()],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=f"{step('ANP pass-dev', 'Pass', 'pass-dev', DEV)} → {NP_ALLOW_WEB}",
    ),
    case(
        "Pass hands the decision to the NetworkPolicy tier, whose default deny applies",
        [admin("pass-dev", 5, ingress=(rule("pass-dev", "Pass", FROM_DEV),)), np_allow_web()],
        "y/other -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=f"{step('ANP pass-dev', 'Pass', 'pass-dev', DEV)} → "
        "[NetworkPolicy] DefaultDeny (isolated by x/allow-web)",
    ),
    case(
        "Pass skips the remaining ANPs, even a Deny of a later priority",
        [
            admin("pass-dev", 1, ingress=(rule("pass-dev", "Pass", FROM_DEV),)),
            admin("deny-all", 2, ingress=(rule("deny-all", "Deny", FROM_ALL),)),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=f"{step('ANP pass-dev', 'Pass', 'pass-dev', DEV)} → {NOT_ISOLATED}",
    ),
    case(
        "Pass skips the remaining rules of its own policy",
        [
            admin(
                "pass-then-deny",
                1,
                ingress=(rule("pass-dev", "Pass", FROM_DEV), rule("deny-all", "Deny", FROM_ALL)),
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=f"{step('ANP pass-then-deny', 'Pass', 'pass-dev', DEV)} → {NOT_ISOLATED}",
    ),
    case(
        "Pass with no NetworkPolicy isolating the pod lets the BANP decide",
        [
            admin("pass-dev", 5, ingress=(rule("pass-dev", "Pass", FROM_DEV),)),
            baseline(ingress=(rule("deny-dev", "Deny", FROM_DEV),)),
        ],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=f"{step('ANP pass-dev', 'Pass', 'pass-dev', DEV)} → "
        f"{step('BANP default', 'Deny', 'deny-dev', DEV)}",
    ),
    case(
        "Pass to a NetworkPolicy that isolates the pod never reaches the BANP",
        [
            admin("pass-dev", 5, ingress=(rule("pass-dev", "Pass", FROM_DEV),)),
            np_allow_web(),
            baseline(ingress=(rule("deny-dev", "Deny", FROM_DEV),)),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=f"{step('ANP pass-dev', 'Pass', 'pass-dev', DEV)} → {NP_ALLOW_WEB}",
    ),
    case(
        "the BANP decides for a pod no NetworkPolicy isolates",
        [baseline(ingress=(rule("deny-dev", "Deny", FROM_DEV),))],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("BANP default", "Deny", "deny-dev", DEV),
    ),
    case(
        "the BANP never applies to a pod a NetworkPolicy isolates",
        [np_allow_web(), baseline(ingress=(rule("allow-dev", "Allow", FROM_DEV),))],
        "y/other -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress="[NetworkPolicy] DefaultDeny (isolated by x/allow-web)",
    ),
    case(
        "a BANP without a matching rule leaves the connection allowed",
        [
            baseline(
                ingress=(rule("deny-w", "Deny", "from: [{namespaces: {matchLabels: {env: w}}}]"),)
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "the BANP's rules match in order",
        [
            baseline(
                ingress=(rule("allow-web", "Allow", FROM_WEB), rule("deny-all", "Deny", FROM_ALL))
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=step("BANP default", "Allow", "allow-web", WEB_PODS),
    ),
    case(
        "a NetworkPolicy isolating only egress leaves ingress to the BANP",
        [
            netpol("x/db-egress", "{podSelector: {matchLabels: {app: db}}, policyTypes: [Egress]}"),
            baseline(ingress=(rule("deny-dev", "Deny", FROM_DEV),)),
        ],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("BANP default", "Deny", "deny-dev", DEV),
    ),
    case(
        "a BANP whose subject misses the pod has no effect on it",
        [
            baseline(
                subject="{namespaces: {matchLabels: {env: dev}}}",
                ingress=(rule("deny-all", "Deny", FROM_ALL),),
            )
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "an ANP Allow settles the connection before the BANP",
        [
            admin("allow-dev", 5, ingress=(rule("allow-dev", "Allow", FROM_DEV),)),
            baseline(ingress=(rule("deny-dev", "Deny", FROM_DEV),)),
        ],
        "y/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=step("ANP allow-dev", "Allow", "allow-dev", DEV),
    ),
]

DENY_PORTS = (
    "[{portNumber: {protocol: TCP, port: 80}},"
    " {portRange: {protocol: TCP, start: 8000, end: 8080}}, {namedPort: dns}]"
)


def deny_ports(*, egress: bool = False) -> Doc:
    if egress:
        return admin("deny-ports", 5, egress=(rule("deny-ports", "Deny", TO_ALL, DENY_PORTS),))
    return admin("deny-ports", 5, ingress=(rule("deny-ports", "Deny", FROM_ALL, DENY_PORTS),))


PORTS = [
    case(
        "a portNumber matches its port and protocol",
        [deny_ports()],
        "y/web -> x/db 80/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("ANP deny-ports", "Deny", "deny-ports", ALL_NS, "80/TCP"),
    ),
    case(
        "a portNumber does not match another protocol",
        [deny_ports()],
        "y/web -> x/db 80/UDP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "a portRange includes its end",
        [deny_ports()],
        "y/web -> x/db 8080/TCP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("ANP deny-ports", "Deny", "deny-ports", ALL_NS, "8000-8080/TCP"),
    ),
    case(
        "a portRange excludes the port after its end",
        [deny_ports()],
        "y/web -> x/db 8081/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "a namedPort resolves against the destination's container port, with its protocol",
        [deny_ports()],
        "y/web -> x/db 53/UDP",
        allowed=False,
        egress=NOT_ISOLATED,
        ingress=step("ANP deny-ports", "Deny", "deny-ports", ALL_NS, "dns/any"),
    ),
    case(
        "a namedPort does not match its number on another protocol",
        [deny_ports()],
        "y/web -> x/db 53/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "an egress namedPort resolves against the destination pod, not the source",
        [deny_ports(egress=True)],
        "x/web -> x/db 53/UDP",
        allowed=False,
        egress=step("ANP deny-ports", "Deny", "deny-ports", ALL_NS, "dns/any"),
        ingress=NOT_ISOLATED,
    ),
    case(
        "an egress namedPort never takes the source's number",
        [deny_ports(egress=True)],
        "x/web -> x/db 5353/UDP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
]

PEERS = [
    case(
        "a pods peer needs both its namespace and pod selectors",
        [
            admin(
                "deny-dev-web",
                5,
                ingress=(
                    rule(
                        "deny-dev-web",
                        "Deny",
                        "from: [{pods: {namespaceSelector: {matchLabels: {env: dev}},"
                        " podSelector: {matchLabels: {app: web}}}}]",
                    ),
                ),
            )
        ],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
    case(
        "ingress peers select pods only, never outside addresses",
        [admin("deny-all", 5, ingress=(rule("deny-all", "Deny", FROM_ALL),))],
        f"{OUTSIDE} -> x/db 80/TCP",
        allowed=True,
        egress=NOT_A_POD,
        ingress=NOT_ISOLATED,
    ),
    case(
        "a networks peer matches an outside address",
        [
            admin(
                "deny-doc-net",
                5,
                egress=(rule("deny-doc-net", "Deny", "to: [{networks: [192.0.2.0/24]}]"),),
            )
        ],
        f"x/web -> {OUTSIDE} 443/TCP",
        allowed=False,
        egress=step("ANP deny-doc-net", "Deny", "deny-doc-net", "networks 192.0.2.0/24"),
        ingress=NOT_A_POD,
    ),
    case(
        "a networks peer matches pod addresses too",
        [
            admin(
                "deny-pod-net",
                5,
                egress=(rule("deny-pod-net", "Deny", "to: [{networks: [10.0.0.0/24]}]"),),
            )
        ],
        "x/web -> x/db 80/TCP",
        allowed=False,
        egress=step("ANP deny-pod-net", "Deny", "deny-pod-net", "networks 10.0.0.0/24"),
        ingress=NOT_ISOLATED,
    ),
    case(
        "a networks peer matches IPv6 addresses",
        [
            admin(
                "deny-v6",
                5,
                egress=(rule("deny-v6", "Deny", "to: [{networks: ['2001:db8::/32']}]"),),
            )
        ],
        "x/web -> 2001:db8::1 443/TCP",
        allowed=False,
        egress=step("ANP deny-v6", "Deny", "deny-v6", "networks 2001:db8::/32"),
        ingress=NOT_A_POD,
    ),
    case(
        "a nodes peer matches a node's address",
        [
            admin(
                "deny-infra",
                5,
                egress=(rule("deny-infra", "Deny", "to: [{nodes: {matchLabels: {role: infra}}}]"),),
            )
        ],
        f"x/web -> {INFRA_IP} 10250/TCP",
        allowed=False,
        egress=step("ANP deny-infra", "Deny", "deny-infra", "nodes role=infra"),
        ingress=NOT_A_POD,
    ),
    case(
        "a nodes peer does not match a node its selector misses",
        [
            admin(
                "deny-gpu",
                5,
                egress=(rule("deny-gpu", "Deny", "to: [{nodes: {matchLabels: {role: gpu}}}]"),),
            )
        ],
        f"x/web -> {INFRA_IP} 10250/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_A_POD,
    ),
    case(
        "a nodes peer does not match an address no node has",
        [admin("deny-nodes", 5, egress=(rule("deny-nodes", "Deny", "to: [{nodes: {}}]"),))],
        "x/web -> 192.168.0.99 10250/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_A_POD,
    ),
    case(
        "a nodes peer never matches a pod",
        [admin("deny-nodes", 5, egress=(rule("deny-nodes", "Deny", "to: [{nodes: {}}]"),))],
        "x/web -> x/db 80/TCP",
        allowed=True,
        egress=NOT_ISOLATED,
        ingress=NOT_ISOLATED,
    ),
]


@pytest.mark.parametrize("case", [*ORDER, *TIERS, *PORTS, *PEERS])
def test_admin_rule(case: Case) -> None:
    engine = world(*case.docs)
    assert answer(engine, case.flow) == case.expected
    assert matrix_cell(engine, case.flow) in (None, case.allowed)


# -- same priority, and the chain as users see it --------------------------------------------------

SAME_PRIORITY_WARNING = (
    "AdminNetworkPolicies `a-deny`, `b-allow` share priority 5: upstream leaves their order "
    "undefined; kanal evaluates them by name"
)


def same_priority_pair() -> list[Doc]:
    return [
        admin("b-allow", 5, ingress=(rule("allow-dev", "Allow", FROM_DEV),)),
        admin("a-deny", 5, ingress=(rule("deny-dev", "Deny", FROM_DEV),)),
    ]


def test_anps_sharing_a_priority_are_reported_as_a_warning() -> None:
    engine = world(*same_priority_pair(), admin("c-other", 6))
    assert engine.warnings() == [SAME_PRIORITY_WARNING]
    assert engine.explain("y/web", "x/db", 80).warnings == (SAME_PRIORITY_WARNING,)


def test_distinct_priorities_give_no_warning() -> None:
    engine = world(admin("a-deny", 5), admin("b-allow", 6))
    assert engine.warnings() == []


@pytest.mark.parametrize("reverse", [False, True], ids=["b first in the files", "a first"])
def test_anps_sharing_a_priority_are_evaluated_by_name(reverse: bool) -> None:
    docs = same_priority_pair()
    engine = world(*(reversed(docs) if reverse else docs))
    verdict = engine.explain("y/web", "x/db", 80)
    assert chain(verdict.ingress) == step("ANP a-deny", "Deny", "deny-dev", DEV)


def test_the_parser_notes_anps_sharing_a_priority() -> None:
    m = parse_documents([("doc 1", same_priority_pair()[0]), ("doc 2", same_priority_pair()[1])])
    assert [n for n in m.notes if "share priority" in n] == [
        "AdminNetworkPolicies a-deny, b-allow share priority 5: their order is undefined "
        "upstream, kanal evaluates them by name; give each its own"
    ]


def pass_then_allow() -> Verdict:
    engine = world(
        admin("pass-dev", 5, ingress=(rule("pass-dev", "Pass", FROM_DEV),)), np_allow_web()
    )
    return engine.explain("y/web", "x/db", 80)


def test_explain_walks_through_the_pass_and_the_networkpolicy_that_allowed() -> None:
    assert explain_lines(pass_then_allow()) == [
        "y/web -> x/db on 80/TCP: ALLOWED",
        "egress at y/web:",
        "  not isolated for egress: allowed",
        "ingress at x/db:",
        "  [ANP pass-dev] rule 'pass-dev' passes from namespaces env=dev on any port; "
        "the next tiers decide",
        "  [NetworkPolicy x/allow-web] rule #0 allows from pods app=web in namespaces {} "
        "on any port",
    ]


def test_the_json_chain_names_tier_policy_rule_and_action_of_each_step() -> None:
    assert pass_then_allow().to_json()["ingress"] == {
        "allowed": True,
        "subject": "x/db",
        "steps": [
            {
                "tier": "AdminNetworkPolicy",
                "outcome": "Pass",
                "policy": "pass-dev",
                "rule": 0,
                "rule_name": "pass-dev",
                "peer": DEV,
                "port": "any port",
            },
            {
                "tier": "NetworkPolicy",
                "outcome": "Allow",
                "policy": "x/allow-web",
                "rule": 0,
                "peer": WEB_PODS,
                "port": "any port",
            },
        ],
    }


# -- validation with a semantic reason -------------------------------------------------------------


@pytest.mark.parametrize(
    "peer", ["{networks: [192.0.2.0/24]}", "{nodes: {}}"], ids=["networks", "nodes"]
)
def test_a_named_port_cannot_go_with_networks_or_nodes_peers(peer: str) -> None:
    """network-policy-api apis/v1alpha1, AdminNetworkPolicyEgressRule (experimental channel):
    "networks/nodes peer cannot be set with namedPorts since there are no namedPorts for
    networks/nodes"; such a rule could only ever match pods inside the CIDR."""
    bad = admin(
        "named-outside", 5, egress=(rule("r", "Deny", f"to: [{peer}]", "[{namedPort: dns}]"),)
    )
    with pytest.raises(ManifestError, match="namedPort"):
        world(bad)
