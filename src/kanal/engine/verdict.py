"""What the engine answers: a verdict per connection, with the decision chain per direction.

A chain is the list of steps that led to the decision, in evaluation order: an admin rule that
passed, the NetworkPolicy rule that allowed, the default deny of an isolated pod, "not isolated".
Its JSON form is the contract of `kanal check -o json` and of flow attribution.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from kanal.engine.compiled import Tier
from kanal.model.objects import Direction, IPAddress, Node, Pod, PolicyKey, Protocol


class Outcome(enum.StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"
    PASS = "Pass"
    DEFAULT_DENY = "DefaultDeny"
    """Isolated by NetworkPolicies in this direction and no rule admits the connection."""
    NOT_ISOLATED = "NotIsolated"
    """No NetworkPolicy isolates the pod in this direction and no admin rule decided."""
    NOT_A_POD = "NotAPod"
    """The endpoint on this side is outside the cluster: no policy applies to it here."""
    SELF = "Self"
    """A pod talking to itself: upstream's pods cannot block access to themselves."""
    OWN_NODE = "OwnNode"
    """To or from the node the pod runs on: upstream always allows it."""

    @property
    def allows(self) -> bool:
        return self in _ALLOWING


_ALLOWING = frozenset(
    {Outcome.ALLOW, Outcome.NOT_ISOLATED, Outcome.NOT_A_POD, Outcome.SELF, Outcome.OWN_NODE}
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a connection: a pod (with its group) or a plain address (maybe a node's)."""

    ip: IPAddress | None
    pod: Pod | None = None
    group: int | None = None
    node: Node | None = None

    def describe(self) -> str:
        if self.pod is not None:
            return self.pod.key
        return str(self.ip)


@dataclass(frozen=True, slots=True)
class Step:
    tier: Tier | None
    outcome: Outcome
    policy: PolicyKey | None = None
    rule_index: int | None = None
    rule_name: str = ""
    peer: str | None = None
    port: str | None = None
    isolating: tuple[PolicyKey, ...] = ()

    def rule_label(self) -> str:
        if self.rule_index is None:
            return ""
        return repr(self.rule_name) if self.rule_name else f"#{self.rule_index}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tier": self.tier.value if self.tier else None,
            "outcome": self.outcome.value,
        }
        if self.policy is not None:
            out["policy"] = self.policy
            out["rule"] = self.rule_index
            if self.rule_name:
                out["rule_name"] = self.rule_name
            out["peer"] = self.peer
            out["port"] = self.port
        if self.isolating:
            out["isolated_by"] = list(self.isolating)
        return out


@dataclass(frozen=True, slots=True)
class DirectionDecision:
    direction: Direction
    subject: str
    """The pod (or address) this direction is judged at: the source for egress, else the
    destination."""
    steps: tuple[Step, ...]

    @property
    def allowed(self) -> bool:
        return self.steps[-1].outcome.allows

    @property
    def deciding(self) -> Step:
        return self.steps[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "subject": self.subject,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    source: str
    destination: str
    port: int
    protocol: Protocol
    egress: DirectionDecision
    ingress: DirectionDecision
    warnings: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "from": self.source,
            "to": self.destination,
            "port": self.port,
            "protocol": self.protocol.value,
            "egress": self.egress.to_json(),
            "ingress": self.ingress.to_json(),
        }
