"""A seeded synthetic cluster for the engine benchmark, built directly as model objects.

The shape follows what real clusters look like to a policy engine:

```
namespaces   3 system ones (kube-system, monitoring, ingress-nginx) + N application namespaces
             labelled team / env (+ pod-security, istio-injection on some), skewed in size
pods         from deployments: replicas share app / tier / version / pod-template-hash, so a
             replica set is one group (10k pods -> a few thousand groups); some deployments are
             mid-rollout (two replica sets); some databases are StatefulSets (one group per pod);
             named container ports per tier; IPv4 from a per-node /24 in 10.0.0.0/8, a few
             dual-stack pods with an address in fd00::/64
policies     per namespace: default-deny ingress (most), default-deny egress + allow-DNS (some),
             then allow-by-app, allow-by-tier with matchExpressions, cross-namespace with
             namespaceSelector (+ podSelector), monitoring scrapes on a named port, ipBlock
             egress with except and endPort ranges
admin        optional: AdminNetworkPolicies at distinct priorities in 0..999 with Allow, Deny and
             Pass rules, the three port forms and `networks` peers; optional BANP `default`
```

Every random choice comes from one `random.Random(seed)` and nothing iterates a set of strings,
so a seed gives the same cluster in every process. This module builds objects only: it does not
load them into an engine or measure anything (`bench_engine.py` does).
"""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass, field

from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    ContainerPort,
    Direction,
    IPAddress,
    IPBlock,
    Labels,
    LabelSelector,
    Manifests,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
    Requirement,
)

TCP, UDP = Protocol.TCP, Protocol.UDP
TEAMS = ["payments", "search", "identity", "catalog", "checkout", "growth", "data", "ml",
         "media", "billing", "support", "infra", "mobile", "ads", "risk", "ledger"]
ENVS = ["prod", "prod", "staging", "dev"]
PRODUCTS = ["core", "api", "web", "edge", "batch", "stream", "portal", "hub", "sync", "jobs"]
APPS = {
    "frontend": ["web", "ui", "gateway", "bff", "storefront"],
    "backend": ["api", "orders", "users", "auth", "cart", "search", "pricing", "inventory"],
    "worker": ["worker", "consumer", "scheduler", "indexer", "mailer"],
    "db": ["postgres", "mysql"],
    "cache": ["redis", "memcached"],
}
TIER_WEIGHTS = {"frontend": 2, "backend": 5, "worker": 2, "db": 1, "cache": 1}
REPLICAS = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5, 6, 8, 10, 15, 25]
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SYSTEM = ("kube-system", "monitoring", "ingress-nginx")
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def _ports(tier: str, app: str, rng: random.Random) -> tuple[ContainerPort, ...]:
    metrics = ContainerPort(9090, TCP, "metrics")
    http = ContainerPort(8080, TCP, "http")
    match tier:
        case "frontend":
            return (http, metrics)
        case "backend":
            extra = (ContainerPort(8081, TCP, "admin"),) if rng.random() < 0.2 else ()
            return (http, ContainerPort(50051, TCP, "grpc"), metrics, *extra)
        case "worker":
            return (metrics,)
        case "db":
            port = 5432 if app.startswith("postgres") else 3306
            return (ContainerPort(port, TCP, "sql"), ContainerPort(9187, TCP, "metrics"))
        case _:
            port = 6379 if app.startswith("redis") else 11211
            return (ContainerPort(port, TCP, "cache"), ContainerPort(9121, TCP, "metrics"))


@dataclass(frozen=True)
class ClusterSpec:
    pods: int
    policies: int
    namespaces: int | None = None
    """Application namespaces (the 3 system ones come on top); default pods // 100, min 3."""
    admin_policies: int = 0
    baseline: bool = False
    seed: int = 1
    pods_per_node: int = 50
    dual_stack: float = 0.02

    @property
    def app_namespaces(self) -> int:
        return self.namespaces if self.namespaces is not None else max(3, self.pods // 100)

    @property
    def nodes(self) -> int:
        return max(3, math.ceil(self.pods / self.pods_per_node))


@dataclass
class Deployment:
    namespace: str
    app: str
    tier: str
    ports: tuple[ContainerPort, ...]


@dataclass
class _Builder:
    """Mutable state while generating: the objects so far and what policies may refer to."""

    spec: ClusterSpec
    rng: random.Random
    namespaces: list[Namespace] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    deployments: dict[str, list[Deployment]] = field(default_factory=dict)
    node_fill: list[int] = field(default_factory=list)

    # -- names and addresses -----------------------------------------------------------------

    def token(self, n: int) -> str:
        return "".join(self.rng.choice(HASH_ALPHABET) for _ in range(n))

    def place(self) -> tuple[str, tuple[IPAddress, ...]]:
        """A node with room (random, then the next one) and the pod's addresses there."""
        node = self.rng.randrange(len(self.node_fill))
        while self.node_fill[node] >= 254:
            node = (node + 1) % len(self.node_fill)
        self.node_fill[node] += 1
        host = self.node_fill[node]
        v4 = ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + (node + 1) * 256 + host)
        ips: tuple[IPAddress, ...] = (v4,)
        if self.rng.random() < self.spec.dual_stack:
            ips = (v4, ipaddress.IPv6Address(f"fd00::{node + 1:x}:{host:x}"))
        return f"node-{node:04d}", ips

    # -- namespaces and pods -----------------------------------------------------------------

    def namespace(self, name: str, labels: dict[str, str]) -> None:
        self.namespaces.append(Namespace(name, Labels({**labels, NAMESPACE_NAME_LABEL: name})))
        self.deployments[name] = []

    def app_namespaces(self) -> None:
        taken = set(SYSTEM)
        for _ in range(self.spec.app_namespaces):
            team, env = self.rng.choice(TEAMS), self.rng.choice(ENVS)
            base = f"{team}-{self.rng.choice(PRODUCTS)}-{env}"
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
            labels = {"team": team, "env": env}
            if self.rng.random() < 0.3:
                labels["istio-injection"] = "enabled"
            if self.rng.random() < 0.5:
                labels["pod-security.kubernetes.io/enforce"] = self.rng.choice(
                    ["baseline", "restricted"]
                )
            self.namespace(name, labels)

    def replica_set(self, d: Deployment, replicas: int, version: str) -> None:
        template = self.token(10)
        labels = Labels({"app": d.app, "tier": d.tier, "version": version,
                         "pod-template-hash": template})
        for _ in range(replicas):
            node, ips = self.place()
            name = f"{d.app}-{template}-{self.token(5)}"
            self.pods.append(Pod(d.namespace, name, labels, d.ports, node, ips))

    def stateful_set(self, d: Deployment, replicas: int) -> None:
        revision = f"{d.app}-{self.token(10)}"
        for i in range(replicas):
            node, ips = self.place()
            labels = Labels({"app": d.app, "tier": d.tier, "controller-revision-hash": revision,
                             "statefulset.kubernetes.io/pod-name": f"{d.app}-{i}"})
            self.pods.append(Pod(d.namespace, f"{d.app}-{i}", labels, d.ports, node, ips))

    def deployment(self, namespace: str, budget: int) -> int:
        """One deployment (or StatefulSet) of at most `budget` pods; returns how many."""
        tier = self.rng.choices(list(TIER_WEIGHTS), weights=list(TIER_WEIGHTS.values()))[0]
        existing = {d.app for d in self.deployments[namespace]}
        app = base = self.rng.choice(APPS[tier])
        n = 1
        while app in existing:
            n += 1
            app = f"{base}-{n}"
        d = Deployment(namespace, app, tier, _ports(tier, app, self.rng))
        self.deployments[namespace].append(d)
        replicas = min(budget, self.rng.choice(REPLICAS))
        if tier == "db" and self.rng.random() < 0.5:
            self.stateful_set(d, min(replicas, 3))
            return min(replicas, 3)
        version = self.rng.randint(1, 5)
        if replicas >= 2 and self.rng.random() < 0.1:  # mid-rollout: two replica sets
            old = replicas // 2
            self.replica_set(d, old, f"v{version}")
            self.replica_set(d, replicas - old, f"v{version + 1}")
        else:
            self.replica_set(d, replicas, f"v{version}")
        return replicas

    def system_pods(self) -> int:
        scale = max(2, self.spec.pods // 2000)
        dns = Deployment("kube-system", "coredns", "system", (
            ContainerPort(53, UDP, "dns"), ContainerPort(53, TCP, "dns-tcp"),
            ContainerPort(9153, TCP, "metrics")))
        prom = Deployment("monitoring", "prometheus", "system", (ContainerPort(9090, TCP, "web"),))
        ingress = Deployment("ingress-nginx", "ingress-nginx", "system", (
            ContainerPort(80, TCP, "http"), ContainerPort(443, TCP, "https"),
            ContainerPort(10254, TCP, "metrics")))
        for d in (dns, prom, ingress):
            self.deployments[d.namespace].append(d)
        self.replica_set(dns, scale, "v1")
        self.stateful_set(prom, 2)
        self.replica_set(ingress, scale, "v1")
        return 2 * scale + 2

    def app_pods(self, budget: int) -> None:
        names = [ns.name for ns in self.namespaces if ns.name not in SYSTEM]
        weights = [self.rng.paretovariate(1.5) for _ in names]
        total = sum(weights)
        shares = [max(1, int(budget * w / total)) for w in weights]
        shares[-1] = max(1, budget - sum(shares[:-1]))
        for name, share in zip(names, shares, strict=True):
            left = share
            while left > 0:
                left -= self.deployment(name, left)


def generate(spec: ClusterSpec) -> Manifests:
    """The cluster of `spec`: the same objects for the same spec, in every process."""
    builder = _Builder(spec, random.Random(spec.seed), node_fill=[0] * spec.nodes)
    builder.namespace("kube-system", {})
    builder.namespace("monitoring", {"team": "platform", "env": "prod"})
    builder.namespace("ingress-nginx", {"team": "platform", "env": "prod"})
    builder.app_namespaces()
    builder.app_pods(max(0, spec.pods - builder.system_pods()))
    del builder.pods[spec.pods:]
    return Manifests(
        namespaces=tuple(builder.namespaces),
        pods=tuple(builder.pods),
        policies=network_policies(builder, spec.policies),
        admin_policies=admin_policies(builder, spec.admin_policies),
        baseline_policy=baseline_policy(builder) if spec.baseline else None,
        nodes=tuple(_nodes(spec.nodes)),
    )


def _nodes(count: int) -> list[Node]:
    zones = ["zone-a", "zone-b", "zone-c"]
    base = int(ipaddress.IPv4Address("172.16.0.0"))
    return [
        Node(f"node-{k:04d}",
             Labels({"kubernetes.io/hostname": f"node-{k:04d}",
                     "topology.kubernetes.io/zone": zones[k % 3]}),
             (ipaddress.IPv4Address(base + k + 1),))
        for k in range(count)
    ]


# -- NetworkPolicies ---------------------------------------------------------------------------


def sel(match: dict[str, str] | None = None, *reqs: Requirement) -> LabelSelector:
    return LabelSelector(Labels(match or {}), tuple(reqs))


def req(key: str, op: Operator, *values: str) -> Requirement:
    return Requirement(key, op, frozenset(values))


def _ns_name(name: str) -> LabelSelector:
    return sel({NAMESPACE_NAME_LABEL: name})


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


INGRESS_ONLY = frozenset({Direction.INGRESS})
EGRESS_ONLY = frozenset({Direction.EGRESS})
BOTH = frozenset(Direction)


def _ingress(ns: str, name: str, subject: LabelSelector, *rules: PolicyRule) -> NetworkPolicy:
    return NetworkPolicy(ns, name, subject, INGRESS_ONLY, ingress=rules)


def _egress(ns: str, name: str, subject: LabelSelector, *rules: PolicyRule) -> NetworkPolicy:
    return NetworkPolicy(ns, name, subject, EGRESS_ONLY, egress=rules)


def _rule(*peers: PolicyPeer, ports: tuple[PolicyPort, ...] = ()) -> PolicyRule:
    return PolicyRule(peers, ports)


def _port_of(d: Deployment, rng: random.Random, *, named: float = 0.5) -> PolicyPort:
    """A port `d` serves, by name or number (metrics ports mostly left to scrape policies)."""
    served = [p for p in d.ports if p.name != "metrics"] or list(d.ports)
    p = rng.choice(served)
    return PolicyPort(p.protocol, p.name if p.name and rng.random() < named else p.port)


def _subject(d: Deployment, rng: random.Random) -> LabelSelector:
    if d.tier != "system" and rng.random() < 0.15:  # a canary-only policy
        return sel({"app": d.app}, req("version", Operator.NOT_IN, "v1"))
    return sel({"app": d.app})


@dataclass
class _PolicyContext:
    b: _Builder
    ns: Namespace
    name: str

    @property
    def rng(self) -> random.Random:
        return self.b.rng

    def deployment(self, namespace: str | None = None) -> Deployment:
        return self.rng.choice(self.b.deployments[namespace or self.ns.name])

    def other_namespace(self) -> Namespace:
        apps = [n for n in self.b.namespaces if n.name not in SYSTEM and self.b.deployments[n.name]]
        return self.rng.choice(apps)


def allow_app(c: _PolicyContext) -> NetworkPolicy:
    """`app=dst` admits `app=src` of its own namespace on one of its ports."""
    dst, src = c.deployment(), c.deployment()
    peer = PolicyPeer(pod_selector=sel({"app": src.app}))
    return _ingress(c.ns.name, c.name, _subject(dst, c.rng),
                    _rule(peer, ports=(_port_of(dst, c.rng),)))


def allow_tier(c: _PolicyContext) -> NetworkPolicy:
    """A tier admits the tiers in front of it (matchExpressions In), by port number."""
    dst = c.deployment()
    front = {"frontend": ["frontend"], "backend": ["frontend", "backend"]}.get(
        dst.tier, ["backend", "worker"])
    peer = PolicyPeer(pod_selector=sel(None, req("tier", Operator.IN, *front)))
    return _ingress(c.ns.name, c.name, sel({"tier": dst.tier}),
                    _rule(peer, ports=(_port_of(dst, c.rng, named=0),)))


def cross_namespace(c: _PolicyContext) -> NetworkPolicy:
    """Admits a team's (or one namespace's) pods, optionally only one app of theirs."""
    dst, other = c.deployment(), c.other_namespace()
    if c.rng.random() < 0.5:
        namespaces = sel({"team": other.labels["team"]})
    else:
        namespaces = _ns_name(other.name)
    pods = sel({"app": c.deployment(other.name).app}) if c.rng.random() < 0.5 else None
    peer = PolicyPeer(pod_selector=pods, namespace_selector=namespaces)
    return _ingress(c.ns.name, c.name, _subject(dst, c.rng),
                    _rule(peer, ports=(_port_of(dst, c.rng),)))


def allow_scrape(c: _PolicyContext) -> NetworkPolicy:
    """Prometheus scrapes the named `metrics` port of every pod that has a tier."""
    peer = PolicyPeer(sel({"app": "prometheus"}), _ns_name("monitoring"))
    subject = sel(None, req("tier", Operator.EXISTS)) if c.rng.random() < 0.5 else sel()
    return _ingress(c.ns.name, c.name, subject,
                    _rule(peer, ports=(PolicyPort(TCP, "metrics"),)))


def allow_ingress_controller(c: _PolicyContext) -> NetworkPolicy:
    peer = PolicyPeer(namespace_selector=_ns_name("ingress-nginx"))
    return _ingress(c.ns.name, c.name, sel({"tier": "frontend"}),
                    _rule(peer, ports=(PolicyPort(TCP, 8080),)))


def ip_block_egress(c: _PolicyContext) -> NetworkPolicy:
    """Egress to the internet (not the private ranges), a database subnet, or a port range."""
    src, rng = c.deployment(), c.rng
    match rng.randrange(4):
        case 0:
            block = IPBlock(_cidr("0.0.0.0/0"), tuple(_cidr(p) for p in PRIVATE))
            ports: tuple[PolicyPort, ...] = (PolicyPort(TCP, 443),)
        case 1:
            block = IPBlock(_cidr(f"10.250.{rng.randrange(256)}.0/24"))
            ports = (PolicyPort(TCP, 5432), PolicyPort(TCP, 3306))
        case 2:
            k = rng.randrange(1, 8)
            block = IPBlock(_cidr(f"10.{k}.0.0/16"), (_cidr(f"10.{k}.{rng.randrange(256)}.0/24"),))
            ports = (PolicyPort(TCP, 8000, 8999),)
        case _:
            block = IPBlock(_cidr("::/0"), (_cidr("fd00::/8"),))
            ports = (PolicyPort(TCP, 443),)
    return _egress(c.ns.name, c.name, _subject(src, rng),
                   _rule(PolicyPeer(ip_block=block), ports=ports))


def expressions(c: _PolicyContext) -> NetworkPolicy:
    """matchExpressions of every operator, with an endPort range."""
    subject = sel(None, req("tier", Operator.IN, "backend", "worker"),
                  req("version", Operator.NOT_IN, "v1"))
    peer = PolicyPeer(
        pod_selector=sel(None, req("app", Operator.EXISTS)),
        namespace_selector=sel(None, req("env", Operator.NOT_IN, "dev"),
                               req("team", Operator.EXISTS)),
    )
    return _ingress(c.ns.name, c.name, subject,
                    _rule(peer, ports=(PolicyPort(TCP, 8080, 8090),)))


def egress_to_service(c: _PolicyContext) -> NetworkPolicy:
    src, other = c.deployment(), c.other_namespace()
    dst = c.deployment(other.name)
    peer = PolicyPeer(sel({"app": dst.app}), sel({"team": other.labels["team"]}))
    return _egress(c.ns.name, c.name, _subject(src, c.rng),
                   _rule(peer, ports=(_port_of(dst, c.rng),)))


SHAPES = [
    (allow_app, 30), (allow_tier, 10), (cross_namespace, 20), (allow_scrape, 6),
    (allow_ingress_controller, 6), (ip_block_egress, 12), (expressions, 6),
    (egress_to_service, 10),
]


def _namespace_defaults(ns: str, rng: random.Random) -> list[NetworkPolicy]:
    found: list[NetworkPolicy] = []
    if rng.random() < 0.85:
        found.append(_ingress(ns, "default-deny-ingress", sel()))
    if rng.random() < 0.35:
        found.append(_egress(ns, "default-deny-egress", sel()))
        dns = PolicyPeer(sel({"app": "coredns"}), _ns_name("kube-system"))
        found.append(_egress(ns, "allow-dns", sel(), _rule(
            dns, ports=(PolicyPort(UDP, 53), PolicyPort(TCP, 53)))))
    if rng.random() < 0.2:
        found.append(_ingress(ns, "allow-same-namespace", sel(),
                              _rule(PolicyPeer(pod_selector=sel()))))
    return found


def network_policies(b: _Builder, count: int) -> tuple[NetworkPolicy, ...]:
    """Per-namespace defaults first (sampled down if they alone exceed `count`), then shaped
    policies in namespaces chosen by their number of deployments."""
    apps = [n for n in b.namespaces if n.name not in SYSTEM and b.deployments[n.name]]
    policies = [p for ns in apps for p in _namespace_defaults(ns.name, b.rng)]
    if len(policies) > count:
        policies = b.rng.sample(policies, count)
    weights = [len(b.deployments[n.name]) for n in apps]
    shapes, shape_weights = zip(*SHAPES, strict=True)
    while apps and len(policies) < count:
        ns = b.rng.choices(apps, weights)[0]
        shape = b.rng.choices(shapes, shape_weights)[0]
        name = f"{shape.__name__.replace('_', '-')}-{len(policies):05d}"
        policies.append(shape(_PolicyContext(b, ns, name)))
    return tuple(policies)


# -- AdminNetworkPolicies ----------------------------------------------------------------------


def _team(b: _Builder) -> LabelSelector:
    return sel({"team": b.rng.choice(TEAMS)})


def _admin_rules(b: _Builder, kind: int) -> tuple[tuple[AdminRule, ...], tuple[AdminRule, ...]]:
    """(ingress, egress) rules of one of seven admin policy shapes."""
    allow, deny, pass_ = AdminAction.ALLOW, AdminAction.DENY, AdminAction.PASS
    prometheus = AdminPeer(_ns_name("monitoring"), sel({"app": "prometheus"}))
    team = _team(b)
    match kind:
        case 0:
            return (AdminRule("deny-from-dev", deny, (AdminPeer(sel({"env": "dev"})),)),), ()
        case 1:
            peer = AdminPeer(team)
            return ((AdminRule("pass-own-team", pass_, (peer,)),),
                    (AdminRule("pass-to-own-team", pass_, (peer,)),))
        case 2:
            return (AdminRule("allow-scrape", allow, (prometheus,),
                              (AdminPort(None, "metrics"),)),), ()
        case 3:
            metadata = AdminPeer(networks=(_cidr("169.254.169.254/32"), _cidr("fd00:ec2::254/128")))
            return (), (AdminRule("deny-metadata", deny, (metadata,)),)
        case 4:
            dns = AdminPeer(_ns_name("kube-system"), sel({"app": "coredns"}))
            ports = (AdminPort(UDP, 53), AdminPort(TCP, 53))
            return (), (AdminRule("allow-dns", allow, (dns,), ports),)
        case 5:
            subnet = AdminPeer(networks=(_cidr(f"10.250.{b.rng.randrange(256)}.0/24"),))
            everywhere = AdminPeer(networks=(_cidr("0.0.0.0/0"), _cidr("::/0")))
            return ((AdminRule("deny-dev", deny, (AdminPeer(sel({"env": "dev"})),)),),
                    (AdminRule("allow-db-subnet", allow, (subnet,), (AdminPort(TCP, 5432, 5433),)),
                     AdminRule("pass-cluster", pass_, (AdminPeer(sel()),)),
                     AdminRule("deny-outside", deny, (everywhere,))))
        case _:
            node_ports = (AdminPort(TCP, 30000, 32767), AdminPort(UDP, 30000, 32767))
            return (AdminRule("deny-node-ports", deny, (AdminPeer(sel()),), node_ports),), ()


def _admin_subject(b: _Builder, kind: int) -> AdminSubject:
    if kind == 5:
        return AdminSubject(_team(b), sel({"tier": "db"}))
    if kind in (1, 6):
        return AdminSubject(_team(b))
    if kind == 2:
        return AdminSubject(sel(None, req("env", Operator.IN, "prod", "staging")))
    if kind == 0:
        return AdminSubject(sel({"env": "prod"}))
    return AdminSubject(sel(None, req("team", Operator.EXISTS)) if b.rng.random() < 0.5 else sel())


def admin_policies(b: _Builder, count: int) -> tuple[AdminNetworkPolicy, ...]:
    """`count` ANPs (at most 1000) at distinct priorities, by ascending priority."""
    priorities = sorted(b.rng.sample(range(1000), count))
    policies = []
    for i, priority in enumerate(priorities):
        kind = b.rng.randrange(7)
        ingress, egress = _admin_rules(b, kind)
        policies.append(AdminNetworkPolicy(
            f"anp-{i:03d}-shape{kind}", _admin_subject(b, kind), priority, ingress, egress))
    return tuple(policies)


def baseline_policy(b: _Builder) -> AdminNetworkPolicy:
    """Production namespaces refuse other namespaces unless a NetworkPolicy says otherwise."""
    del b
    subject = AdminSubject(sel(None, req("env", Operator.IN, "prod", "staging")))
    prometheus = AdminPeer(_ns_name("monitoring"), sel({"app": "prometheus"}))
    ingress = (
        AdminRule("allow-scrape", AdminAction.ALLOW, (prometheus,), (AdminPort(None, "metrics"),)),
        AdminRule("deny-other-namespaces", AdminAction.DENY, (AdminPeer(sel()),)),
    )
    egress = (AdminRule("deny-link-local", AdminAction.DENY,
                        (AdminPeer(networks=(_cidr("169.254.0.0/16"),)),)),)
    return AdminNetworkPolicy("default", subject, None, ingress, egress)
