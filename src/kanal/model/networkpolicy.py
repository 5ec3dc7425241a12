"""`networking.k8s.io/v1` NetworkPolicy: validated as `ValidateNetworkPolicy`, defaulted as
`SetDefaults_NetworkPolicy`, so the engine receives final `policy_types` and never re-derives them.

Deliberate differences from the API server, each on the side of telling the user:
- an absent `spec.podSelector` is read as `{}` (every pod in the namespace) instead of rejected,
  because older manifests and hand-written fixtures omit it and the meaning is unambiguous;
- unknown fields are problems (kubectl's default `--validate=strict` does the same), because a
  misspelled `from` would leave a rule without peers, which means every peer;
- `ipBlock.cidr` with host bits set is accepted and normalized (`10.0.0.1/24` is `10.0.0.0/24`),
  as the API server did before its strict CIDR validation.
Absent and empty `from`/`to`/`ports` both mean "all" and both become empty tuples.
"""

from __future__ import annotations

from kanal.model.fields import (
    At,
    Raw,
    as_str,
    check_fields,
    get_int,
    get_int_or_str,
    get_list,
    get_mapping,
    items_of,
)
from kanal.model.meta import ObjectMeta, get_protocol, get_selector, parse_cidr
from kanal.model.objects import (
    EVERYTHING,
    Direction,
    IPBlock,
    IPNetwork,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)
from kanal.model.validate import port_name, port_number

_SPEC_FIELDS = ("podSelector", "policyTypes", "ingress", "egress")
_PEER_FIELDS = ("podSelector", "namespaceSelector", "ipBlock")
_IP_BLOCK_FIELDS = ("cidr", "except")
_PORT_FIELDS = ("protocol", "port", "endPort")
_PEERS_KEY = {Direction.INGRESS: "from", Direction.EGRESS: "to"}
_RULES_KEY = {Direction.INGRESS: "ingress", Direction.EGRESS: "egress"}


def parse_network_policy(raw: Raw, meta: ObjectMeta, at: At) -> NetworkPolicy:
    spec_at = at.field("spec")
    spec = get_mapping(raw, "spec", at, required=True) or {}
    check_fields(spec, _SPEC_FIELDS, spec_at)
    return NetworkPolicy(
        meta.namespace,
        meta.name,
        pod_selector=get_selector(spec, "podSelector", spec_at) or EVERYTHING,
        policy_types=_policy_types(spec, spec_at),
        ingress=_rules(spec, spec_at, direction=Direction.INGRESS),
        egress=_rules(spec, spec_at, direction=Direction.EGRESS),
    )


def _policy_types(spec: Raw, at: At) -> frozenset[Direction]:
    """Upstream defaulting: no policyTypes (absent or empty) means Ingress, plus Egress when
    the policy has egress rules; given policyTypes are kept as written, even if a direction
    then has rules that never apply."""
    items = get_list(spec, "policyTypes", at)
    if not items:
        has_egress = bool(spec.get("egress"))
        return frozenset([Direction.INGRESS, *([Direction.EGRESS] if has_egress else [])])
    types: set[Direction] = set()
    for index, item in enumerate(items):
        item_at = at.field("policyTypes").item(index)
        text = as_str(item, item_at)
        if text is None:
            continue
        try:
            direction = Direction(text)
        except ValueError:
            item_at.problem(f"unsupported policy type {text!r}: use Ingress or Egress")
            continue
        if direction in types:
            item_at.problem(f"{direction} is listed twice: remove one")
        types.add(direction)
    return frozenset(types)


def _rules(spec: Raw, at: At, *, direction: Direction) -> tuple[PolicyRule, ...]:
    key, peers_key = _RULES_KEY[direction], _PEERS_KEY[direction]
    rules: list[PolicyRule] = []
    for raw, rule_at in items_of(spec, key, at):
        check_fields(raw, (peers_key, "ports"), rule_at)
        peers = [_peer(p, p_at) for p, p_at in items_of(raw, peers_key, rule_at)]
        ports = [_port(p, p_at) for p, p_at in items_of(raw, "ports", rule_at)]
        rules.append(
            PolicyRule(
                tuple(p for p in peers if p is not None), tuple(p for p in ports if p is not None)
            )
        )
    return tuple(rules)


def _peer(raw: Raw, at: At) -> PolicyPeer | None:
    """ipBlock XOR (podSelector and/or namespaceSelector), as `ValidateNetworkPolicyPeer`."""
    check_fields(raw, _PEER_FIELDS, at)
    present = [key for key in _PEER_FIELDS if raw.get(key) is not None]
    if not present:
        at.problem(
            "must specify podSelector, namespaceSelector or ipBlock (to allow every peer, "
            "leave out the whole from/to list instead)"
        )
        return None
    if "ipBlock" in present and len(present) > 1:
        at.problem(
            "ipBlock cannot be combined with podSelector or namespaceSelector in one peer: "
            "make them two peers"
        )
    return PolicyPeer(
        pod_selector=get_selector(raw, "podSelector", at),
        namespace_selector=get_selector(raw, "namespaceSelector", at),
        ip_block=_ip_block(raw, at),
    )


def _ip_block(raw: Raw, at: At) -> IPBlock | None:
    block_at = at.field("ipBlock")
    block = get_mapping(raw, "ipBlock", at)
    if block is None:
        return None
    check_fields(block, _IP_BLOCK_FIELDS, block_at)
    value = block.get("cidr")
    if value is None:
        block_at.field("cidr").problem("is required (e.g. 10.0.0.0/8)")
    cidr = None if value is None else parse_cidr(value, block_at.field("cidr"))
    excepts: list[IPNetwork] = []
    except_at = block_at.field("except")
    for index, item in enumerate(get_list(block, "except", block_at) or []):
        network = parse_cidr(item, except_at.item(index))
        if network is not None and cidr is not None:
            _check_except(network, cidr, except_at.item(index))
            excepts.append(network)
    return None if cidr is None else IPBlock(cidr, tuple(excepts))


def _check_except(network: IPNetwork, cidr: IPNetwork, at: At) -> None:
    if network.version != cidr.version:
        at.problem(
            f"{network} is IPv{network.version} but cidr {cidr} is IPv{cidr.version}: "
            "an except must lie inside cidr"
        )
    elif not (network.subnet_of(cidr) and network.prefixlen > cidr.prefixlen):  # type: ignore[arg-type]
        at.problem(f"{network} must be a strict subset of cidr {cidr}: use a range inside it")


def _port(raw: Raw, at: At) -> PolicyPort | None:
    check_fields(raw, _PORT_FIELDS, at)
    protocol = get_protocol(raw, at)
    port = get_int_or_str(raw, "port", at)
    end_port = get_int(raw, "endPort", at)
    _check_port(port, at.field("port"))
    if end_port is not None:
        _check_end_port(end_port, port, at.field("endPort"))
    if protocol is None or (port is None and raw.get("port") is not None):
        return None
    return PolicyPort(protocol, port, end_port)


def _check_port(port: int | str | None, at: At) -> None:
    if isinstance(port, int):
        at.problems(port_number(port), prefix=f"port {port} ")
    elif isinstance(port, str) and port.isdigit():
        at.problem(
            f"{port!r} is a string, so it would name a port: write {port} without quotes for "
            "a port number"
        )
    elif isinstance(port, str):
        at.problems(port_name(port), prefix=f"invalid port name {port!r}: ")


def _check_end_port(end_port: int, port: int | str | None, at: At) -> None:
    at.problems(port_number(end_port), prefix=f"endPort {end_port} ")
    if port is None:
        at.problem("requires a numeric port: set port to the first port of the range")
    elif isinstance(port, str):
        at.problem(f"cannot be used with the named port {port!r}: use a numeric port")
    elif end_port < port:
        at.problem(f"endPort {end_port} must be >= port {port}")
