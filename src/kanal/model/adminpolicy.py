"""`policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy,
validated as their CRD schemas (sigs.k8s.io/network-policy-api, v0.1.x) do.

Choices where the CRD leaves room, each documented here once:
- `portRange` requires `start < end`: the API types document it ("the Start value must be less
  than End") although the v0.1.1 schema does not check it; a one-port range is a `portNumber`.
- `namedPort` must be a valid port name (IANA_SVC_NAME): an invalid one could never match a pod.
- `ports: []` is read as absent (every port), as Go implementations that test `len(ports) == 0`
  do; `AdminRule.ports` is None in both cases.
- a rule without `name` gets "", and the engine shows its index instead.
- unknown fields are problems, as for NetworkPolicy (a misspelled field can widen a rule).
"""

from __future__ import annotations

from kanal.model.fields import (
    At,
    Raw,
    as_str,
    check_fields,
    get_int,
    get_list,
    get_mapping,
    get_str,
    items_of,
)
from kanal.model.meta import ObjectMeta, get_protocol, get_selector, parse_cidr
from kanal.model.objects import (
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    Direction,
    IPNetwork,
    LabelSelector,
)
from kanal.model.validate import port_name, port_number

BASELINE_NAME = "default"
MIN_PRIORITY, MAX_PRIORITY = 0, 1000
MAX_RULES = 100
MAX_PEERS = 100
MAX_PORTS = 100
MAX_NETWORKS = 25
MAX_RULE_NAME = 100
MAX_CIDR_LENGTH = 43

_ANP_SPEC_FIELDS = ("priority", "subject", "ingress", "egress")
_SUBJECT_FIELDS = ("namespaces", "pods")
_PODS_FIELDS = ("namespaceSelector", "podSelector")
_INGRESS_PEER_FIELDS = ("namespaces", "pods")
_EGRESS_PEER_FIELDS = ("namespaces", "pods", "nodes", "networks")
_PORT_FIELDS = ("portNumber", "namedPort", "portRange")
_PEERS_KEY = {Direction.INGRESS: "from", Direction.EGRESS: "to"}
_RULES_KEY = {Direction.INGRESS: "ingress", Direction.EGRESS: "egress"}
_ALL_ACTIONS = frozenset(AdminAction)
_BASELINE_ACTIONS = frozenset({AdminAction.ALLOW, AdminAction.DENY})


def baseline_name(name: str) -> list[str]:
    """The name rule of BaselineAdminNetworkPolicy: the CRD allows only the singleton."""
    if name == BASELINE_NAME:
        return []
    return [f"must be {BASELINE_NAME!r}: a cluster has one BaselineAdminNetworkPolicy"]


def parse_admin_policy(raw: Raw, meta: ObjectMeta, at: At) -> AdminNetworkPolicy:
    return _parse(raw, meta, at, baseline=False)


def parse_baseline_policy(raw: Raw, meta: ObjectMeta, at: At) -> AdminNetworkPolicy:
    """The same shape as an AdminNetworkPolicy, without priority and without Pass."""
    return _parse(raw, meta, at, baseline=True)


def _parse(raw: Raw, meta: ObjectMeta, at: At, *, baseline: bool) -> AdminNetworkPolicy:
    spec_at = at.field("spec")
    spec = get_mapping(raw, "spec", at, required=True) or {}
    check_fields(spec, _ANP_SPEC_FIELDS, spec_at)
    if baseline and "priority" in spec:
        spec_at.field("priority").problem(
            "a BaselineAdminNetworkPolicy has no priority (it always comes last): remove it"
        )
    actions = _BASELINE_ACTIONS if baseline else _ALL_ACTIONS
    return AdminNetworkPolicy(
        meta.name,
        _subject(spec, spec_at) or AdminSubject(),
        priority=None if baseline else _priority(spec, spec_at),
        ingress=_rules(spec, spec_at, direction=Direction.INGRESS, actions=actions),
        egress=_rules(spec, spec_at, direction=Direction.EGRESS, actions=actions),
    )


def _priority(spec: Raw, at: At) -> int:
    priority = get_int(spec, "priority", at, required=True)
    if priority is None:
        return MIN_PRIORITY
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        at.field("priority").problem(
            f"priority {priority} must be between {MIN_PRIORITY} and {MAX_PRIORITY} "
            f"(policies with a lower number are evaluated first)"
        )
    return priority


def _exactly_one(raw: Raw, fields: tuple[str, ...], at: At) -> str | None:
    """The one field of `fields` that `raw` sets, as the CRD's min/maxProperties=1 require."""
    present = [key for key in fields if raw.get(key) is not None]
    if len(present) == 1:
        return present[0]
    choices = " or ".join(fields)
    if not present:
        at.problem(f"must set one of {choices}")
    else:
        at.problem(f"must set only one of {choices}, not {' and '.join(present)}")
    return None


def _subject(spec: Raw, at: At) -> AdminSubject | None:
    subject_at = at.field("subject")
    subject = get_mapping(spec, "subject", at, required=True)
    if subject is None:
        return None
    check_fields(subject, _SUBJECT_FIELDS, subject_at)
    match _exactly_one(subject, _SUBJECT_FIELDS, subject_at):
        case "namespaces":
            selector = get_selector(subject, "namespaces", subject_at)
            return None if selector is None else AdminSubject(selector)
        case "pods":
            pods = _namespaced_pods(subject, subject_at)
            return None if pods is None else AdminSubject(*pods)
    return None


def _namespaced_pods(raw: Raw, at: At) -> tuple[LabelSelector, LabelSelector] | None:
    """`pods: {namespaceSelector, podSelector}`: both are required (`{}` selects all)."""
    pods_at = at.field("pods")
    pods = get_mapping(raw, "pods", at)
    if pods is None:
        return None
    check_fields(pods, _PODS_FIELDS, pods_at)
    namespaces = get_selector(pods, "namespaceSelector", pods_at, required=True)
    selector = get_selector(pods, "podSelector", pods_at, required=True)
    if namespaces is None or selector is None:
        return None
    return namespaces, selector


def _rules(
    spec: Raw, at: At, *, direction: Direction, actions: frozenset[AdminAction]
) -> tuple[AdminRule, ...]:
    key = _RULES_KEY[direction]
    items = items_of(spec, key, at)
    if len(items) > MAX_RULES:
        at.field(key).problem(f"has {len(items)} rules: at most {MAX_RULES} are allowed")
    rules = [_rule(raw, rule_at, direction=direction, actions=actions) for raw, rule_at in items]
    return tuple(r for r in rules if r is not None)


def _rule(
    raw: Raw, at: At, *, direction: Direction, actions: frozenset[AdminAction]
) -> AdminRule | None:
    peers_key = _PEERS_KEY[direction]
    check_fields(raw, ("name", "action", peers_key, "ports"), at)
    name = get_str(raw, "name", at) or ""
    if len(name) > MAX_RULE_NAME:
        at.field("name").problem(
            f"must be no more than {MAX_RULE_NAME} characters (it has {len(name)})"
        )
    action = _action(raw, at, actions=actions)
    peers = _peers(raw, at, key=peers_key, egress=direction is Direction.EGRESS)
    ports = _ports(raw, at)
    if peers is not None and ports is not None:
        _check_named_ports_reach_pods(peers, ports, at)
    if action is None or peers is None:
        return None
    return AdminRule(name, action, peers, ports)


def _check_named_ports_reach_pods(
    peers: tuple[AdminPeer, ...], ports: tuple[AdminPort, ...], at: At
) -> None:
    """Upstream's CEL rule: named ports exist only on pods, so they cannot go with `networks`
    or `nodes` peers (the rule could then only ever match pods inside the CIDR)."""
    outside = any(p.networks or p.node_selector is not None for p in peers)
    if outside and any(isinstance(p.port, str) for p in ports):
        at.field("ports").problem(
            "a namedPort cannot be used with networks or nodes peers (they have no named "
            "ports): use portNumber or portRange, or split the rule"
        )


def _action(raw: Raw, at: At, *, actions: frozenset[AdminAction]) -> AdminAction | None:
    text = get_str(raw, "action", at, required=True)
    if text is None:
        return None
    allowed = " or ".join(a.value for a in AdminAction if a in actions)
    try:
        action = AdminAction(text)
    except ValueError:
        at.field("action").problem(f"unsupported action {text!r}: use {allowed}")
        return None
    if action not in actions:
        at.field("action").problem(
            f"{action} is not allowed in a BaselineAdminNetworkPolicy: use {allowed}"
        )
        return None
    return action


def _peers(raw: Raw, at: At, *, key: str, egress: bool) -> tuple[AdminPeer, ...] | None:
    """`from`/`to`: required, 1 to 100 peers (an admin rule never means "every peer")."""
    items = items_of(raw, key, at)
    if raw.get(key) is None:
        at.field(key).problem("is required: list at least one peer")
        return None
    if not items and isinstance(raw.get(key), list):
        at.field(key).problem("must list at least one peer")
    if len(items) > MAX_PEERS:
        at.field(key).problem(f"has {len(items)} peers: at most {MAX_PEERS} are allowed")
    peers = [_peer(peer, peer_at, egress=egress) for peer, peer_at in items]
    if None in peers or not peers:
        return None
    return tuple(p for p in peers if p is not None)


def _peer(raw: Raw, at: At, *, egress: bool) -> AdminPeer | None:
    """Exactly one of namespaces, pods, and for egress nodes or networks."""
    fields = _EGRESS_PEER_FIELDS if egress else _INGRESS_PEER_FIELDS
    for key in set(_EGRESS_PEER_FIELDS) - set(fields):
        if key in raw:
            at.field(key).problem("is only allowed in egress peers (to), not in ingress (from)")
    check_fields(raw, _EGRESS_PEER_FIELDS, at)
    match _exactly_one(raw, fields, at):
        case "namespaces":
            selector = get_selector(raw, "namespaces", at)
            return None if selector is None else AdminPeer(namespace_selector=selector)
        case "pods":
            pods = _namespaced_pods(raw, at)
            return None if pods is None else AdminPeer(pods[0], pods[1])
        case "nodes":
            selector = get_selector(raw, "nodes", at)
            return None if selector is None else AdminPeer(node_selector=selector)
        case "networks":
            networks = _networks(raw, at)
            return None if networks is None else AdminPeer(networks=networks)
    return None


def _networks(raw: Raw, at: At) -> tuple[IPNetwork, ...] | None:
    networks_at = at.field("networks")
    items = get_list(raw, "networks", at)
    if items is None:
        return None
    if not 1 <= len(items) <= MAX_NETWORKS:
        networks_at.problem(f"must list 1 to {MAX_NETWORKS} CIDRs, not {len(items)}")
    networks = [_network(item, networks_at.item(i)) for i, item in enumerate(items)]
    if None in networks:
        return None
    return tuple(n for n in networks if n is not None)


def _network(value: object, at: At) -> IPNetwork | None:
    text = as_str(value, at)
    if text is None:
        return None
    if len(text) > MAX_CIDR_LENGTH:
        at.problem(f"must be no more than {MAX_CIDR_LENGTH} characters")
        return None
    if (":" in text) == ("." in text):
        at.problem(
            f"{text!r} must be either an IPv4 or an IPv6 CIDR (IPv4 addresses embedded in IPv6 "
            "are not supported)"
        )
        return None
    return parse_cidr(text, at)


def _ports(raw: Raw, at: At) -> tuple[AdminPort, ...] | None:
    items = items_of(raw, "ports", at)
    if not items:
        return None
    if len(items) > MAX_PORTS:
        at.field("ports").problem(f"has {len(items)} ports: at most {MAX_PORTS} are allowed")
    ports = [_port(port, port_at) for port, port_at in items]
    return tuple(p for p in ports if p is not None)


def _port(raw: Raw, at: At) -> AdminPort | None:
    check_fields(raw, _PORT_FIELDS, at)
    match _exactly_one(raw, _PORT_FIELDS, at):
        case "portNumber":
            return _port_number(raw, at)
        case "namedPort":
            return _named_port(raw, at)
        case "portRange":
            return _port_range(raw, at)
    return None


def _port_number(raw: Raw, at: At) -> AdminPort | None:
    number_at = at.field("portNumber")
    number = get_mapping(raw, "portNumber", at)
    if number is None:
        return None
    check_fields(number, ("protocol", "port"), number_at)
    protocol = get_protocol(number, number_at)
    port = _port_value(number, "port", number_at)
    if protocol is None or port is None:
        return None
    return AdminPort(protocol, port)


def _named_port(raw: Raw, at: At) -> AdminPort | None:
    name = get_str(raw, "namedPort", at)
    if name is None:
        return None
    at.field("namedPort").problems(port_name(name), prefix=f"invalid port name {name!r}: ")
    return AdminPort(None, name)


def _port_range(raw: Raw, at: At) -> AdminPort | None:
    range_at = at.field("portRange")
    port_range = get_mapping(raw, "portRange", at)
    if port_range is None:
        return None
    check_fields(port_range, ("protocol", "start", "end"), range_at)
    protocol = get_protocol(port_range, range_at)
    start = _port_value(port_range, "start", range_at)
    end = _port_value(port_range, "end", range_at)
    if start is not None and end is not None and start >= end:
        range_at.field("end").problem(
            f"start {start} must be less than end {end} (for a single port use portNumber)"
        )
    if protocol is None or start is None or end is None:
        return None
    return AdminPort(protocol, start, end)


def _port_value(raw: Raw, key: str, at: At) -> int | None:
    port = get_int(raw, key, at, required=True)
    if port is not None and not at.field(key).problems(port_number(port), prefix=f"{key} {port} "):
        return None
    return port
