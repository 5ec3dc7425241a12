"""PolicyEngine: the one place where cluster state becomes "is this allowed, and why".

The calculation graph, wired in `PolicyEngine.__init__`:

```
 upsert/delete_pod ──► PodGroups ──on_group_added/removed──┐
                        (pods with equal namespace,         │ view = ns labels + pod labels
                         labels, ports share a group)       ▼
 upsert/delete_namespace ─── relabel the groups of ───► SelectorIndex ◄── add/remove_selector ──┐
                             that namespace              (selector -> groups;                   │
                                                          on_match_started/stopped)             │
                                                              │                                 │
                                                              ▼                                 │
 upsert/delete_policy ──► compile (all tiers) ──► PolicyStore: refcounted selectors ─────────────┘
   (NP, ANP, BANP)                                 subject selector -> policies
                                                              │
                                                              ▼
                                                   selected_by: group -> policies
                                                              │
                                                              ▼
                             chain(group, direction) (cached until that group's policies change)
                                                              │
                     ┌────────────────────────────────────────┼──────────────────────┐
                     ▼                                        ▼                      ▼
           evaluate.decide (explain/check)           matrix (vectorised)   renderer, flows
```

Every update touches only the groups and selectors it affects (through the label index), and the
result depends only on the current objects, never on the order they arrived in (property-tested
against a from-scratch build and against a naive evaluator).

Pods without an address are matched by selectors like any pod, but never by ipBlock or networks
peers, which match addresses.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from typing import Any

from kanal.engine.compiled import (
    CompiledPolicy,
    Tier,
    compile_admin_policy,
    compile_network_policy,
)
from kanal.engine.evaluate import Chain, Connection, decide
from kanal.engine.groups import GroupId, GroupKey, PodGroups
from kanal.engine.labelindex import SelectorIndex
from kanal.engine.rows import VerdictRows
from kanal.engine.selectors import EndpointSelector, pod_view
from kanal.engine.verdict import Endpoint, Verdict
from kanal.errors import NotFoundError
from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    AdminNetworkPolicy,
    Direction,
    IPAddress,
    Labels,
    Manifests,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    PodKey,
    PolicyKey,
    Protocol,
)

PolicyRef = tuple[Tier, PolicyKey]
_Resolved = tuple[IPAddress | None, Pod | None, GroupId | None, Node | None]
"""An endpoint before its address is chosen: (address given, pod, its group, node)."""


class PolicyEngine:
    def __init__(self) -> None:
        self._namespaces: dict[str, Namespace] = {}
        self._pods: dict[PodKey, Pod] = {}
        self._pod_by_ip: dict[IPAddress, PodKey] = {}
        self._nodes: dict[str, Node] = {}
        self._node_by_ip: dict[IPAddress, str] = {}
        self._policies: dict[PolicyRef, CompiledPolicy] = {}
        self._selector_refs: Counter[EndpointSelector] = Counter()
        self._subject_users: dict[EndpointSelector, set[PolicyRef]] = {}
        self._selected_by: dict[GroupId, set[PolicyRef]] = {}
        self._chains: dict[tuple[GroupId, Direction], Chain] = {}
        self.generation = 0
        """Bumped on every change; consumers key their caches on it."""
        self._warnings: tuple[int, tuple[str, ...]] = (-1, ())

        self._rows = VerdictRows(self)
        self._index: SelectorIndex[GroupId] = SelectorIndex(
            on_match_started=self._on_match_started,
            on_match_stopped=self._on_match_stopped,
        )
        self._groups = PodGroups(
            on_group_added=self._on_group_added,
            on_group_removed=self._on_group_removed,
        )

    @classmethod
    def from_manifests(cls, manifests: Manifests) -> PolicyEngine:
        engine = cls()
        engine.load(manifests)
        return engine

    def load(self, manifests: Manifests) -> None:
        for ns in manifests.namespaces:
            if ns.declared:
                self.upsert_namespace(ns)
        for node in manifests.nodes:
            self.upsert_node(node)
        for pod in manifests.pods:
            self.upsert_pod(pod)
        for policy in manifests.policies:
            self.upsert_policy(policy)
        for admin in manifests.admin_policies:
            self.upsert_admin_policy(admin)
        if manifests.baseline_policy is not None:
            self.upsert_admin_policy(manifests.baseline_policy)

    # -- graph callbacks -------------------------------------------------------------------------

    def _on_group_added(self, group: GroupId, key: GroupKey) -> None:
        self._selected_by[group] = set()
        self._index.update_item(group, pod_view(self.namespace_labels(key.namespace), key.labels))

    def _on_group_removed(self, group: GroupId, key: GroupKey) -> None:
        self._index.update_item(group, None)
        del self._selected_by[group]
        self._forget_chains(group)

    def _on_match_started(self, selector: EndpointSelector, group: GroupId) -> None:
        users = self._subject_users.get(selector)
        if users:
            self._selected_by[group] |= users
            self._forget_chains(group)

    def _on_match_stopped(self, selector: EndpointSelector, group: GroupId) -> None:
        users = self._subject_users.get(selector)
        if users:
            self._selected_by[group] -= users
            self._forget_chains(group)

    def _forget_chains(self, group: GroupId) -> None:
        if not self._chains:  # a bulk load asks once per (policy, selected group), before any chain
            return
        self._chains.pop((group, Direction.INGRESS), None)
        self._chains.pop((group, Direction.EGRESS), None)

    # -- namespaces and nodes --------------------------------------------------------------------

    def namespace_labels(self, name: str) -> Labels:
        ns = self._namespaces.get(name)
        return ns.labels if ns is not None else Labels({NAMESPACE_NAME_LABEL: name})

    def upsert_namespace(self, namespace: Namespace) -> None:
        self.generation += 1
        self._namespaces[namespace.name] = namespace
        self._relabel_namespace(namespace.name)

    def delete_namespace(self, name: str) -> None:
        """Forget the namespace's labels (its pods, if any remain, see only the name label)."""
        self.generation += 1
        if self._namespaces.pop(name, None) is not None:
            self._relabel_namespace(name)

    def _relabel_namespace(self, name: str) -> None:
        labels = self.namespace_labels(name)
        for group in self._groups.in_namespace(name):
            self._index.update_item(group, pod_view(labels, self._groups.key_of(group).labels))

    def upsert_node(self, node: Node) -> None:
        self.generation += 1
        self.delete_node(node.name)
        self._nodes[node.name] = node
        for ip in node.ips:
            self._node_by_ip[ip] = node.name

    def delete_node(self, name: str) -> None:
        self.generation += 1
        old = self._nodes.pop(name, None)
        for ip in old.ips if old else ():
            if self._node_by_ip.get(ip) == name:
                del self._node_by_ip[ip]

    # -- pods --------------------------------------------------------------------------------------

    def upsert_pod(self, pod: Pod) -> None:
        self.generation += 1
        self._forget_addresses(pod.key)
        self._pods[pod.key] = pod
        for ip in pod.ips:
            self._pod_by_ip[ip] = pod.key
        self._groups.put(pod)

    def delete_pod(self, key: PodKey) -> None:
        self.generation += 1
        self._forget_addresses(key)
        self._pods.pop(key, None)
        self._groups.remove(key)

    def _forget_addresses(self, key: PodKey) -> None:
        old = self._pods.get(key)
        for ip in old.ips if old else ():
            if self._pod_by_ip.get(ip) == key:
                del self._pod_by_ip[ip]

    # -- policies ----------------------------------------------------------------------------------

    def upsert_policy(self, policy: NetworkPolicy) -> None:
        self._put_compiled(compile_network_policy(policy))

    def delete_policy(self, key: PolicyKey) -> None:
        self._drop_compiled((Tier.NETWORK, key))

    def upsert_admin_policy(self, policy: AdminNetworkPolicy) -> None:
        """An AdminNetworkPolicy, or (priority None) the BaselineAdminNetworkPolicy."""
        compiled = compile_admin_policy(policy)
        if compiled.tier is Tier.BASELINE:
            for ref in [r for r in self._policies if r[0] is Tier.BASELINE]:
                self._drop_compiled(ref)
        self._put_compiled(compiled)

    def delete_admin_policy(self, name: str, *, baseline: bool = False) -> None:
        self._drop_compiled((Tier.BASELINE if baseline else Tier.ADMIN, PolicyKey(name)))

    def _put_compiled(self, policy: CompiledPolicy) -> None:
        ref = (policy.tier, policy.key)
        self._drop_compiled(ref)
        self.generation += 1
        self._policies[ref] = policy
        self._subject_users.setdefault(policy.subject, set()).add(ref)
        if policy.subject in self._index:
            for group in self._index.items_matching(policy.subject):
                self._selected_by[group].add(ref)
                self._forget_chains(group)
        for selector in policy.selectors():
            self._selector_refs[selector] += 1
            if self._selector_refs[selector] == 1:
                self._index.add_selector(selector)

    def _drop_compiled(self, ref: PolicyRef) -> None:
        policy = self._policies.pop(ref, None)
        if policy is None:
            return
        self.generation += 1
        users = self._subject_users[policy.subject]
        users.discard(ref)
        if not users:
            del self._subject_users[policy.subject]
        for group in self._index.items_matching(policy.subject):
            self._selected_by[group].discard(ref)
            self._forget_chains(group)
        for selector in policy.selectors():
            self._selector_refs[selector] -= 1
            if self._selector_refs[selector] == 0:
                del self._selector_refs[selector]
                self._index.remove_selector(selector)

    # -- reading the graph -------------------------------------------------------------------------

    def chain(self, group: int, direction: Direction) -> Chain:
        key = (GroupId(group), direction)
        found = self._chains.get(key)
        if found is None:
            found = self._chains[key] = self._build_chain(key[0], direction)
        return found

    def _build_chain(self, group: GroupId, direction: Direction) -> Chain:
        admin: list[CompiledPolicy] = []
        network: list[CompiledPolicy] = []
        baseline: CompiledPolicy | None = None
        for ref in self._selected_by[group]:
            policy = self._policies[ref]
            if direction not in policy.directions:
                continue
            if policy.tier is Tier.ADMIN:
                admin.append(policy)
            elif policy.tier is Tier.NETWORK:
                network.append(policy)
            else:
                baseline = policy
        admin.sort(key=CompiledPolicy.sort_key)
        network.sort(key=CompiledPolicy.sort_key)
        return Chain(tuple(admin), tuple(network), baseline)

    def selector_matches(self, selector: EndpointSelector, group: int) -> bool:
        return self._index.matches(selector, GroupId(group))

    def groups(self) -> PodGroups:
        return self._groups

    def index(self) -> SelectorIndex[GroupId]:
        return self._index

    def pods(self) -> dict[PodKey, Pod]:
        """Every pod by key (the engine's own mapping: do not modify)."""
        return self._pods

    def pod(self, key: str) -> Pod:
        found = self._pods.get(PodKey(key))
        if found is None:
            raise NotFoundError(f"pod `{key}` is not in the loaded manifests")
        return found

    def policies(self) -> list[CompiledPolicy]:
        return [self._policies[r] for r in sorted(self._policies)]

    def nodes(self) -> dict[str, Node]:
        return self._nodes

    def warnings(self) -> list[str]:
        """Things upstream leaves undefined that the engine resolved by a documented rule."""
        return list(self._current_warnings())

    def _current_warnings(self) -> tuple[str, ...]:
        """`warnings()`, computed once per generation: every verdict carries them, and sorting
        every policy per verdict was 90% of `explain` at 1k policies."""
        generation, found = self._warnings
        if generation != self.generation:
            found = tuple(self._find_warnings())
            self._warnings = (self.generation, found)
        return found

    def _find_warnings(self) -> list[str]:
        by_priority: dict[int, list[str]] = {}
        for (tier, key), policy in sorted(self._policies.items()):
            if tier is Tier.ADMIN:
                by_priority.setdefault(policy.priority, []).append(key)
        return [
            f"AdminNetworkPolicies {', '.join(f'`{n}`' for n in names)} share priority {prio}: "
            "upstream leaves their order undefined; kanal evaluates them by name"
            for prio, names in sorted(by_priority.items())
            if len(names) > 1
        ]

    # -- verdicts ----------------------------------------------------------------------------------

    def endpoint(self, spec: str | IPAddress) -> Endpoint:
        """`ns/name` of a pod (its address is chosen per connection), or an address (a pod's
        address means that pod, with that address)."""
        return Endpoint(*self._resolve(spec))

    def _resolve(self, spec: str | IPAddress) -> _Resolved:
        if isinstance(spec, str) and "/" in spec:
            return None, self.pod(spec), self._groups.group_of(PodKey(spec)), None
        ip = spec if not isinstance(spec, str) else _parse_ip(spec)
        owner = self._pod_by_ip.get(ip)
        if owner is not None:
            return ip, self._pods[owner], self._groups.group_of(owner), None
        return ip, None, None, self._nodes.get(self._node_by_ip.get(ip, ""))

    def connection(
        self, source: str | IPAddress, destination: str | IPAddress, port: int, protocol: Protocol
    ) -> Connection:
        """Both ends resolved, with the addresses a packet between them would carry."""
        src, dst = self._resolve(source), self._resolve(destination)
        src_ip, dst_ip = _address_pair(src, dst)
        return Connection(
            Endpoint(src_ip, src[1], src[2], src[3]),
            Endpoint(dst_ip, dst[1], dst[2], dst[3]),
            port,
            protocol,
        )

    def explain(
        self,
        source: str | IPAddress,
        destination: str | IPAddress,
        port: int,
        protocol: Protocol = Protocol.TCP,
    ) -> Verdict:
        conn = self.connection(source, destination, port, protocol)
        return self.judge(conn)

    def judge(self, conn: Connection) -> Verdict:
        return Verdict(
            source=conn.source.describe(),
            destination=conn.destination.describe(),
            port=conn.port,
            protocol=conn.protocol,
            egress=decide(self, Direction.EGRESS, conn),
            ingress=decide(self, Direction.INGRESS, conn),
            warnings=self._current_warnings(),
        )

    def allowed(self, conn: Connection) -> bool:
        """The verdict alone: from the group rows (`kanal.engine.rows`) for pod pairs whose
        chains allow it, else by walking the rules as `judge` does."""
        src, dst = conn.source, conn.destination
        if src.group is not None and dst.group is not None and src.pod is not dst.pod:
            egress = self._rows.decide(
                Direction.EGRESS, src.group, dst.group, conn.port, conn.protocol
            )
            if egress is False:
                return False
            ingress = self._rows.decide(
                Direction.INGRESS, dst.group, src.group, conn.port, conn.protocol
            )
            if ingress is not None and egress is not None:
                return ingress
        egress_decision = decide(self, Direction.EGRESS, conn)
        return egress_decision.allowed and decide(self, Direction.INGRESS, conn).allowed

    # -- for tests: the derived state, independent of ids and arrival order -----------------------

    def snapshot(self) -> dict[str, Any]:
        def group_name(g: GroupId) -> str:
            key = self._groups.key_of(g)
            return f"{key.namespace}|{sorted(key.labels.items())}|{key.ports}"

        return {
            "groups": {
                group_name(g): sorted(self._groups.members(g)) for g in self._groups.groups()
            },
            "selectors": {
                s.describe(): sorted(group_name(g) for g in self._index.items_matching(s))
                for s in self._index.selectors()
            },
            "selected_by": {
                group_name(g): sorted(f"{t}:{k}" for t, k in refs)
                for g, refs in self._selected_by.items()
            },
        }


def _parse_ip(spec: str) -> IPAddress:
    try:
        return ipaddress.ip_address(spec)
    except ValueError:
        raise NotFoundError(
            f"`{spec}` is neither a pod (NAMESPACE/NAME) nor an IP address"
        ) from None


def _primary_ip(ips: Iterable[IPAddress]) -> IPAddress | None:
    ordered = sorted(ips, key=lambda ip: ip.version)
    return ordered[0] if ordered else None


def _address_pair(src: _Resolved, dst: _Resolved) -> tuple[IPAddress | None, IPAddress | None]:
    """The addresses a real packet would carry: one family for both ends, IPv4 preferred."""
    src_ips, dst_ips = _candidates(src), _candidates(dst)
    if len(src_ips) == 1 and len(dst_ips) == 1 and src_ips[0].version == dst_ips[0].version:
        return src_ips[0], dst_ips[0]  # the common case, and what the loop below would choose
    for version in (4, 6):
        s = next((ip for ip in src_ips if ip.version == version), None)
        d = next((ip for ip in dst_ips if ip.version == version), None)
        if s is not None and d is not None:
            return s, d
    return _primary_ip(src_ips), _primary_ip(dst_ips)


def _candidates(resolved: _Resolved) -> tuple[IPAddress, ...]:
    ip, pod = resolved[0], resolved[1]
    if ip is not None:
        return (ip,)
    return pod.ips if pod is not None else ()
