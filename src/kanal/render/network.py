"""The NetworkPolicy tier of one dispatch chain, dispatched on (protocol, port) first.

Why: a NEW packet used to walk every rule of every NetworkPolicy that selects its pod before
the default deny, about 35-40 ns per rule; with hundreds of policies on one pod (the lab
benchmark's 1,000 policies put 800 on the client and the server) that halved the rate of new
connections. Almost every rule names its ports, so one verdict-map lookup on
`meta l4proto . th dport` leaves a packet only the policies that can admit its port:

```
dispatch chain (isolated)
  meta l4proto . th dport vmap { tcp . 80 : jump npport_in_<h1>,      one entry per port class
                                 tcp . 20000-20010 : jump npport_in_<h2>, … }
  [egress: meta mark & A != 0 return]
  jump np_<ns>_<b>_in_any                 policies with rules without ports, in order
  [egress: meta mark & A == 0] jump np_<ns>_<c>_in_any
  [egress: meta mark & A != 0 return]
  drop                                    default deny (logged; the caller adds it)

npport_<d>_<h>     jump np_<ns>_<a>_in     the policies whose rules with ports cover this class,
                   [egress: A == 0] jump …   in order (content-named: shared when equal)
np_<ns>_<name>_in      the policy's rules with ports, with their port match
np_<ns>_<name>_in_any  its rules without ports
```

A rule's ports say which classes it covers: numbers, ranges and bare protocols as they are; a
named port as the numbers it has: for ingress at the protected pod (the dispatch chain is per pod
group, and a group has one set of ports), for egress at every pod of the cluster that declares
it (the peer is any of them). The policy chain still matches the name with the named-port set,
so it is the same for every pod, and an egress class only narrows the walk. Rules without ports
go to the policy's `_any` chain. Port classes are the elementary intervals of all the policies'
spans per protocol, so a class jumps exactly the policies covering every port in it; adjacent
classes with the same chain merge into one map entry. (The egress classes depend on which
numbers the cluster's pods give a name: the agent renders again when that set changes, see
`kanal.agent.incremental.AddressBook`.)

Policy chains (one per policy and direction, and one for its rules without ports) do not depend
on the pod they protect, so they are shared by every dispatch chain; only the port map and the
class chains do. The kernel meets the rules with ports before those without, and the engine
names the admitting rule in that same order (`kanal.engine.evaluate`): the NFLOG id of the rule that
fired is the one `kanal explain` names. Allow is `accept` for ingress; for egress it sets the
allow mark and returns, and every caller returns once the mark is set. A rule that cannot be
expressed becomes a `drop` ahead of the port map, so every NEW packet of the tier meets it
(fail closed), and is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol as TypingProtocol

from kanal.engine import Outcome, Tier
from kanal.engine.compiled import Action, CompiledPolicy, CompiledPort, CompiledRule
from kanal.model.objects import ContainerPort, Direction, Protocol
from kanal.render import names
from kanal.render.ir import Chain, Rule
from kanal.render.matches import (
    MAX_PORT,
    UnrenderableError,
    expand_protocol,
    numeric_span,
    rule_matches,
)
from kanal.render.names import ChainName, LogId
from kanal.render.sets import PROTOCOLS, PortSpan, SetCatalog, span_text


class TierHost(TypingProtocol):
    """What the tier needs from the node renderer (`kanal.render.ruleset._NodeRenderer`)."""

    families: tuple[int, ...]
    catalog: SetCatalog
    problems: list[str]
    tier_cache: dict[object, object]
    """Per render: a policy rule's parts and a port map are computed once, not once per
    dispatch chain that needs them (their logs and problems are recorded the first time)."""

    def action(
        self, tier: Tier, action: Action, *, direction: Direction
    ) -> tuple[tuple[str, ...], str]: ...

    def log_rule(
        self, policy: CompiledPolicy, rule: CompiledRule, *, direction: Direction,
        outcome: Outcome, fail_closed: bool = False,
    ) -> LogId: ...

    def add_chain(self, chain: Chain) -> ChainName: ...

    def named_port_numbers(self, name: str) -> frozenset[tuple[Protocol, int]]:
        """Every (protocol, number) some pod of the cluster declares as `name`."""
        ...


@dataclass(frozen=True, slots=True)
class _PolicyChains:
    """One policy's chains for one direction (they do not depend on the protected pod)."""

    with_ports: ChainName | None
    any_port: ChainName | None
    broken: tuple[Rule, ...]
    ports: tuple[CompiledPort, ...]
    """The ports of the rules in `with_ports`: what the policy can admit, by port."""


class NetworkTier:
    """Builds the rules the dispatch chain runs for its NetworkPolicy tier (not the end)."""

    def __init__(
        self, host: TierHost, direction: Direction, subject_ports: Sequence[ContainerPort],
        *, allow_mark: int,
    ) -> None:
        self.host = host
        self.direction = direction
        self.subject_ports = tuple(subject_ports)
        self.egress = direction is Direction.EGRESS
        self.not_allowed = f"meta mark & {allow_mark:#x} == 0"

    def rules(self, policies: Sequence[CompiledPolicy], *, allowed: Rule) -> list[Rule]:
        """`allowed`: the egress check that returns once a called chain allowed."""
        chains = [(p, self._policy_chains(p)) for p in policies]
        section = [r for _, c in chains for r in c.broken]
        covering = [(p.key, c.with_ports, spans) for p, c in chains
                    if c.with_ports is not None and (spans := self._spans(p, c))]
        if covering:
            map_key = ("map", self.direction, tuple((k, s) for k, _, s in covering))
            vmap = self.host.tier_cache.get(map_key)
            if vmap is None:
                vmap = self.host.tier_cache[map_key] = self._port_map(covering)
            section.append(Rule(verdict=str(vmap)))
            section.extend([allowed] if self.egress else [])
        any_port = [c.any_port for _, c in chains if c.any_port is not None]
        section.extend(self._calls(any_port))
        section.extend([allowed] if self.egress and any_port else [])
        return section

    def _calls(self, targets: Sequence[ChainName]) -> list[Rule]:
        """Jump each chain in order; egress: only while none has allowed (ingress accepts)."""
        return [Rule((self.not_allowed,) if self.egress and i else (), verdict=f"jump {t}")
                for i, t in enumerate(targets)]

    # -- one policy -> its chain of rules with ports and its chain of rules without -------------

    def _policy_chains(self, policy: CompiledPolicy) -> _PolicyChains:
        key = ("policy", policy.tier, policy.key, self.direction)
        cached = self.host.tier_cache.get(key)
        if cached is None:
            cached = self.host.tier_cache[key] = self._build_policy_chains(policy)
        assert isinstance(cached, _PolicyChains)
        return cached

    def _build_policy_chains(self, policy: CompiledPolicy) -> _PolicyChains:
        with_ports: list[Rule] = []
        any_port: list[Rule] = []
        broken: list[Rule] = []
        ports: list[CompiledPort] = []
        for rule in policy.rules(self.direction):
            try:
                parts = self._split(policy, rule)
            except UnrenderableError as exc:
                broken.append(self._fail_closed(policy, rule, exc))
                continue
            with_ports.extend(parts[0])
            any_port.extend(parts[1])
            if parts[0]:
                ports.extend(rule.ports or ())
        key, d = policy.key, self.direction
        what = f"{policy.tier.short} {key} {d.value.lower()}"
        return _PolicyChains(
            self._chain(names.policy_chain("np", key, d), with_ports, what),
            self._chain(names.policy_any_chain("np", key, d), any_port, f"{what}, any port"),
            tuple(broken), tuple(ports),
        )

    def _split(
        self, policy: CompiledPolicy, rule: CompiledRule
    ) -> tuple[list[Rule], list[Rule]]:
        """The rule's nft rules with its ports, or without ports (None). Raises
        `UnrenderableError` before anything is recorded."""
        statements, verdict = self.host.action(policy.tier, rule.action, direction=self.direction)
        ported, unported = self._port_parts(rule.ports)
        with_ports, any_port = self._matches(rule, ported), self._matches(rule, unported)
        if not (with_ports or any_port):
            return [], []
        log = self.host.log_rule(
            policy, rule, direction=self.direction, outcome=Outcome(rule.action.value)
        )
        comment = _comment(policy, rule)
        return ([Rule(m, statements, verdict, log, comment) for m in with_ports],
                [Rule(m, statements, verdict, log, comment) for m in any_port])

    def _matches(
        self, rule: CompiledRule, ports: tuple[CompiledPort, ...] | None
    ) -> list[tuple[str, ...]]:
        if ports == ():
            return []
        for port in ports or ():
            if port.name is None:
                numeric_span(port)  # raises for a span nft cannot express
        host = self.host
        return rule_matches(replace(rule, ports=ports), self.direction, families=host.families,
                            catalog=host.catalog)

    @staticmethod
    def _port_parts(
        ports: tuple[CompiledPort, ...] | None,
    ) -> tuple[tuple[CompiledPort, ...], tuple[CompiledPort, ...] | None]:
        """(ports for the policy chain, ports for its any-port chain): `()` is no rule there,
        None every port."""
        return ((), None) if ports is None else (ports, ())

    def _spans(self, policy: CompiledPolicy, chains: _PolicyChains) -> tuple[PortSpan, ...]:
        """The ports the policy's rules with ports can admit for this group: numbers as they
        are; a named port as the numbers it has, at the protected pod for ingress, at any pod
        of the cluster for egress (the policy chain's named-port set then checks the peer).
        No span: the policy is never jumped (none of its rules can match)."""
        named = any(p.name is not None for p in chains.ports) and not self.egress
        key = ("spans", policy.tier, policy.key, self.direction,
               self.subject_ports if named else None)
        cached = self.host.tier_cache.get(key)
        if cached is None:
            cached = self.host.tier_cache[key] = self._spans_of(chains.ports)
        assert isinstance(cached, tuple)
        return cached

    def _spans_of(self, ports: tuple[CompiledPort, ...]) -> tuple[PortSpan, ...]:
        spans: list[PortSpan] = []
        for port in ports:
            if port.name is None:
                spans.extend(expand_protocol(*numeric_span(port)))
                continue
            declared = (
                self.host.named_port_numbers(port.name) if self.egress
                else {(c.protocol, c.port) for c in self.subject_ports if c.name == port.name}
            )
            spans.extend((proto, number, number) for proto, number in sorted(declared)
                         if port.protocol in (None, proto))
        return tuple(spans)

    def _fail_closed(
        self, policy: CompiledPolicy, rule: CompiledRule, exc: UnrenderableError
    ) -> Rule:
        self.host.problems.append(
            f"{policy.tier.short} `{policy.key}` {self.direction.value.lower()} rule "
            f"{rule.label()} cannot be rendered ({exc}): it drops instead"
        )
        log = self.host.log_rule(
            policy, rule, direction=self.direction, outcome=Outcome.DENY, fail_closed=True
        )
        return Rule(verdict="drop", log=log, comment=_comment(policy, rule))

    # -- port classes -> one verdict map ----------------------------------------------------------

    def _port_map(
        self, covering: Sequence[tuple[str, ChainName, tuple[PortSpan, ...]]]
    ) -> str:
        entries: list[tuple[PortSpan, ChainName]] = []
        for proto, lo, hi, members in port_classes([spans for _, _, spans in covering]):
            rules = self._calls([covering[i][1] for i in members])
            chain = self._class_chain(rules)
            last = entries[-1] if entries else None
            if last and last[1] == chain and last[0][0] == proto and last[0][2] + 1 == lo:
                entries[-1] = ((proto, last[0][1], hi), chain)
            else:
                entries.append(((proto, lo, hi), chain))
        elements = ", ".join(f"{span_text(span)} : jump {chain}" for span, chain in entries)
        return f"meta l4proto . th dport vmap {{ {elements} }}"

    def _class_chain(self, rules: Sequence[Rule]) -> ChainName:
        content = tuple(rules)
        name = names.port_class_chain(self.direction, repr(content))
        comment = f"{self.direction.value.lower()}: the policies that name these ports"
        return self.host.add_chain(Chain(name, content, comment=comment))

    def _chain(self, name: ChainName, rules: Sequence[Rule], comment: str) -> ChainName | None:
        if not rules:
            return None
        return self.host.add_chain(Chain(name, tuple(rules), comment=comment))


def _comment(policy: CompiledPolicy, rule: CompiledRule) -> str:
    return f"{policy.key} #{rule.index} {rule.name}".strip()


PortClass = tuple[Protocol, int, int, tuple[int, ...]]


def port_classes(spans_per_part: Sequence[Sequence[PortSpan]]) -> list[PortClass]:
    """The elementary port intervals of every protocol, each with the parts covering all of it
    (indices in order), by protocol then port; intervals no part covers are left out."""
    events: dict[Protocol, dict[int, list[tuple[int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for index, spans in enumerate(spans_per_part):
        for proto, lo, hi in spans:
            events[proto][lo].append((index, 1))
            events[proto][hi + 1].append((index, -1))
    classes: list[PortClass] = []
    for proto in (p for p in PROTOCOLS if p in events):
        cuts = sorted(events[proto])
        cover: dict[int, int] = {}
        for cut, following in zip(cuts, [*cuts[1:], MAX_PORT + 2], strict=True):
            for index, step in events[proto][cut]:
                count = cover.get(index, 0) + step
                if count:
                    cover[index] = count
                else:
                    del cover[index]
            if cover and cut <= MAX_PORT:
                classes.append((proto, cut, min(following - 1, MAX_PORT), tuple(sorted(cover))))
    return classes
