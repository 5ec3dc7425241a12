"""Flow records: one direction's decision on one connection, with pod names and the rule.

A connection between two pods is judged twice, egress at the source's node and ingress at the
destination's (see `kanal.render.ruleset`), and each judgement that the kernel logs is one
record, like Hubble's observation points: an allowed connection usually gives two records (one
per direction), a connection denied at egress gives one. A record's `verdict` is that
direction's.

`-o json` (`FlowRecord.to_json`) is one object per record:

```
{"time": "2025-01-02T03:04:05.678901Z", "node": "n1", "verdict": "denied",
 "direction": "ingress", "protocol": "TCP",
 "src": {"namespace": "y", "pod": "client-a", "labels": {"app": "client"}, "ip": "10.244.1.3",
         "port": 40512},
 "dst": {"namespace": "x", "pod": "web", "labels": {...}, "ip": "10.244.2.2", "port": 80},
 exactly one of:
 "policy": {"tier": "NetworkPolicy", "namespace": "x", "name": "web", "rule": 0,
            "rule_name": "", "action": "Allow"}            the rule that decided
 "default_deny": {"tier": "NetworkPolicy",
                  "isolated_by": [{"namespace": "x", "name": "web"}]}   no rule admitted it
 "not_isolated": true                                     no policy isolates this direction
 "summary": "<the sentence `kanal explain` prints for this step>",
 "source": "nflog" | "conntrack" | "hubble" (imported),  "log_id": "k:3f0c…" (nflog only),
 "src_group": "...", "dst_group": "...",
 and once the connection has ended: "end": "...", "duration_s": 1.25, "bytes": 1432,
 "packets": 8}
```

An external endpoint has `ip` and `port` only (a node's address adds `"node": NAME`).
A cluster-scoped admin policy has `"namespace": null`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kanal.engine import Outcome, Tier
from kanal.model.objects import Direction, PolicyKey


class Verdict(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"


class Source(enum.StrEnum):
    NFLOG = "nflog"
    """The kernel logged the rule that decided (renderer's log rules)."""
    CONNTRACK = "conntrack"
    """No rule of ours logged the connection (no policy applies on that side): conntrack saw it
    and the engine says why it was allowed."""
    HUBBLE = "hubble"
    """Imported from Hubble's JSON flows (`kanal flows import`, `kanal.flows.hubble`)."""


@dataclass(frozen=True, slots=True)
class Peer:
    """One end of a flow: a pod (`namespace`, `pod`, `labels`) or an address."""

    ip: str
    port: int | None = None
    namespace: str | None = None
    pod: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    node: str | None = None

    def describe(self) -> str:
        """`ns/pod` for a pod, the address otherwise: as `kanal explain` names endpoints."""
        if self.pod is not None:
            return f"{self.namespace}/{self.pod}"
        return self.ip

    def with_port(self) -> str:
        return self.describe() if self.port is None else f"{self.describe()}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pod is not None:
            out.update(namespace=self.namespace, pod=self.pod, labels=dict(self.labels))
        if self.node is not None:
            out["node"] = self.node
        out.update(ip=self.ip, port=self.port)
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    """What decided one direction, as the renderer's log table (and the engine's Step) say it."""

    direction: Direction
    outcome: Outcome
    tier: Tier | None = None
    policy: PolicyKey | None = None
    rule_index: int | None = None
    rule_name: str = ""
    isolating: tuple[PolicyKey, ...] = ()
    fail_closed: bool = False
    log_id: str | None = None
    allowed: bool = field(init=False, repr=False, compare=False)
    """`outcome.allows and not fail_closed`, computed once: every record asks it several
    times on its way to the store (and an enum's hash is Python code)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", self.outcome.allows and not self.fail_closed)

    @property
    def verdict(self) -> Verdict:
        return Verdict.ALLOWED if self.allowed else Verdict.DENIED

    def rule_label(self) -> str:
        """`rule #0` / `rule 'name'` of a policy rule, `default deny` or `not isolated`."""
        if self.outcome is Outcome.DEFAULT_DENY:
            return "default deny"
        if self.rule_index is None:
            return _OUTCOME_LABEL.get(self.outcome, self.outcome.value)
        return f"rule {self.rule_name!r}" if self.rule_name else f"rule #{self.rule_index}"

    def describe(self) -> str:
        """Short: `[NetworkPolicy x/web] rule #0 Allow`, `default deny (isolated by x/web)`."""
        if self.outcome is Outcome.DEFAULT_DENY:
            if not self.isolating:  # imported: Hubble does not say which policies isolate
                return "default deny"
            return f"default deny (isolated by {', '.join(self.isolating)})"
        if self.policy is None:
            return self.rule_label()
        closed = " (fail closed)" if self.fail_closed else ""
        tier = self.tier.short if self.tier else "policy"
        rule = "" if self.rule_index is None else f" {self.rule_label()}"  # None: imported
        return f"[{tier} {self.policy}]{rule} {self.outcome.value}{closed}"

    def to_json(self) -> dict[str, Any]:
        """The decision's part of a record: `policy`, `default_deny` or `not_isolated`."""
        if self.outcome is Outcome.DEFAULT_DENY:
            return {"default_deny": {
                "tier": self.tier.value if self.tier else Tier.NETWORK.value,
                "isolated_by": [policy_ref(p) for p in self.isolating],
            }}
        if self.policy is not None:
            policy = {
                "tier": self.tier.value if self.tier else None,
                **policy_ref(self.policy),
                "rule": self.rule_index,
                "rule_name": self.rule_name,
                "action": self.outcome.value,
            }
            if self.fail_closed:
                policy["fail_closed"] = True
            return {"policy": policy}
        if self.outcome is Outcome.NOT_ISOLATED:
            return {"not_isolated": True}
        return {"exempt": self.outcome.value}


_OUTCOME_LABEL = {
    Outcome.NOT_ISOLATED: "not isolated",
    Outcome.NOT_A_POD: "not a pod",
    Outcome.SELF: "self",
    Outcome.OWN_NODE: "own node",
}


def policy_ref(key: str) -> dict[str, str | None]:
    """`ns/name` -> {"namespace": ns, "name": name}; a cluster-scoped name has namespace None."""
    namespace, _, name = key.rpartition("/")
    return {"namespace": namespace or None, "name": name}


@dataclass(frozen=True, slots=True)
class Completion:
    """What conntrack says when a connection ends: traffic from first to last packet."""

    end: float
    duration: float
    bytes: int
    packets: int


@dataclass(frozen=True, slots=True)
class FlowRecord:
    time: float
    node: str
    protocol: str
    src: Peer
    dst: Peer
    decision: Decision
    summary: str = ""
    source: Source = Source.NFLOG
    src_group: str = ""
    dst_group: str = ""
    completion: Completion | None = None
    id: int | None = None

    @property
    def direction(self) -> Direction:
        return self.decision.direction

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    def completed(self, completion: Completion) -> FlowRecord:
        return replace(self, completion=completion)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": iso_time(self.time),
            "node": self.node,
            "verdict": self.verdict.value,
            "direction": self.direction.value.lower(),
            "protocol": self.protocol,
            "src": self.src.to_json(),
            "dst": self.dst.to_json(),
            **self.decision.to_json(),
            "summary": self.summary,
            "source": self.source.value,
        }
        if self.decision.log_id is not None:
            out["log_id"] = self.decision.log_id
        out.update(src_group=self.src_group, dst_group=self.dst_group)
        if self.completion is not None:
            done = self.completion
            out.update(end=iso_time(done.end), duration_s=round(done.duration, 6),
                       bytes=done.bytes, packets=done.packets)
        return out


@dataclass(frozen=True, slots=True)
class RuleRef:
    """One rule some policy has, whether or not it was ever hit."""

    tier: str
    policy: str
    direction: str
    rule_index: int
    rule_name: str
    action: str


@dataclass(frozen=True, slots=True)
class CounterValue:
    """One cumulative counter of the store: name, labels, value."""

    name: str
    labels: dict[str, str]
    value: int


def iso_time(seconds: float) -> str:
    """RFC 3339 UTC with microseconds, as Hubble prints flow times."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = [
    "Completion",
    "CounterValue",
    "Decision",
    "FlowRecord",
    "Peer",
    "RuleRef",
    "Source",
    "Verdict",
    "iso_time",
    "policy_ref",
]
