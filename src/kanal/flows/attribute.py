"""Kernel events -> flow records, through the engine. Pure: no sockets, no clock, no store.

```
LogEvent (prefix, packet) ──log table──► Decision (what the kernel's rule was)
                          ──engine──────► pods of both addresses, explain's deciding step of
                                          that direction (agrees? its sentence), groups
                                          └──► FlowRecord
CtEvent DESTROY ──────────────────────► Completion (bytes, packets, first to last packet)
CtEvent NEW, no log event seen ───────► FlowRecord per local, unlogged direction (the engine
                                         says why nothing of ours judged it: not isolated)
```

The decision is always the kernel's (the log id of the rule that fired); the engine names the
pods and words the decision with `kanal explain`'s own sentence, and says whether it agrees.
They can only disagree while the table in the kernel and the manifests the collector loaded
differ (a reload in flight): such a record says so in its summary and is counted in
`disagreements`.

What is cached, for one engine state (a new `Attributor` per reload): everything about a flow
except its time and source port, per (log id, addresses, destination port, protocol); and the
engine's deciding step per kind of connection it cannot tell apart (`kanal.flows.steps`: per
pod groups, not per pod pair), so a pair never seen costs a sentence, not a walk over the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kanal.engine import Endpoint, PolicyEngine, Step
from kanal.engine.wording import step_sentence
from kanal.flows.conntrack import CtEvent, idle_timeout
from kanal.flows.nflog import LogEvent
from kanal.flows.packets import FiveTuple, protocol_name
from kanal.flows.records import Completion, Decision, FlowRecord, Peer, Source
from kanal.flows.steps import DecidingSteps
from kanal.model.objects import Direction, IPAddress, PolicyKey, Protocol
from kanal.render.ir import LogEntry
from kanal.render.names import LOG_PREFIX, LogId

ENGINE_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
CACHE_LIMIT = 100_000


class UnknownLogIdError(LookupError):
    """A `k:` prefix that is not in the log table: the kernel runs a table the collector has not
    loaded yet (reload), or a different one (report it)."""


@dataclass(frozen=True, slots=True)
class _Template:
    """A record minus its time and source port."""

    src: Peer
    dst: Peer
    decision: Decision
    summary: str
    src_group: str
    dst_group: str
    agrees: bool


def decision_of(entry: LogEntry) -> Decision:
    return Decision(
        direction=entry.direction,
        outcome=entry.outcome,
        tier=entry.tier,
        policy=entry.policy,
        rule_index=entry.rule_index,
        rule_name=entry.rule_name,
        isolating=entry.isolating,
        fail_closed=entry.fail_closed,
        log_id=entry.id,
    )


def decision_of_step(step: Step, direction: Direction) -> Decision:
    return Decision(
        direction=direction,
        outcome=step.outcome,
        tier=step.tier,
        policy=step.policy,
        rule_index=step.rule_index,
        rule_name=step.rule_name,
        isolating=step.isolating,
    )


def same_decision(decision: Decision, step: Step) -> bool:
    """Does the engine's deciding `step` name the same rule (or default) as `decision`?"""
    if decision.fail_closed:
        return step.policy == decision.policy and step.rule_index == decision.rule_index
    return (step.outcome, step.tier, step.policy, step.rule_index, step.isolating) == (
        decision.outcome, decision.tier, decision.policy, decision.rule_index, decision.isolating
    )


class Attributor:
    """Attribution for one engine state and one node's log table.

    `disagreements` counts records whose kernel decision and engine decision differ.
    """

    def __init__(
        self, engine: PolicyEngine, log_table: Mapping[LogId, LogEntry], *, node: str
    ) -> None:
        self.engine = engine
        self.log_table = log_table
        self.node = node
        self.disagreements = 0
        self.steps = DecidingSteps(engine)
        self._templates: dict[tuple[object, ...], _Template] = {}
        self._decisions: dict[str, Decision] = {}
        self._groups: dict[object, str] = {}
        self._peers: dict[object, Peer] = {}

    # -- NFLOG ---------------------------------------------------------------------------------

    @staticmethod
    def is_ours(event: LogEvent) -> bool:
        return event.prefix.startswith(LOG_PREFIX)

    def on_log(self, event: LogEvent) -> FlowRecord | None:
        """The record of one logged packet; None when it is not ours or carries no IP header.
        Raises UnknownLogIdError for a `k:` id missing from the log table."""
        packet = event.packet
        if packet is None or not self.is_ours(event):
            return None
        key = (event.prefix, packet.src, packet.dst, packet.dport, packet.protocol)
        template = self._templates.get(key)
        if template is None:
            template = self._template(self._decision(event.prefix), packet)
            self._remember(key, template)
        if not template.agrees:
            self.disagreements += 1
        return self._record(template, packet, time=event.time, source=Source.NFLOG)

    def _decision(self, prefix: str) -> Decision:
        """The log entry's decision, one object per id (the store counts per object)."""
        found = self._decisions.get(prefix)
        if found is None:
            entry = self.log_table.get(LogId(prefix))
            if entry is None:
                raise UnknownLogIdError(prefix)
            found = self._decisions[prefix] = decision_of(entry)
        return found

    def _remember(self, key: tuple[object, ...], template: _Template) -> None:
        if len(self._templates) >= CACHE_LIMIT:
            self._templates.clear()
        self._templates[key] = template

    def _record(
        self, template: _Template, packet: FiveTuple, *, time: float, source: Source
    ) -> FlowRecord:
        src = template.src
        return FlowRecord(
            time=time,
            node=self.node,
            protocol=protocol_name(packet.protocol),
            src=Peer(src.ip, packet.sport, src.namespace, src.pod, src.labels, src.node),
            dst=template.dst,
            decision=template.decision,
            summary=template.summary,
            source=source,
            src_group=template.src_group,
            dst_group=template.dst_group,
        )

    def _template(self, decision: Decision, packet: FiveTuple) -> _Template:
        src, dst = self.steps.endpoint(packet.src), self.steps.endpoint(packet.dst)
        step = self._step(decision.direction, src, dst, packet)
        agrees = step is None or same_decision(decision, step)
        sentence = None if step is None else _sentence(step, decision.direction, src, dst, packet)
        return _Template(
            src=self._peer(src, None),
            dst=self._peer(dst, packet.dport),
            decision=decision,
            summary=_summary(decision, sentence, agrees=agrees),
            src_group=self.group(src, None if step is None else step.peer),
            dst_group=self.group(dst, None if step is None else step.peer),
            agrees=agrees,
        )

    def _step(
        self, direction: Direction, src: Endpoint, dst: Endpoint, packet: FiveTuple
    ) -> Step | None:
        """The engine's deciding step for the packet's connection in `direction` (None without
        ports: the engine judges only TCP, UDP and SCTP ports)."""
        protocol = ENGINE_PROTOCOLS.get(protocol_name(packet.protocol))
        if protocol is None or packet.dport is None:
            return None
        return self.steps.deciding(direction, src, dst, port=packet.dport, protocol=protocol)

    def _peer(self, endpoint: Endpoint, port: int | None) -> Peer:
        """The endpoint as a record shows it; one labels object per pod (the store encodes
        labels once per object)."""
        key = endpoint.ip if endpoint.ip is not None else endpoint.describe()
        base = self._peers.get(key)
        if base is None:
            if len(self._peers) >= CACHE_LIMIT:
                self._peers.clear()
            base = self._peers[key] = _peer(endpoint)
        if port is None:
            return base
        return Peer(base.ip, port, base.namespace, base.pod, base.labels, base.node)

    # -- groups --------------------------------------------------------------------------------

    def group(self, endpoint: Endpoint, peer_text: str | None = None) -> str:
        """What the graph groups this endpoint under: `ns` or `ns (policies selecting it)` for
        a pod, `node NAME`, the ipBlock/networks peer an external address matched, or `world`."""
        if endpoint.pod is not None and endpoint.group is not None:
            return self._pod_group(endpoint.pod.namespace, endpoint.group)
        if endpoint.node is not None:
            return f"node {endpoint.node.name}"
        if peer_text and peer_text.startswith(("ipBlock ", "networks ")):
            return peer_text
        assert endpoint.ip is not None, "an endpoint without a pod has an address"
        return self._range_group(endpoint.ip)

    def _pod_group(self, namespace: str, group: int) -> str:
        found = self._groups.get(group)
        if found is None:
            keys: set[PolicyKey] = set()
            for direction in Direction:
                chain = self.engine.chain(group, direction)
                keys.update(p.key for p in (*chain.admin, *chain.network))
                if chain.baseline is not None:
                    keys.add(chain.baseline.key)
            found = f"{namespace} ({', '.join(sorted(keys))})" if keys else namespace
            self._groups[group] = found
        return found

    def _range_group(self, ip: IPAddress) -> str:
        found = self._groups.get(ip)
        if found is None:
            texts = sorted(
                peer.text
                for policy in self.engine.policies()
                for rule in (*policy.ingress, *policy.egress)
                for peer in rule.peers or ()
                if peer.ranges and any(r.contains(ip) for r in peer.ranges)
            )
            found = texts[0] if texts else "world"
            self._groups[ip] = found
        return found

    # -- conntrack -----------------------------------------------------------------------------

    def on_unlogged(
        self, event: CtEvent, *, logged: frozenset[Direction] = frozenset()
    ) -> list[FlowRecord]:
        """Records for a connection conntrack saw but no log rule judged, one per direction
        whose subject is a pod on this node (directions in `logged` had a log event). Such a
        direction has no dispatch entry here, so the engine must say it is allowed (not
        isolated); if it says otherwise, nothing is recorded and `disagreements` counts it."""
        packet = event.original
        src, dst = self.steps.endpoint(packet.src), self.steps.endpoint(packet.dst)
        wanted = [
            direction
            for direction, subject in ((Direction.EGRESS, src), (Direction.INGRESS, dst))
            if direction not in logged and self._is_local_pod(subject)
        ]
        time = event.start if event.start is not None else event.time
        records = []
        for direction in wanted:
            step = self._step(direction, src, dst, packet)
            if step is None:
                return []
            if not step.outcome.allows:
                # conntrack confirmed it, so the kernel allowed it: the engine disagrees
                # (log events lost, or a table the manifests no longer describe)
                self.disagreements += 1
                continue
            template = _Template(
                src=self._peer(src, None), dst=self._peer(dst, packet.dport),
                decision=decision_of_step(step, direction),
                summary=_sentence(step, direction, src, dst, packet),
                src_group=self.group(src, step.peer), dst_group=self.group(dst, step.peer),
                agrees=True,
            )
            records.append(self._record(template, packet, time=time, source=Source.CONNTRACK))
        return records

    def _is_local_pod(self, endpoint: Endpoint) -> bool:
        return endpoint.pod is not None and endpoint.pod.node_name == self.node


def completion(
    event: CtEvent, *, started: float, timeouts: Mapping[str, float]
) -> Completion:
    """Bytes and packets of both directions, and the time from the first packet to the last:
    an expired entry's stop time is its last packet plus the timeout of its final state (exact
    for entries that expire, which is how connections end; `conntrack -D` or a flush ends an
    entry early and the duration then comes out short by up to that timeout)."""
    start = event.start if event.start is not None else started
    stop = event.stop if event.stop is not None else event.time
    last = max(start, stop - idle_timeout(event, dict(timeouts)))
    counters = event.counters
    return Completion(end=last, duration=last - start, bytes=counters.bytes,
                      packets=counters.packets)


def _peer(endpoint: Endpoint) -> Peer:
    pod = endpoint.pod
    ip = str(endpoint.ip) if endpoint.ip is not None else ""
    if pod is not None:
        return Peer(ip, None, pod.namespace, pod.name, dict(pod.labels))
    node = endpoint.node.name if endpoint.node is not None else None
    return Peer(ip, None, node=node)


def _summary(decision: Decision, sentence: str | None, *, agrees: bool) -> str:
    if sentence is None:
        return decision.describe()
    if agrees:
        return sentence
    return (f"the kernel's rule: {decision.describe()}; the loaded manifests say: {sentence} "
            "(the table in the kernel and the collector's manifests differ)")


def _sentence(
    step: Step, direction: Direction, src: Endpoint, dst: Endpoint, packet: FiveTuple
) -> str:
    """`kanal explain`'s line for the deciding `step` of `direction` (ports known)."""
    subject, peer = (src, dst) if direction is Direction.EGRESS else (dst, src)
    protocol = protocol_name(packet.protocol)
    return step_sentence(step, direction, subject=subject.describe(), peer=peer.describe(),
                         probe=f"{packet.dport}/{protocol}")


__all__ = [
    "Attributor",
    "UnknownLogIdError",
    "completion",
    "decision_of",
    "decision_of_step",
    "same_decision",
]
