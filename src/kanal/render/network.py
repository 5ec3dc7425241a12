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
  jump np_<ns>_<b>_in_any                 policies with general rules, in order
  [egress: meta mark & A == 0] jump np_<ns>_<c>_in_any
  [egress: meta mark & A != 0 return]
  drop                                    default deny (logged; the caller adds it)

npport_<d>_<h>     jump np_<ns>_<a>_in     the policies whose specific rules cover this class,
                   [egress: A == 0] jump …   in order (content-named: shared when equal)
np_<ns>_<name>_in      the policy's rules with specific ports, with their port match
np_<ns>_<name>_in_any  its rules with general ports, with theirs
```

A *specific* port is a number, a range or a bare protocol, and for ingress a named port: the
protected pod is the destination, so its own container ports say which class the name covers
(the dispatch chain is per pod group, and a group has one set of ports; the policy chain still
matches the name with the named-port set, so it stays the same for every pod). A *general* port
is no port at all, or an egress named port (it belongs to the peer). A rule with both kinds has
a part in each chain, with one log id. Port classes are the elementary intervals of all the
policies' specific spans per protocol, so a class jumps exactly the policies covering every port
in it; adjacent classes with the same chain merge into one map entry.

Policy chains (one per policy, direction and kind of port) do not depend on the pod they
protect, so they are shared by every dispatch chain; only the port map and the class chains
do. The kernel meets the specific rules before the general ones, and the engine names the
admitting rule in that same order (`kanal.engine.evaluate`): the NFLOG id of the rule that
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
from kanal.engine.evaluate import specific_port
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


@dataclass(frozen=True, slots=True)
class _PolicyChains:
    """One policy's chains for one direction (they do not depend on the protected pod)."""

    specific: ChainName | None
    general: ChainName | None
    broken: tuple[Rule, ...]
    ports: tuple[CompiledPort, ...]
    """The specific ports of the rules in `specific`: what the policy can admit, by port."""


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
        covering = [(p.key, c.specific, spans) for p, c in chains
                    if c.specific is not None and (spans := self._spans(p, c))]
        if covering:
            map_key = ("map", self.direction, tuple((k, s) for k, _, s in covering))
            vmap = self.host.tier_cache.get(map_key)
            if vmap is None:
                vmap = self.host.tier_cache[map_key] = self._port_map(covering)
            section.append(Rule(verdict=str(vmap)))
            section.extend([allowed] if self.egress else [])
        general = [c.general for _, c in chains if c.general is not None]
        section.extend(self._calls(general))
        section.extend([allowed] if self.egress and general else [])
        return section

    def _calls(self, targets: Sequence[ChainName]) -> list[Rule]:
        """Jump each chain in order; egress: only while none has allowed (ingress accepts)."""
        return [Rule((self.not_allowed,) if self.egress and i else (), verdict=f"jump {t}")
                for i, t in enumerate(targets)]

    # -- one policy -> its chain of specific rules and its chain of general ones -----------------

    def _policy_chains(self, policy: CompiledPolicy) -> _PolicyChains:
        key = ("policy", policy.tier, policy.key, self.direction)
        cached = self.host.tier_cache.get(key)
        if cached is None:
            cached = self.host.tier_cache[key] = self._build_policy_chains(policy)
        assert isinstance(cached, _PolicyChains)
        return cached

    def _build_policy_chains(self, policy: CompiledPolicy) -> _PolicyChains:
        specific: list[Rule] = []
        general: list[Rule] = []
        broken: list[Rule] = []
        ports: list[CompiledPort] = []
        for rule in policy.rules(self.direction):
            try:
                parts = self._split(policy, rule)
            except UnrenderableError as exc:
                broken.append(self._fail_closed(policy, rule, exc))
                continue
            specific.extend(parts[0])
            general.extend(parts[1])
            if parts[0]:
                ports.extend(p for p in rule.ports or () if specific_port(p, self.direction))
        key, d = policy.key, self.direction
        what = f"{policy.tier.short} {key} {d.value.lower()}"
        return _PolicyChains(
            self._chain(names.policy_chain("np", key, d), specific, what),
            self._chain(names.policy_any_chain("np", key, d), general, f"{what}, any port"),
            tuple(broken), tuple(ports),
        )

    def _split(
        self, policy: CompiledPolicy, rule: CompiledRule
    ) -> tuple[list[Rule], list[Rule]]:
        """The rule's nft rules with specific and with general ports. Raises
        `UnrenderableError` before anything is recorded."""
        statements, verdict = self.host.action(policy.tier, rule.action, direction=self.direction)
        specific, general = (self._matches(rule, ports) for ports in self._port_parts(rule.ports))
        if not (specific or general):
            return [], []
        log = self.host.log_rule(
            policy, rule, direction=self.direction, outcome=Outcome(rule.action.value)
        )
        comment = _comment(policy, rule)
        return ([Rule(m, statements, verdict, log, comment) for m in specific],
                [Rule(m, statements, verdict, log, comment) for m in general])

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

    def _port_parts(
        self, ports: tuple[CompiledPort, ...] | None
    ) -> tuple[tuple[CompiledPort, ...], tuple[CompiledPort, ...] | None]:
        """(specific ports, general ports): `()` is no part, None every port (no ports named)."""
        if ports is None:
            return (), None
        specific = tuple(p for p in ports if specific_port(p, self.direction))
        return specific, tuple(p for p in ports if not specific_port(p, self.direction))

    def _spans(self, policy: CompiledPolicy, chains: _PolicyChains) -> tuple[PortSpan, ...]:
        """The ports the policy's specific rules can admit for this group: numbers as they are,
        ingress named ports as the protected pod declares them (none: the policy is skipped)."""
        named = any(p.name is not None for p in chains.ports)
        key = ("spans", policy.tier, policy.key, self.direction,
               self.subject_ports if named else None)
        cached = self.host.tier_cache.get(key)
        if cached is None:
            cached = self.host.tier_cache[key] = self._specific_spans(chains.ports)
        assert isinstance(cached, tuple)
        return cached

    def _specific_spans(self, ports: tuple[CompiledPort, ...]) -> tuple[PortSpan, ...]:
        spans: list[PortSpan] = []
        for port in ports:
            if port.name is None:
                spans.extend(expand_protocol(*numeric_span(port)))
            else:
                spans.extend(
                    (c.protocol, c.port, c.port) for c in self.subject_ports
                    if c.name == port.name and port.protocol in (None, c.protocol)
                )
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
