"""Hubble's JSON flows in and out of Kanal's records: `kanal flows import --format hubble` and
`kanal flows -o hubble`. Pure: lines in, records out, and back.

Hubble (Cilium) writes one JSON object per line (`hubble observe -o json`): a GetFlowsResponse
`{"flow": {...}, "node_name": ..., "time": ...}`, or a bare flow (its flow exporter), with the
field names of Cilium's flow.proto. A Kanal record is one direction's policy decision on one
connection, so a flow is read as:

```
flow.time (else time)               time (RFC 3339; nanoseconds are cut to microseconds)
flow.node_name (else node_name)     node
flow.verdict                        FORWARDED: allowed, DROPPED: denied. Every other verdict is
                                    no policy decision and is skipped, counted by reason:
                                    TRACED, TRANSLATED, REDIRECTED (trace points, NAT, proxy),
                                    AUDIT (audit mode: forwarded, though the policy would drop
                                    it: neither verdict would be true), ERROR, VERDICT_UNKNOWN
flow.traffic_direction              INGRESS / EGRESS (required)
flow.IP.source / .destination       the addresses
flow.l4.TCP|UDP|SCTP                protocol, source_port, destination_port; ICMPv4/ICMPv6: no
                                    ports
flow.source / .destination          namespace, pod_name, labels `k8s:key=value` (Cilium's own
                                    io.cilium.k8s.* and io.kubernetes.pod.namespace left out;
                                    `reserved:host` is the flow's node; other sources, like
                                    reserved:world or cidr:, are no pod labels)
flow.<direction>_allowed_by[0]      allowed: that policy's rule allowed (Allow)
flow.<direction>_denied_by[0]       denied: that policy's rule denied (Deny)
  .kind                             NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwide-
                                    NetworkPolicy: the NetworkPolicy tier; AdminNetworkPolicy,
                                    BaselineAdminNetworkPolicy: theirs (missing: NetworkPolicy)
  .namespace, .name                 the policy (no namespace: cluster-scoped)
  .labels `kanal:rule=N`,           the rule (Kanal's export writes them; Cilium names none)
          `kanal:rule-name=NAME`
no policy named                     allowed: not isolated; dropped for POLICY_DENIED or
                                    POLICY_DENY (flow.drop_reason_desc, else drop_reason 133
                                    or 181): default deny, without the isolating policies
                                    (Hubble does not name them)
```

Skipped as well, and counted: drops for any other reason (not a policy decision), replies
(`is_reply`: no new decision), events that are not a policy verdict or a drop
(`event_type.type` other than 1 and 5, e.g. 4 for trace points), and the other responses of a
`hubble observe` stream (`lost_events`, `node_status`...). A line that is not valid JSON, or a
field of the wrong type or value, is an error naming the file, the line and the field;
`read_flows` reads every line before returning, so the caller stores all or nothing.

`to_hubble` writes a record back in that shape: a policy verdict event (`event_type` 5) when
allowed, a drop (`event_type` 1, POLICY_DENIED for a default deny, else POLICY_DENY) when
denied, the deciding policy in `*_allowed_by` / `*_denied_by` with its rule in `kanal:` labels,
`kanal explain`'s sentence in `Summary`, and `kanal:node=NAME` on a node's endpoint. What Hubble
has no field for (groups, bytes and duration, a default deny's isolating policies other than in
the sentence) is not written.
"""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kanal.engine import Outcome, Tier
from kanal.errors import KanalError
from kanal.flows.records import Decision, FlowRecord, Peer, Source, iso_time
from kanal.model.objects import Direction, PolicyKey


class HubbleFormatError(KanalError):
    """A line of a Hubble flow file that cannot be read: names the file, line and field."""


@dataclass
class Imported:
    """What `read_flows` found: the records, and how many flows were skipped for what reason."""

    records: list[FlowRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class _FieldError(Exception):
    """A field's problem; `read_flows` adds the file and line."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"`{path}`: {problem}" if path else problem)


class _NotADecisionError(Exception):
    """A flow that is no policy decision, with the reason it is counted under."""


VERDICTS = {"FORWARDED": True, "DROPPED": False}
NUMBERED_VERDICTS = {0: "VERDICT_UNKNOWN", 1: "FORWARDED", 2: "DROPPED", 3: "ERROR", 4: "AUDIT",
                     5: "REDIRECTED", 6: "TRACED", 7: "TRANSLATED"}
DIRECTIONS = {"INGRESS": Direction.INGRESS, "EGRESS": Direction.EGRESS}
NUMBERED_DIRECTIONS = {1: "INGRESS", 2: "EGRESS"}
POLICY_DROPS = {"POLICY_DENIED": 133, "POLICY_DENY": 181}
NUMBERED_DROPS = {code: name for name, code in POLICY_DROPS.items()}
EVENT_DROP, EVENT_POLICY_VERDICT = 1, 5
TIERS = {"NetworkPolicy": Tier.NETWORK, "CiliumNetworkPolicy": Tier.NETWORK,
         "CiliumClusterwideNetworkPolicy": Tier.NETWORK, "AdminNetworkPolicy": Tier.ADMIN,
         "BaselineAdminNetworkPolicy": Tier.BASELINE}
PORTED = ("TCP", "UDP", "SCTP")
ICMP = {"ICMPv4": "ICMP", "ICMPv6": "ICMPv6"}
OTHER_RESPONSES = {
    "lost_events": "lost_events (Hubble says it lost flows: what is imported is not all)",
    "node_status": "node_status (not a flow)",
    "agent_event": "agent_event (not a flow)",
    "debug_event": "debug_event (not a flow)",
}
CILIUM_LABELS = ("io.cilium.k8s.", "io.kubernetes.pod.namespace")
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


# -- reading ---------------------------------------------------------------------------------


def read_flows(lines: Iterable[str], *, source: str) -> Imported:
    """Every flow of `lines` (named `source` in errors) as records; raises HubbleFormatError
    at the first bad line, before anything could be stored."""
    found = Imported()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            found.records.append(flow_record(_object(line)))
        except _NotADecisionError as skip:
            found.skipped[str(skip)] += 1
        except _FieldError as bad:
            raise HubbleFormatError(f"`{source}` line {number}: {bad}") from None
    return found


def _object(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line.strip())
    except json.JSONDecodeError as exc:
        raise _FieldError("", f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise _FieldError("", f"expected a JSON object, got {_kind(value)}")
    return value


def flow_record(response: Mapping[str, Any]) -> FlowRecord:
    """One Hubble response (or bare flow) as a record; raises _NotADecisionError (skip it) or
    _FieldError."""
    other = next((k for k in OTHER_RESPONSES if k in response), None)
    if other is not None and "flow" not in response:
        raise _NotADecisionError(OTHER_RESPONSES[other])
    flow = _mapping(response, "flow", "") if "flow" in response else response
    prefix = "flow." if "flow" in response else ""
    allowed = _verdict(flow, prefix)
    _require_decision_event(flow, prefix)
    if not allowed:
        _require_policy_drop(flow, prefix)
    direction = _direction(flow, prefix)
    node = _text(flow, "node_name", prefix) if "node_name" in flow else None
    node = node or (_text(response, "node_name", "") if "node_name" in response else None)
    if not node:
        raise _FieldError(f"{prefix}node_name", "missing: every record names the node that saw it")
    protocol, sport, dport = _l4(flow, prefix)
    ips = _mapping(flow, "IP", prefix) if "IP" in flow else {}
    src = _peer(flow, "source", ip=_ip(ips, "source", prefix), port=sport, node=node, at=prefix)
    dst = _peer(flow, "destination", ip=_ip(ips, "destination", prefix), port=dport, node=node,
                at=prefix)
    decision = _decision(flow, prefix, direction=direction, allowed=allowed)
    return FlowRecord(
        time=_time(flow, response, prefix), node=node, protocol=protocol, src=src, dst=dst,
        decision=decision, summary=_summary(flow, decision, allowed=allowed),
        source=Source.HUBBLE, src_group=_group(src), dst_group=_group(dst),
    )


def _verdict(flow: Mapping[str, Any], prefix: str) -> bool:
    verdict = _enum(flow, "verdict", prefix, NUMBERED_VERDICTS)
    if verdict is None:
        raise _FieldError(f"{prefix}verdict", "missing")
    if verdict not in NUMBERED_VERDICTS.values():
        raise _FieldError(f"{prefix}verdict", f"unknown verdict {verdict!r}")
    if verdict not in VERDICTS:
        raise _NotADecisionError(f"verdict {verdict} (not a policy decision)")
    if flow.get("is_reply") is True:
        raise _NotADecisionError("replies (no new decision)")
    return VERDICTS[verdict]


def _require_decision_event(flow: Mapping[str, Any], prefix: str) -> None:
    if "event_type" not in flow:
        return  # unknown: taken as a decision
    kind = _mapping(flow, "event_type", prefix).get("type", 0)
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise _FieldError(f"{prefix}event_type.type", f"expected a number, got {_kind(kind)}")
    if kind not in (EVENT_DROP, EVENT_POLICY_VERDICT):
        raise _NotADecisionError(f"event type {kind} (not a policy verdict or a drop)")


def _require_policy_drop(flow: Mapping[str, Any], prefix: str) -> None:
    """Before anything else is read: a drop for another reason (a bad checksum, no route...) is
    skipped whatever else it lacks."""
    if flow.get("egress_denied_by") or flow.get("ingress_denied_by"):
        return
    reason = _drop_reason(flow, prefix)
    if reason not in POLICY_DROPS:
        raise _NotADecisionError(f"drops for {reason} (not a policy decision)")


def _direction(flow: Mapping[str, Any], prefix: str) -> Direction:
    found = _enum(flow, "traffic_direction", prefix, NUMBERED_DIRECTIONS)
    if found is None or found == "TRAFFIC_DIRECTION_UNKNOWN":
        raise _FieldError(f"{prefix}traffic_direction",
                          "missing: a Kanal record is one direction's decision (INGRESS or EGRESS)")
    if found not in DIRECTIONS:
        raise _FieldError(f"{prefix}traffic_direction",
                          f"expected INGRESS or EGRESS, got {found!r}")
    return DIRECTIONS[found]


def _l4(flow: Mapping[str, Any], prefix: str) -> tuple[str, int | None, int | None]:
    l4 = _mapping(flow, "l4", prefix) if "l4" in flow else {}
    for name in PORTED:
        if name in l4:
            ports = _mapping(l4, name, f"{prefix}l4.")
            at = f"{prefix}l4.{name}."
            return name, _port(ports, "source_port", at), _port(ports, "destination_port", at)
    for name, protocol in ICMP.items():
        if name in l4:
            return protocol, None, None
    raise _FieldError(f"{prefix}l4", "expected one of TCP, UDP, SCTP, ICMPv4, ICMPv6")


def _port(ports: Mapping[str, Any], key: str, at: str) -> int | None:
    value = ports.get(key)
    if value is None or value == 0:  # protobuf leaves zero out: unknown
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise _FieldError(f"{at}{key}", f"expected a port number 1-65535, got {value!r}")
    return value


def _ip(ips: Mapping[str, Any], key: str, prefix: str) -> str:
    return _text(ips, key, f"{prefix}IP.") if key in ips else ""


def _peer(
    flow: Mapping[str, Any], key: str, *, ip: str, port: int | None, node: str, at: str
) -> Peer:
    endpoint = _mapping(flow, key, at) if key in flow else {}
    path = f"{at}{key}."
    pod = _text(endpoint, "pod_name", path) if "pod_name" in endpoint else ""
    namespace = _text(endpoint, "namespace", path) if "namespace" in endpoint else ""
    labels = _strings(endpoint, "labels", path)
    if pod:
        if not namespace:
            raise _FieldError(f"{path}namespace", f"missing for pod `{pod}`")
        return Peer(ip, port, namespace, pod, _pod_labels(labels, f"{path}labels"))
    if not ip:
        raise _FieldError(f"{at}IP.{key}", "missing: an endpoint that is no pod is its address")
    return Peer(ip, port, node=_node_of(labels, node))


def _pod_labels(labels: list[str], path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for label in labels:
        source, colon, pair = label.partition(":")
        if not colon:
            raise _FieldError(path, f"expected `source:key=value`, got {label!r}")
        key, _, value = pair.partition("=")
        if source == "k8s" and key and not key.startswith(CILIUM_LABELS):
            found[key] = value
    return dict(sorted(found.items()))


def _node_of(labels: list[str], node: str) -> str | None:
    """`kanal:node=NAME` (Kanal's export), `reserved:host` (the node that saw the flow)."""
    for label in labels:
        if label.startswith("kanal:node="):
            return label.removeprefix("kanal:node=")
    return node if "reserved:host" in labels else None


def _decision(
    flow: Mapping[str, Any], prefix: str, *, direction: Direction, allowed: bool
) -> Decision:
    side = direction.value.lower()
    key = f"{side}_allowed_by" if allowed else f"{side}_denied_by"
    policies = flow.get(key) or []
    if not isinstance(policies, list):
        raise _FieldError(f"{prefix}{key}", f"expected a list of policies, got {_kind(policies)}")
    if policies:
        return _policy_decision(policies[0], f"{prefix}{key}[0]", direction=direction,
                                outcome=Outcome.ALLOW if allowed else Outcome.DENY)
    if allowed:
        return Decision(direction, Outcome.NOT_ISOLATED)
    if _drop_reason(flow, prefix) not in POLICY_DROPS:  # denied by the other direction's policy
        raise _FieldError(f"{prefix}{key}", f"missing: the drop names no {side} policy, and "
                          "its reason is not POLICY_DENIED or POLICY_DENY")
    return Decision(direction, Outcome.DEFAULT_DENY, Tier.NETWORK)


def _drop_reason(flow: Mapping[str, Any], prefix: str) -> str:
    if "drop_reason_desc" in flow:
        return _text(flow, "drop_reason_desc", prefix)
    code = flow.get("drop_reason")
    if isinstance(code, int) and code in NUMBERED_DROPS:
        return NUMBERED_DROPS[code]
    return "an unknown reason" if code is None else f"reason {code}"


def _policy_decision(
    policy: Any, path: str, *, direction: Direction, outcome: Outcome
) -> Decision:
    if not isinstance(policy, dict):
        raise _FieldError(path, f"expected a policy object, got {_kind(policy)}")
    name = _text(policy, "name", f"{path}.") if "name" in policy else ""
    if not name:
        raise _FieldError(f"{path}.name", "missing")
    namespace = _text(policy, "namespace", f"{path}.") if "namespace" in policy else ""
    kind = _text(policy, "kind", f"{path}.") if "kind" in policy else "NetworkPolicy"
    if kind not in TIERS:
        raise _FieldError(f"{path}.kind",
                          f"unknown kind {kind!r}: expected one of {', '.join(TIERS)}")
    rule_index, rule_name = _rule(_strings(policy, "labels", f"{path}."), f"{path}.labels")
    return Decision(direction, outcome, TIERS[kind],
                    PolicyKey(f"{namespace}/{name}" if namespace else name),
                    rule_index, rule_name)


def _rule(labels: list[str], path: str) -> tuple[int | None, str]:
    index: int | None = None
    name = ""
    for label in labels:
        if label.startswith("kanal:rule="):
            text = label.removeprefix("kanal:rule=")
            if not text.isdigit():
                raise _FieldError(path, f"expected `kanal:rule=N`, a rule number, got {label!r}")
            index = int(text)
        elif label.startswith("kanal:rule-name="):
            name = label.removeprefix("kanal:rule-name=")
    return index, name


def _summary(flow: Mapping[str, Any], decision: Decision, *, allowed: bool) -> str:
    """What Hubble said, in Kanal's words (Hubble's own `Summary` describes the packet)."""
    verdict = "FORWARDED" if allowed else "DROPPED"
    reason = "" if allowed or "drop_reason_desc" not in flow else f", {flow['drop_reason_desc']}"
    return f"{decision.describe()} (Hubble: {verdict}{reason})"


def _time(flow: Mapping[str, Any], response: Mapping[str, Any], prefix: str) -> float:
    if "time" in flow:
        return _timestamp(_text(flow, "time", prefix), f"{prefix}time")
    if "time" in response:
        return _timestamp(_text(response, "time", ""), "time")
    raise _FieldError(f"{prefix}time", "missing")


def _timestamp(text: str, path: str) -> float:
    match = _TIME.fullmatch(text)
    if match is None:
        raise _FieldError(path, "expected an RFC 3339 time like 2024-05-01T12:00:00.123456789Z, "
                          f"got {text!r}")
    seconds, fraction, zone = match.groups()
    try:
        moment = datetime.datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    except ValueError as exc:
        raise _FieldError(path, f"{text!r} is no time: {exc}") from None
    micros = int((fraction or "").ljust(9, "0")[:6])
    return moment.timestamp() + micros / 1e6


def _group(peer: Peer) -> str:
    """Hubble does not know Kanal's policy groups: the namespace, the node or `world`."""
    if peer.pod is not None:
        return peer.namespace or ""
    return f"node {peer.node}" if peer.node is not None else "world"


# -- typed access ------------------------------------------------------------------------------


def _enum(flow: Mapping[str, Any], key: str, prefix: str, numbered: dict[int, str]) -> str | None:
    """An enum field: its name, or its number (protojson with UseEnumNumbers)."""
    value = flow.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return numbered.get(value, str(value))
    if not isinstance(value, str):
        raise _FieldError(f"{prefix}{key}", f"expected a name, got {_kind(value)}")
    return value


def _mapping(obj: Mapping[str, Any], key: str, prefix: str) -> dict[str, Any]:
    value = obj[key]
    if not isinstance(value, dict):
        raise _FieldError(f"{prefix}{key}", f"expected an object, got {_kind(value)}")
    return value


def _text(obj: Mapping[str, Any], key: str, prefix: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise _FieldError(f"{prefix}{key}", f"expected a string, got {_kind(value)}")
    if not value.isprintable():
        raise _FieldError(f"{prefix}{key}", f"control characters in {value!r}")
    return value


def _strings(obj: Mapping[str, Any], key: str, prefix: str) -> list[str]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _FieldError(f"{prefix}{key}", f"expected a list of strings, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


# -- writing -----------------------------------------------------------------------------------


def to_hubble(record: FlowRecord) -> dict[str, Any]:
    """The record as a GetFlowsResponse line of `hubble observe -o json`."""
    decision, time = record.decision, iso_time(record.time)
    flow: dict[str, Any] = {"time": time, "verdict": "FORWARDED" if decision.allowed else
                            "DROPPED"}
    if not decision.allowed:
        reason = "POLICY_DENIED" if decision.outcome is Outcome.DEFAULT_DENY else "POLICY_DENY"
        flow.update(drop_reason=POLICY_DROPS[reason], drop_reason_desc=reason)
    if record.src.ip or record.dst.ip:
        flow["IP"] = {"source": record.src.ip, "destination": record.dst.ip,
                      "ipVersion": "IPv6" if ":" in record.src.ip + record.dst.ip else "IPv4"}
    l4 = _l4_out(record)
    if l4 is not None:
        flow["l4"] = l4
    flow.update(source=_endpoint_out(record.src), destination=_endpoint_out(record.dst),
                Type="L3_L4", node_name=record.node)
    flow["event_type"] = ({"type": EVENT_POLICY_VERDICT} if decision.allowed else
                          {"type": EVENT_DROP, "sub_type": flow["drop_reason"]})
    flow["traffic_direction"] = decision.direction.value.upper()
    if decision.policy is not None:
        side = decision.direction.value.lower()
        key = f"{side}_allowed_by" if decision.allowed else f"{side}_denied_by"
        flow[key] = [_policy_out(decision)]
    flow.update(is_reply=False, Summary=record.summary)
    return {"flow": flow, "node_name": record.node, "time": time}


def _l4_out(record: FlowRecord) -> dict[str, Any] | None:
    if record.protocol in PORTED:
        ports = {key: port for key, port in (("source_port", record.src.port),
                                             ("destination_port", record.dst.port))
                 if port is not None}
        return {record.protocol: ports}
    name = next((n for n, p in ICMP.items() if p == record.protocol), None)
    return None if name is None else {name: {}}


def _endpoint_out(peer: Peer) -> dict[str, Any]:
    if peer.pod is not None:
        labels = [f"k8s:io.kubernetes.pod.namespace={peer.namespace}",
                  *(f"k8s:{k}={v}" for k, v in sorted(peer.labels.items()))]
        return {"namespace": peer.namespace, "labels": labels, "pod_name": peer.pod}
    if peer.node is not None:
        return {"labels": ["reserved:host", f"kanal:node={peer.node}"]}
    return {"labels": ["reserved:world"]}


def _policy_out(decision: Decision) -> dict[str, Any]:
    assert decision.policy is not None
    namespace, _, name = decision.policy.rpartition("/")
    kind = decision.tier.value if decision.tier is not None else "NetworkPolicy"
    labels = [f"k8s:io.cilium.k8s.policy.derived-from={kind}",
              f"k8s:io.cilium.k8s.policy.name={name}"]
    if namespace:
        labels.append(f"k8s:io.cilium.k8s.policy.namespace={namespace}")
    if decision.rule_index is not None:
        labels.append(f"kanal:rule={decision.rule_index}")
    if decision.rule_name:
        labels.append(f"kanal:rule-name={decision.rule_name}")
    out: dict[str, Any] = {"name": name}
    if namespace:
        out["namespace"] = namespace
    out.update(labels=labels, kind=kind)
    return out


__all__ = ["HubbleFormatError", "Imported", "flow_record", "read_flows", "to_hubble"]
