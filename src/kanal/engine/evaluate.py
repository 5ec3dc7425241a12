"""Judge one connection in one direction through the tiers, keeping every step.

The order is upstream's:

```
AdminNetworkPolicy tier   ANPs by ascending priority (ties: by name), rules in order,
                          first match decides; Allow/Deny are final, Pass skips to NetworkPolicy
NetworkPolicy tier        isolated (some policy selects the pod for this direction)?
                          any rule of any selecting policy admits -> Allow, else DefaultDeny;
                          not isolated -> fall through (which rule is named: see below)
Baseline tier             BANP rules in order, first match decides (Allow/Deny)
                          nothing matched -> NotIsolated (allowed)
```

Egress is judged at the source, ingress at the destination; the caller combines them. A side that
is not a pod is `NotAPod` (nothing of ours applies there). Before any tier, traffic upstream
says no policy can block is allowed: a pod to itself (`Self`), and traffic between a pod and
the node it runs on (`OwnNode`).

Every NetworkPolicy rule allows, so the verdict does not depend on their order, but the rule
that is *named* does, and it must be the one the kernel meets first (flow records carry the
kernel's rule). The renderer dispatches a NEW packet on its protocol and port before it walks
any NetworkPolicy rule (`kanal.render.network`), so it meets the rules that name ports first:
the rule named is the first, in policy and rule order, among the rules with ports that admit
the connection; failing that, the first among the rules without ports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from kanal.engine.compiled import (
    Action,
    CompiledPeer,
    CompiledPolicy,
    CompiledPort,
    CompiledRule,
    Tier,
)
from kanal.engine.selectors import EndpointSelector
from kanal.engine.verdict import DirectionDecision, Endpoint, Outcome, Step
from kanal.model.objects import Direction, Pod, Protocol


@dataclass(frozen=True, slots=True)
class Chain:
    """The policies that apply to one pod group in one direction, in evaluation order."""

    admin: tuple[CompiledPolicy, ...]
    network: tuple[CompiledPolicy, ...]
    baseline: CompiledPolicy | None


class ChainSource(TypingProtocol):
    def chain(self, group: int, direction: Direction) -> Chain: ...

    def selector_matches(self, selector: EndpointSelector, group: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Connection:
    source: Endpoint
    destination: Endpoint
    port: int
    protocol: Protocol


def _peer_matches(source: ChainSource, peer: CompiledPeer, endpoint: Endpoint) -> bool:
    if peer.selector is not None:
        return endpoint.group is not None and source.selector_matches(peer.selector, endpoint.group)
    if peer.node_selector is not None:
        return endpoint.node is not None and peer.node_selector.matches(endpoint.node.labels)
    ip = endpoint.ip
    return ip is not None and any(r.contains(ip) for r in peer.ranges)


def match_rule(
    source: ChainSource, rule: CompiledRule, peer: Endpoint, conn: Connection
) -> tuple[CompiledPeer | None, CompiledPort | None] | None:
    """The peer and port entries of `rule` that admit `peer` on the connection's port, or None.
    (None inside the pair: the rule has no peers / no ports, so every one matches.)"""
    # Plain loops, not next(generator): this runs once per rule of every chain on every verdict.
    matched_port: CompiledPort | None = None
    if rule.ports is not None:
        dst: Pod | None = conn.destination.pod
        for port in rule.ports:
            if port.matches(conn.port, conn.protocol, dst):
                matched_port = port
                break
        else:
            return None
    matched_peer: CompiledPeer | None = None
    if rule.peers is not None:
        for candidate in rule.peers:
            if _peer_matches(source, candidate, peer):
                matched_peer = candidate
                break
        else:
            return None
    return matched_peer, matched_port


def _step(
    policy: CompiledPolicy,
    rule: CompiledRule,
    match: tuple[CompiledPeer | None, CompiledPort | None],
) -> Step:
    peer, port = match
    return Step(
        tier=policy.tier,
        outcome=Outcome(rule.action.value),
        policy=policy.key,
        rule_index=rule.index,
        rule_name=rule.name,
        peer=peer.text if peer is not None else "any peer",
        port=port.describe() if port is not None else "any port",
    )


def _first_match(
    source: ChainSource,
    policies: Sequence[CompiledPolicy],
    direction: Direction,
    peer: Endpoint,
    conn: Connection,
) -> Step | None:
    ingress = direction is Direction.INGRESS
    for policy in policies:
        for rule in policy.ingress if ingress else policy.egress:
            found = match_rule(source, rule, peer, conn)
            if found is not None:
                return _step(policy, rule, found)
    return None


def _network_match(
    source: ChainSource,
    policies: Sequence[CompiledPolicy],
    direction: Direction,
    peer: Endpoint,
    conn: Connection,
) -> Step | None:
    """The NetworkPolicy rule that admits the connection, rules with ports first."""
    any_port: Step | None = None
    for policy in policies:
        for rule in policy.rules(direction):
            if rule.ports is None and any_port is not None:
                continue
            found = match_rule(source, rule, peer, conn)
            if found is None:
                continue
            if rule.ports is not None:
                return _step(policy, rule, found)
            any_port = _step(policy, rule, found)
    return any_port


def decide(source: ChainSource, direction: Direction, conn: Connection) -> DirectionDecision:
    subject, peer = (
        (conn.source, conn.destination)
        if direction is Direction.EGRESS
        else (conn.destination, conn.source)
    )
    if subject.pod is None:
        return DirectionDecision(direction, subject.describe(), (Step(None, Outcome.NOT_A_POD),))
    exempt = _exemption(subject, peer)
    if exempt is not None:
        return DirectionDecision(direction, subject.describe(), (Step(None, exempt),))
    assert subject.group is not None, "a pod endpoint always has a group"
    chain = source.chain(subject.group, direction)
    return DirectionDecision(
        direction, subject.describe(), _steps(source, chain, direction, peer, conn)
    )


def _exemption(subject: Endpoint, peer: Endpoint) -> Outcome | None:
    """Traffic no policy can block, as the NetworkPolicy documentation says: "a pod cannot block
    access to itself", and "traffic to and from the node where a Pod is running is always
    allowed, regardless of the IP address of the Pod or the node"."""
    pod = subject.pod
    assert pod is not None
    if peer.pod is not None and peer.pod.key == pod.key:
        return Outcome.SELF
    if peer.node is not None and pod.node_name is not None and peer.node.name == pod.node_name:
        return Outcome.OWN_NODE
    return None


def _steps(
    source: ChainSource, chain: Chain, direction: Direction, peer: Endpoint, conn: Connection
) -> tuple[Step, ...]:
    steps: list[Step] = []
    admin = _first_match(source, chain.admin, direction, peer, conn)
    if admin is not None:
        steps.append(admin)
        if admin.outcome is not Outcome.PASS:
            return tuple(steps)
    if chain.network:
        allowed = _network_match(source, chain.network, direction, peer, conn)
        steps.append(
            allowed
            or Step(
                Tier.NETWORK,
                Outcome.DEFAULT_DENY,
                isolating=tuple(p.key for p in chain.network),
            )
        )
        return tuple(steps)
    if chain.baseline is not None:
        baseline = _first_match(source, (chain.baseline,), direction, peer, conn)
        if baseline is not None:
            steps.append(baseline)
            return tuple(steps)
    steps.append(Step(None, Outcome.NOT_ISOLATED))
    return tuple(steps)


__all__ = [
    "Action", "Chain", "ChainSource", "Connection", "decide", "match_rule",
]
