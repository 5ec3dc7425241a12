"""Engine state + node name -> the IR of that node's `table inet kanal`.

Only what the node's *local* pods need is rendered (Calico's "local endpoints only"): egress is
enforced at the source's node, ingress at the destination's node, so same-node traffic meets both
here and cross-node traffic one on each side. Sets still hold matching pods cluster-wide.

```
hook forward (filter)  chain forward
  ct state established,related accept          (only NEW packets reach the policy chains)
  ct state invalid drop
  ip saddr vmap @egress_pods_v4 ──jump──► egress_<h>   one per distinct (policies, order)
  ip daddr vmap @ingress_pods_v4 ─goto──► ingress_<h>  shared by every group that has it
  (policy accept: not a local pod, or no policy applies to it)

egress_<h> (jumped: `return` = this direction allows, ingress still to check)
  meta mark &= ~(A|P)
  jump anp_<a>_eg                    ANP tier, ascending priority (ties by name)
  mark & A != 0 return                 Allow: set A, return │ Deny: drop │ Pass: set P, return
  mark & P == 0 jump anp_<b>_eg        a Pass skips the remaining ANPs
  mark & A != 0 return
  ┌ isolated (some NetworkPolicy selects the group for egress):
  │ meta l4proto . th dport vmap {…}   port class -> npport_eg_<h> -> jump np_<ns>_<name>_eg
  │ mark & A != 0 return                 any rule allows: set A, return (kanal.render.network)
  │ jump np_<ns>_<name>_eg_any         policies with rules for any port
  │ mark & A != 0 return
  │ drop                               default deny
  └ not isolated:
    jump banp_default_eg               Allow: set A, return │ Deny: drop
    mark & A != 0 return
    return                             nothing decided: allowed

ingress_<h> (reached by goto: it always ends in a verdict)
  the same tiers, but Allow is `accept` right in the policy chain (nothing is left to check),
  so only the Pass bit P is needed; the end is `drop` (isolated) or `accept`.
```

Policy chains (one per policy per direction, shared by every dispatch chain that uses it; a
NetworkPolicy's rules that allow any port have a second one) do not depend on the pod they
protect: peers are set lookups and named ports are matched as `daddr . proto . dport` in a set
of the pods declaring that name, so they hold for any subject. Only a dispatch chain's port map
and class chains depend on its group (ingress named ports). Chains and rules therefore grow with
policies and distinct policy lists, never with pods; only set and map elements grow with pods.
The table keeps only what its base chains and its local pods' dispatch verdicts reach
(`kanal.render.reach`): no chain no packet enters, no set no rule reads, so what one pod's
verdicts add to or leave in a table follows from those verdicts alone (`kanal.agent.local`).

The two mark bits (`RenderOptions.allow_mark`, `pass_mark`) are owned by Kanal in the forward
hook: every dispatch chain that reads them clears them first. Denied packets are dropped, never
rejected. A rule that cannot be expressed is replaced by a `drop` at its place (fail closed) and
reported in `Ruleset.problems`; so is a local address claimed by two pods with different chains.

Every rule that ends a direction's decision carries a `LogId` (see `kanal.render.names.log_id`);
with `log_group` set it becomes `log prefix "k:…" group N`, and `Ruleset.log` maps it back to
(direction, tier, policy, rule, outcome) exactly as the engine's deciding `Step` says it. Pass is
not an end and is not logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kanal.engine import Outcome, PolicyEngine, Tier
from kanal.engine.compiled import Action, CompiledPolicy, CompiledRule
from kanal.engine.evaluate import Chain as PolicyList
from kanal.model.objects import ContainerPort, Direction, IPAddress, Pod, PolicyKey, Protocol
from kanal.render import names
from kanal.render.guard import check_prefix, guard_chain, guard_sets
from kanal.render.ir import Chain, Hook, LogEntry, Rule, Ruleset, VerdictMap
from kanal.render.matches import FAMILY_KEYWORD, UnrenderableError, rule_matches
from kanal.render.names import ChainName, LogId, SetName
from kanal.render.network import NetworkTier
from kanal.render.reach import Reached, reach, verdict_target
from kanal.render.sets import ADDRESS_TYPE, SetCatalog

VXLAN_PORT = 4789
TIER_PREFIX = {Tier.ADMIN: "anp", Tier.NETWORK: "np", Tier.BASELINE: "banp"}
FORWARD = ChainName("forward")


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """`log_group`: NFLOG group for verdict logging (None: off). The marks are two distinct
    single bits of the packet mark, free of other users (kube-proxy uses 0x4000 and 0x8000).
    `vxlan_port`: the underlay port exempted from conntrack (None: no raw chains).
    `pod_interfaces`: the name prefix of the host side of the node's pod interfaces; packets
    of such an interface from or to an address no local pod has are dropped
    (`kanal.render.guard`; None: no guard)."""

    log_group: int | None = None
    allow_mark: int = 0x10000
    pass_mark: int = 0x20000
    vxlan_port: int | None = VXLAN_PORT
    pod_interfaces: str | None = None

    def __post_init__(self) -> None:
        for bit in (self.allow_mark, self.pass_mark):
            if bit <= 0 or bit & (bit - 1) or bit > 0x80000000:
                raise ValueError(f"mark {bit:#x} must be a single bit of a 32-bit mark")
        if self.allow_mark == self.pass_mark:
            raise ValueError("allow_mark and pass_mark must be different bits")
        if self.log_group is not None and not 0 <= self.log_group <= 0xFFFF:
            raise ValueError(f"log group {self.log_group} is not in 0-65535")
        if self.pod_interfaces is not None:
            check_prefix(self.pod_interfaces)


def render_node(
    engine: PolicyEngine, node: str, options: RenderOptions | None = None
) -> Ruleset:
    """The ruleset of `node` for the engine's current state. Pure and deterministic."""
    return _NodeRenderer(engine, node, options or RenderOptions()).render()


def map_name(direction: Direction, family: int) -> SetName:
    return SetName(f"{direction.value.lower()}_pods_{names.family_suffix(family)}")


def pod_families(engine: PolicyEngine) -> tuple[int, ...]:
    """IPv4 always; IPv6 when some pod has an IPv6 address (so v4-only clusters get no empty
    v6 sets; the first v6 pod is then a structural change, i.e. one table reload)."""
    has_v6 = any(ip.version == 6 for pod in engine.pods().values() for ip in pod.ips)
    return (4, 6) if has_v6 else (4,)


class _NodeRenderer:
    """One render: collects chains, demanded sets, log entries and problems, then assembles."""

    def __init__(self, engine: PolicyEngine, node: str, options: RenderOptions) -> None:
        self.engine = engine
        self.node = node
        self.options = options
        self.families = pod_families(engine)
        self.catalog = SetCatalog()
        self.policy_chains: dict[tuple[Tier, str, Direction], Chain | None] = {}
        self.dispatch_chains: dict[ChainName, Chain] = {}
        self.group_verdicts: dict[tuple[int, Direction], str] = {}
        self.tier_cache: dict[object, object] = {}
        self._named_ports: dict[str, frozenset[tuple[Protocol, int]]] | None = None
        self.log: dict[LogId, LogEntry] = {}
        self.problems: list[str] = []
        self.both_marks = options.allow_mark | options.pass_mark

    def render(self) -> Ruleset:
        local = sorted(
            (p for p in self.engine.pods().values() if p.node_name == self.node),
            key=lambda p: p.key,
        )
        maps = tuple(
            self._verdict_map(direction, family, local=local)
            for direction in (Direction.EGRESS, Direction.INGRESS)
            for family in self.families
        )
        base = self._base_chains()
        roots = [c.name for c in base]
        roots += [t for v in self.group_verdicts.values() if (t := verdict_target(v))]
        kept = self.reached(roots, base=base)
        sets = [*self.catalog.materialize(self.engine, only=kept.sets)]
        if self.options.pod_interfaces is not None:
            sets = sorted([*sets, *guard_sets(local, self.families)], key=lambda s: s.name)
        return Ruleset(
            node=self.node,
            families=self.families,
            sets=tuple(sets),
            maps=maps,
            chains=(*base, *self._sorted_chains(kept.chains)),
            log=tuple(self.log[i] for i in sorted(kept.logs)),
            log_group=self.options.log_group,
            problems=tuple(dict.fromkeys(self.problems)),
        )

    # -- dispatch: pod address -> its group's chain ----------------------------------------------

    def _verdict_map(
        self, direction: Direction, family: int, *, local: list[Pod]
    ) -> VerdictMap:
        claims: dict[IPAddress, list[tuple[str, str]]] = {}
        for pod in local:
            verdict = self._dispatch_verdict(pod, direction)
            for ip in pod.ips:
                if ip.version == family:
                    claims.setdefault(ip, []).append((pod.key, verdict))
        elements = [
            (str(ip), verdict)
            for ip in sorted(claims)
            if (verdict := self._claimed_verdict(ip, claims[ip], direction=direction))
        ]
        return VerdictMap(map_name(direction, family), f"{ADDRESS_TYPE[family]} : verdict",
                          tuple(elements))

    def _claimed_verdict(
        self, ip: IPAddress, claims: list[tuple[str, str]], *, direction: Direction
    ) -> str:
        """The map verdict for `ip` ("" = no entry); two pods with one address fail closed."""
        verdicts = {v for _, v in claims}
        if len(claims) > 1:
            pods = ", ".join(f"`{k}`" for k, _ in claims)
            self.problems.append(f"address {ip} is claimed by pods {pods} on node `{self.node}`")
        if len(verdicts) == 1:
            return verdicts.pop()
        self.problems.append(f"{direction.value.lower()} of {ip} is dropped: its pods disagree")
        return "drop"

    def _dispatch_verdict(self, pod: Pod, direction: Direction) -> str:
        """`jump`/`goto` the pod's dispatch chain, or "" when no policy applies to it."""
        group = self.engine.groups().group_of(pod.key)
        key = (group, direction)
        if key not in self.group_verdicts:
            policies = self.engine.chain(group, direction)
            target = self._dispatch_chain(policies, direction, ports=pod.ports)
            verb = "jump" if direction is Direction.EGRESS else "goto"
            self.group_verdicts[key] = f"{verb} {target}" if target else ""
        return self.group_verdicts[key]

    def _dispatch_chain(
        self, policies: PolicyList, direction: Direction, *, ports: tuple[ContainerPort, ...]
    ) -> ChainName | None:
        """`ports`: the group's container ports (they resolve ingress named ports)."""
        admin = [c for p in policies.admin if (c := self._policy_chain(p, direction))]
        isolated = bool(policies.network)
        builder = _DispatchBuilder(self, direction)
        network = (
            NetworkTier(self, direction, ports, allow_mark=self.options.allow_mark)
            .rules(policies.network, allowed=builder.allowed)
            if isolated else []
        )
        baseline = None
        if policies.baseline is not None and not isolated:
            baseline = self._policy_chain(policies.baseline, direction)
        if not (admin or isolated or baseline):
            return None
        rules = builder.build(
            admin, network, baseline, isolating=tuple(p.key for p in policies.network)
        )
        name = names.dispatch_chain(direction, repr(rules))
        comment = _dispatch_comment(direction, policies.network)
        return self.add_chain(Chain(name, rules, comment=comment))

    def add_chain(self, chain: Chain) -> ChainName:
        """Keep a content-named chain (dispatch, port class): the same name, the same chain."""
        existing = self.dispatch_chains.setdefault(chain.name, chain)
        if existing != chain:
            raise RuntimeError(f"chain name {chain.name} collides for different content")
        return chain.name

    def named_port_numbers(self, name: str) -> frozenset[tuple[Protocol, int]]:
        """Every (protocol, number) some pod of the cluster declares as `name` (an index of
        all pods' named ports, built once per render on first use)."""
        if self._named_ports is None:
            index: dict[str, set[tuple[Protocol, int]]] = {}
            for pod in self.engine.pods().values():
                for port in pod.ports:
                    if port.name:
                        index.setdefault(port.name, set()).add((port.protocol, port.port))
            self._named_ports = {k: frozenset(v) for k, v in index.items()}
        return self._named_ports.get(name, frozenset())

    # -- policy chains -----------------------------------------------------------------------------

    def _policy_chain(self, policy: CompiledPolicy, direction: Direction) -> ChainName | None:
        """The policy's chain for `direction` (built once), or None if it has no rules."""
        key = (policy.tier, str(policy.key), direction)
        if key not in self.policy_chains:
            name = names.policy_chain(TIER_PREFIX[policy.tier], policy.key, direction)
            rules = tuple(r for rule in policy.rules(direction)
                          for r in self._policy_rules(policy, rule, direction=direction))
            comment = f"{policy.tier.short} {policy.key} {direction.value.lower()}"
            self.policy_chains[key] = Chain(name, rules, comment=comment) if rules else None
        chain = self.policy_chains[key]
        return chain.name if chain is not None else None

    def _policy_rules(
        self, policy: CompiledPolicy, rule: CompiledRule, *, direction: Direction
    ) -> list[Rule]:
        comment = _rule_comment(rule)
        try:
            statements, verdict = self.action(policy.tier, rule.action, direction=direction)
            matches = rule_matches(rule, direction, families=self.families, catalog=self.catalog)
        except UnrenderableError as exc:
            self.problems.append(
                f"{policy.tier.short} `{policy.key}` {direction.value.lower()} rule "
                f"{rule.label()} cannot be rendered ({exc}): it drops instead"
            )
            closed = self.log_rule(
                policy, rule, direction=direction, outcome=Outcome.DENY, fail_closed=True
            )
            return [Rule(verdict="drop", log=closed, comment=comment)]
        log = None
        if rule.action is not Action.PASS:
            log = self.log_rule(
                policy, rule, direction=direction, outcome=Outcome(rule.action.value)
            )
        return [Rule(m, statements, verdict, log, comment) for m in matches]

    def action(
        self, tier: Tier, action: Action, *, direction: Direction
    ) -> tuple[tuple[str, ...], str]:
        """Statements and verdict that carry `action` back to the dispatch chain."""
        if action is Action.DENY:
            return (), "drop"
        if action is Action.PASS:
            if tier is not Tier.ADMIN:
                raise UnrenderableError(f"Pass is only meaningful in the admin tier, not in {tier}")
            return (f"meta mark set meta mark | {self.options.pass_mark:#x}",), "return"
        if direction is Direction.INGRESS:
            return (), "accept"
        return (f"meta mark set meta mark | {self.options.allow_mark:#x}",), "return"

    # -- log ids -----------------------------------------------------------------------------------

    def log_rule(
        self, policy: CompiledPolicy, rule: CompiledRule, *, direction: Direction,
        outcome: Outcome, fail_closed: bool = False,
    ) -> LogId:
        identity = f"{direction}|{policy.tier}|{policy.key}|{rule.index}|{outcome}|{fail_closed}"
        return self._log(LogEntry(
            names.log_id(identity), direction, outcome, policy.tier, policy.key, rule.index,
            rule.name, fail_closed=fail_closed,
        ))

    def log_end(self, direction: Direction, isolating: tuple[PolicyKey, ...]) -> LogId:
        """The id of a dispatch chain's implicit end: default deny (isolated) or not isolated."""
        if isolating:
            identity = f"{direction}|DefaultDeny|{','.join(isolating)}"
            entry = LogEntry(names.log_id(identity), direction, Outcome.DEFAULT_DENY,
                             Tier.NETWORK, isolating=isolating)
        else:
            entry = LogEntry(names.log_id(f"{direction}|NotIsolated"), direction,
                             Outcome.NOT_ISOLATED)
        return self._log(entry)

    def _log(self, entry: LogEntry) -> LogId:
        existing = self.log.setdefault(entry.id, entry)
        if existing != entry:
            raise RuntimeError(f"log id {entry.id} collides for {existing} and {entry}")
        return entry.id

    # -- assembly ----------------------------------------------------------------------------------

    def _base_chains(self) -> list[Chain]:
        chains = [Chain(FORWARD, _forward_rules(self.families), Hook("forward", "filter"))]
        if self.options.pod_interfaces is not None:
            chains.append(guard_chain(self.options.pod_interfaces, self.families))
        port = self.options.vxlan_port
        if port is not None:
            chains.extend(_underlay_notrack(port))
        return chains

    def chains(self) -> dict[ChainName, Chain]:
        """Every non-base chain built so far, by name."""
        return {**self.dispatch_chains,
                **{c.name: c for c in self.policy_chains.values() if c is not None}}

    def reached(self, roots: Iterable[ChainName], *, base: Iterable[Chain] = ()) -> Reached:
        """What `roots` reach among the chains built so far (and `base`): the table keeps only
        that (`kanal.render.reach`), e.g. not the chain of a policy whose rules cannot match
        the ports of the only group it selects."""
        return reach(roots, {**self.chains(), **{c.name: c for c in base}})

    def _sorted_chains(self, kept: set[ChainName]) -> list[Chain]:
        """Content-named chains, then policy chains, each by name (`names.chain_order`)."""
        chains = [c for name, c in self.chains().items() if name in kept]
        return sorted(chains, key=lambda c: names.chain_order(c.name))


class _DispatchBuilder:
    """The rules of one dispatch chain (see the module diagram)."""

    def __init__(self, renderer: _NodeRenderer, direction: Direction) -> None:
        self.r = renderer
        self.direction = direction
        self.egress = direction is Direction.EGRESS
        options = renderer.options
        self.allowed = Rule((f"meta mark & {options.allow_mark:#x} != 0",), verdict="return")
        self.not_passed = f"meta mark & {options.pass_mark:#x} == 0"

    def build(
        self, admin: list[ChainName], network: list[Rule], baseline: ChainName | None,
        *, isolating: tuple[PolicyKey, ...],
    ) -> tuple[Rule, ...]:
        """`network`: the NetworkPolicy tier's rules (`NetworkTier`), used when isolated."""
        tier = network if isolating else list(self._call(baseline)) if baseline else []
        rules: list[Rule] = []
        if len(admin) > 1 or (self.egress and (admin or tier)):  # marks are read
            clear = f"meta mark set meta mark & {~self.r.both_marks & 0xFFFFFFFF:#x}"
            rules.append(Rule(statements=(clear,)))
        for i, chain in enumerate(admin):
            rules.extend(self._call(chain, guard=(self.not_passed,) if i else ()))
        rules.extend(tier)
        end = "drop" if isolating else ("return" if self.egress else "accept")
        rules.append(Rule(verdict=end, log=self.r.log_end(self.direction, isolating)))
        return tuple(rules)

    def _call(self, chain: ChainName, guard: tuple[str, ...] = ()) -> Iterable[Rule]:
        yield Rule(guard, verdict=f"jump {chain}")
        if self.egress:
            yield self.allowed


def _underlay_notrack(port: int) -> list[Chain]:
    """Keep the VXLAN underlay out of conntrack (LINUX-NOTES: about 2 entries per pod flow per
    node otherwise), and only the underlay: a pod's own UDP flow to `port` must stay stateful.

    Arriving, the outer packet is addressed to this node (`fib daddr type local`), while pod
    traffic, decapsulated or not, is addressed to a pod. Leaving, only locally generated packets
    pass the output hook: the kernel's encapsulation does, forwarded pod traffic never does."""
    arriving = Rule(("fib daddr type local", f"udp dport {port}"), verdict="notrack")
    leaving = Rule((f"udp dport {port}",), verdict="notrack")
    return [
        Chain(ChainName("raw_prerouting"), (arriving,), Hook("prerouting", "raw")),
        Chain(ChainName("raw_output"), (leaving,), Hook("output", "raw")),
    ]


def _forward_rules(families: tuple[int, ...]) -> tuple[Rule, ...]:
    dispatch = [
        Rule(verdict=f"{FAMILY_KEYWORD[f]} {field} vmap @{map_name(d, f)}")
        for d, field in ((Direction.EGRESS, "saddr"), (Direction.INGRESS, "daddr"))
        for f in families
    ]
    return (
        Rule(("ct state established,related",), verdict="accept"),
        Rule(("ct state invalid",), verdict="drop"),
        *dispatch,
    )


def _rule_comment(rule: CompiledRule) -> str:
    return f"#{rule.index} {rule.name}".strip()


def _dispatch_comment(direction: Direction, network: tuple[CompiledPolicy, ...]) -> str:
    """Only what the rules determine too (the isolating policies are in the default deny's log
    id), so every group sharing the chain shares the comment."""
    if not network:
        return f"{direction.value.lower()}: not isolated"
    return f"{direction.value.lower()}: isolated by " + ", ".join(p.key for p in network)
