"""The NetworkPolicy tier of one dispatch chain, dispatched on (protocol, port) first.

Why: a NEW packet used to walk every rule of every NetworkPolicy that selects its pod before
the default deny, about 35-40 ns per rule; with hundreds of policies on one pod (the lab
benchmark's 1,000 policies put 800 rules on the client and the server) that halved the rate of
new connections. Almost every rule names its ports, so one verdict-map lookup on
`meta l4proto . th dport` leaves a packet only the rules that can admit its port:

```
dispatch chain (isolated)
  meta l4proto . th dport vmap { tcp . 80 : jump npport_in_<h1>,         one entry per port class
                                 tcp . 20000-20010 : jump npport_in_<h2>, … }
  [egress: meta mark & A != 0 return]
  jump npany_in_<h>                                     the rules with general ports, if any
  [egress: meta mark & A != 0 return]
  drop                                                  default deny (logged; the caller adds it)

npport_<d>_<h>   the rules whose specific ports cover this class, in policy and rule order,
                 without their port match (the map did it): peers only
npany_<d>_<h>    the rules with general ports, in order, with their port match
```

A *specific* port is a number, a range or a bare protocol, and for ingress a named port: the
protected pod is the destination, so its own container ports resolve the name here (the dispatch
chain is per pod group, and a group has one set of ports). A *general* port is no port at all, or
an egress named port (it belongs to the peer, matched with the named-port set as before). A rule
with both kinds has a part in each. Port classes are the elementary intervals of all specific
spans per protocol, so a class's rules are exactly those covering every port in it; classes with
the same rules share one chain (content-named), and adjacent ones merge into one map entry.

The kernel thus meets the specific rules before the general ones, and the engine names the
admitting rule in that same order (`kanal.engine.evaluate`): the NFLOG id of the rule that
fired is the one `kanal explain` names. Allow is `accept` for ingress; for egress it sets the
allow mark and returns to the dispatch chain, which returns. A rule that cannot be expressed
becomes a `drop` ahead of the port map, so every NEW packet of the tier meets it (fail closed),
and is reported.
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
class _Part:
    """The nft rules of one policy rule's specific ports, and the spans they cover."""

    rules: tuple[Rule, ...]
    spans: tuple[PortSpan, ...]


@dataclass(frozen=True, slots=True)
class _Parts:
    """Everything one policy rule contributes to the tier (cached per render)."""

    specific: _Part | None
    general: tuple[Rule, ...]
    broken: tuple[Rule, ...]


class NetworkTier:
    """Builds the rules the dispatch chain runs for its NetworkPolicy tier (not the end)."""

    def __init__(
        self, host: TierHost, direction: Direction, subject_ports: Sequence[ContainerPort]
    ) -> None:
        self.host = host
        self.direction = direction
        self.subject_ports = tuple(subject_ports)
        self.egress = direction is Direction.EGRESS

    def rules(self, policies: Sequence[CompiledPolicy], *, allowed: Rule) -> list[Rule]:
        """`allowed`: the egress check that returns once a called chain allowed."""
        specific: list[tuple[object, _Part]] = []
        general: list[Rule] = []
        broken: list[Rule] = []
        for policy in policies:
            for rule in policy.rules(self.direction):
                key = self._rule_key(policy, rule)
                cached = self.host.tier_cache.get(key)
                if cached is None:
                    cached = self.host.tier_cache[key] = self._parts(policy, rule)
                assert isinstance(cached, _Parts)
                broken.extend(cached.broken)
                if cached.specific is not None:
                    specific.append((key, cached.specific))
                general.extend(cached.general)
        section: list[Rule] = list(broken)
        if specific:
            map_key = ("map", self.direction, tuple(k for k, _ in specific))
            vmap = self.host.tier_cache.get(map_key)
            if vmap is None:
                vmap = self.host.tier_cache[map_key] = self._port_map([p for _, p in specific])
            section.append(Rule(verdict=str(vmap)))
            section.extend([allowed] if self.egress else [])
        if general:
            chain = self._chain(names.any_port_chain, general, "any port")
            section.append(Rule(verdict=f"jump {chain}"))
            section.extend([allowed] if self.egress else [])
        return section

    # -- one policy rule -> its specific part and its general rules ------------------------------

    def _rule_key(self, policy: CompiledPolicy, rule: CompiledRule) -> object:
        """What a rule's parts depend on: the protected pod's ports only for an ingress rule
        with a named port."""
        named = any(p.name is not None for p in rule.ports or ()) and not self.egress
        return ("rule", policy.tier, policy.key, rule.index, self.direction,
                self.subject_ports if named else None)

    def _parts(self, policy: CompiledPolicy, rule: CompiledRule) -> _Parts:
        try:
            part, general = self._split(policy, rule)
        except UnrenderableError as exc:
            return _Parts(None, (), (self._fail_closed(policy, rule, exc),))
        return _Parts(part, tuple(general), ())

    def _split(
        self, policy: CompiledPolicy, rule: CompiledRule
    ) -> tuple[_Part | None, list[Rule]]:
        """Raises `UnrenderableError` before anything is recorded."""
        comment = _comment(policy, rule)
        host, d = self.host, self.direction
        statements, verdict = host.action(policy.tier, rule.action, direction=d)
        spans = self._specific_spans(rule.ports)
        general_ports = self._general_ports(rule.ports)
        peers_only = (
            rule_matches(replace(rule, ports=None), d, families=host.families,
                         catalog=host.catalog) if spans else []
        )
        general = [] if general_ports == () else rule_matches(
            replace(rule, ports=general_ports), d, families=host.families, catalog=host.catalog,
        )
        if not (peers_only or general):
            return None, []  # e.g. an ingress named port the protected pod does not declare
        log = host.log_rule(policy, rule, direction=d, outcome=Outcome(rule.action.value))
        part = None
        if peers_only:
            rules = tuple(Rule(m, statements, verdict, log, comment) for m in peers_only)
            part = _Part(rules, spans)
        return part, [Rule(m, statements, verdict, log, comment) for m in general]

    def _specific_spans(self, ports: tuple[CompiledPort, ...] | None) -> tuple[PortSpan, ...]:
        spans: list[PortSpan] = []
        for port in ports or ():
            if port.name is None:
                spans.extend(expand_protocol(*numeric_span(port)))
            elif specific_port(port, self.direction):
                spans.extend(
                    (c.protocol, c.port, c.port) for c in self.subject_ports
                    if c.name == port.name and port.protocol in (None, c.protocol)
                )
        return tuple(spans)

    def _general_ports(
        self, ports: tuple[CompiledPort, ...] | None
    ) -> tuple[CompiledPort, ...] | None:
        """None: every port (the rule names none); () : no general part."""
        if ports is None:
            return None
        return tuple(p for p in ports if not specific_port(p, self.direction))

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

    def _port_map(self, parts: list[_Part]) -> str:
        entries: list[tuple[PortSpan, ChainName]] = []
        for proto, lo, hi, members in port_classes([p.spans for p in parts]):
            rules = [r for i in members for r in parts[i].rules]
            chain = self._chain(names.port_class_chain, rules, "ports")
            last = entries[-1] if entries else None
            if last and last[1] == chain and last[0][0] == proto and last[0][2] + 1 == lo:
                entries[-1] = ((proto, last[0][1], hi), chain)
            else:
                entries.append(((proto, lo, hi), chain))
        elements = ", ".join(f"{span_text(span)} : jump {chain}" for span, chain in entries)
        return f"meta l4proto . th dport vmap {{ {elements} }}"

    def _chain(self, namer: _Namer, rules: Sequence[Rule], what: str) -> ChainName:
        content = tuple(rules)
        name = namer(self.direction, repr(content))
        comment = f"{self.direction.value.lower()}: NetworkPolicy rules for {what}"
        return self.host.add_chain(Chain(name, content, comment=comment))


def _comment(policy: CompiledPolicy, rule: CompiledRule) -> str:
    return f"{policy.key} #{rule.index} {rule.name}".strip()


class _Namer(TypingProtocol):
    def __call__(self, direction: Direction, signature: str) -> ChainName: ...


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
