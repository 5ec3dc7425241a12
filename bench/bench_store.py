"""Benchmark the SQLite datastore at cluster size and print a README table.

```
python bench/bench_store.py [--pods 10000] [--policies 1000] [--puts 300] [--seed 1]
```

```
generate.py cluster ─► raw documents (checked: they parse back to the same objects)
  ─► apply all in one transaction (fresh store) ─► a watcher polls every event from revision 0
  ─► a consumer lists everything ─► manifests() (parse everything)
  ─► one-object writes at that size: apply (configured), label (update), p50/p99
  ─► commit → seen by a watcher in another process, for two poll intervals, p50/p99
  ─► for comparison: one apply validating the whole stored union (full_validation=True)
```

Times are wall clock on this machine, the store in a fresh temporary directory on the local
disk. This is a benchmark, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generate import ClusterSpec, generate
from kanal.model.objects import (
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
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
)
from kanal.model.parse import parse_documents
from kanal.store.api import ObjectRef, Revision
from kanal.store.labels import parse_label_args, relabel
from kanal.store.sqlite import SqliteStore

Raw = dict[str, Any]
Row = tuple[str, str, str]

# -- model objects back to manifests ---------------------------------------------------------------


def selector(s: LabelSelector) -> Raw:
    raw: Raw = {}
    if s.match_labels:
        raw["matchLabels"] = dict(s.match_labels)
    if s.match_expressions:
        raw["matchExpressions"] = [
            {"key": r.key, "operator": r.operator.value}
            | ({"values": sorted(r.values)} if r.operator in (Operator.IN, Operator.NOT_IN) else {})
            for r in s.match_expressions
        ]
    return raw


def _meta(name: str, namespace: str = "", labels: Any = None) -> Raw:
    meta: Raw = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def namespace_doc(ns: Namespace) -> Raw:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns.name, labels=ns.labels)}


def node_doc(node: Node) -> Raw:
    addresses = [{"type": "InternalIP", "address": str(ip)} for ip in node.ips]
    meta = _meta(node.name, labels=node.labels)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta,
        "status": {"addresses": addresses},
    }


def pod_doc(pod: Pod) -> Raw:
    ports = [
        {"containerPort": p.port, "protocol": p.protocol.value}
        | ({"name": p.name} if p.name else {})
        for p in pod.ports
    ]
    spec: Raw = {"containers": [{"name": "app", "image": "registry.example/app:1", "ports": ports}]}
    if pod.node_name:
        spec["nodeName"] = pod.node_name
    status = {"podIP": str(pod.ips[0]), "podIPs": [{"ip": str(ip)} for ip in pod.ips]}
    meta = _meta(pod.name, pod.namespace, pod.labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def _peer(peer: PolicyPeer) -> Raw:
    raw: Raw = {}
    if peer.pod_selector is not None:
        raw["podSelector"] = selector(peer.pod_selector)
    if peer.namespace_selector is not None:
        raw["namespaceSelector"] = selector(peer.namespace_selector)
    if peer.ip_block is not None:
        block: Raw = {"cidr": str(peer.ip_block.cidr)}
        if peer.ip_block.excepts:
            block["except"] = [str(e) for e in peer.ip_block.excepts]
        raw["ipBlock"] = block
    return raw


def _port(port: PolicyPort) -> Raw:
    raw: Raw = {"protocol": port.protocol.value}
    if port.port is not None:
        raw["port"] = port.port
    if port.end_port is not None:
        raw["endPort"] = port.end_port
    return raw


def _rule(rule: PolicyRule, peers_key: str) -> Raw:
    raw: Raw = {}
    if rule.peers:
        raw[peers_key] = [_peer(p) for p in rule.peers]
    if rule.ports:
        raw["ports"] = [_port(p) for p in rule.ports]
    return raw


def policy_doc(policy: NetworkPolicy) -> Raw:
    spec: Raw = {
        "podSelector": selector(policy.pod_selector),
        "policyTypes": sorted(t.value for t in policy.policy_types),
    }
    if policy.ingress:
        spec["ingress"] = [_rule(r, "from") for r in policy.ingress]
    if policy.egress:
        spec["egress"] = [_rule(r, "to") for r in policy.egress]
    meta = _meta(policy.name, policy.namespace)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": spec,
    }


def _admin_peer(peer: AdminPeer) -> Raw:
    if peer.networks:
        return {"networks": [str(n) for n in peer.networks]}
    if peer.node_selector is not None:
        return {"nodes": selector(peer.node_selector)}
    assert peer.namespace_selector is not None
    if peer.pod_selector is None:
        return {"namespaces": selector(peer.namespace_selector)}
    return {
        "pods": {
            "namespaceSelector": selector(peer.namespace_selector),
            "podSelector": selector(peer.pod_selector),
        }
    }


def _admin_port(port: AdminPort) -> Raw:
    if isinstance(port.port, str):
        return {"namedPort": port.port}
    assert port.protocol is not None
    if port.end_port is not None:
        return {
            "portRange": {"protocol": port.protocol.value, "start": port.port, "end": port.end_port}
        }
    return {"portNumber": {"protocol": port.protocol.value, "port": port.port}}


def _admin_rule(rule: AdminRule, peers_key: str) -> Raw:
    raw: Raw = {
        "name": rule.name,
        "action": rule.action.value,
        peers_key: [_admin_peer(p) for p in rule.peers],
    }
    if rule.ports is not None:
        raw["ports"] = [_admin_port(p) for p in rule.ports]
    return raw


def admin_doc(policy: AdminNetworkPolicy) -> Raw:
    subject = policy.subject
    spec: Raw = {
        "subject": {"namespaces": selector(subject.namespace_selector)}
        if subject.pod_selector is None
        else {
            "pods": {
                "namespaceSelector": selector(subject.namespace_selector),
                "podSelector": selector(subject.pod_selector),
            }
        },
        "ingress": [_admin_rule(r, "from") for r in policy.ingress],
        "egress": [_admin_rule(r, "to") for r in policy.egress],
    }
    kind = "BaselineAdminNetworkPolicy" if policy.is_baseline else "AdminNetworkPolicy"
    if not policy.is_baseline:
        spec["priority"] = policy.priority
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": kind,
        "metadata": _meta(policy.name),
        "spec": spec,
    }


def cluster_documents(manifests: Manifests) -> list[tuple[str, object]]:
    """Every object of a generated cluster as a manifest document (source `generated`)."""
    docs: list[Raw] = [namespace_doc(n) for n in manifests.namespaces]
    docs += [node_doc(n) for n in manifests.nodes]
    docs += [pod_doc(p) for p in manifests.pods]
    docs += [policy_doc(p) for p in manifests.policies]
    docs += [admin_doc(p) for p in manifests.admin_policies]
    if manifests.baseline_policy is not None:
        docs.append(admin_doc(manifests.baseline_policy))
    return [("generated", doc) for doc in docs]


def check_round_trip(manifests: Manifests, docs: list[tuple[str, object]]) -> None:
    """The documents parse back to the generated objects (the parser orders them its way)."""
    parsed = parse_documents(docs)
    for field in ("namespaces", "pods", "policies", "admin_policies", "nodes"):
        assert set(getattr(parsed, field)) == set(getattr(manifests, field)), f"{field} differ"
    assert parsed.baseline_policy == manifests.baseline_policy


# -- measurements ----------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:.2f} ms / {p99 * 1000:.2f} ms"


def one_pod_puts(store: SqliteStore, pod: Raw, count: int) -> list[float]:
    """Apply the same pod `count` times, its label changing each time (each one configured)."""
    samples = []
    for i in range(count):
        doc = {
            **pod,
            "metadata": {
                **pod["metadata"],
                "labels": {**pod["metadata"].get("labels", {}), "bench": str(i)},
            },
        }
        samples.append(timed(lambda d=doc: store.apply([("bench", d)])))
    return samples


def one_pod_labels(store: SqliteStore, ref: ObjectRef, count: int) -> list[float]:
    samples = []
    for i in range(count):
        changes = parse_label_args([f"bench-label={i}"])
        change = lambda doc, c=changes: relabel(doc, c, overwrite=True).doc  # noqa: E731
        samples.append(timed(lambda ch=change: store.update(ref, ch)))
    return samples


WATCHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kanal.store.sqlite import SqliteStore
    store = SqliteStore(Path(sys.argv[1]), poll_interval=float(sys.argv[2]))
    since, last = store.revision(), int(sys.argv[3])
    print("ready", flush=True)
    while since < last:
        for event in store.poll(since, timeout=1.0):
            print(event.revision, time.monotonic(), flush=True)
            since = event.revision
    """
)


def watch_latency(path: Path, pod: Raw, *, interval: float, count: int) -> list[float]:
    """Commit → seen by a watcher in another process; writes spaced 0-20 ms at random, so the
    watcher is caught at any point of its sleep."""
    store = SqliteStore(path)
    first = store.revision() + 1
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(path), str(interval), str(first + count - 1)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "ready"
    committed: dict[int, float] = {}
    rng = random.Random(7)
    for i in range(count):
        time.sleep(rng.uniform(0, 0.02))
        doc = {**pod, "metadata": {**pod["metadata"], "labels": {"latency": f"{interval}-{i}"}}}
        revision = store.apply([("bench", doc)]).revision
        committed[revision] = time.monotonic()
    seen = dict(line.split() for line in watcher.stdout)
    watcher.wait()
    store.close()
    return [float(seen[str(r)]) - t for r, t in committed.items()]


def run(args: argparse.Namespace) -> list[Row]:
    spec = ClusterSpec(args.pods, args.policies, seed=args.seed)
    manifests = generate(spec)
    docs = cluster_documents(manifests)
    check_round_trip(manifests, docs)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "store.db"
        store = SqliteStore(path)
        summary = (
            f"{len(manifests.pods):,} pods, {len(manifests.policies):,} policies, "
            f"{len(manifests.namespaces)} ns, {len(manifests.nodes)} nodes"
        )
        rows.append(
            (
                "apply everything, one transaction",
                summary,
                f"{timed(lambda: store.apply(docs)):.2f} s",
            )
        )
        rows.append(
            (
                "  for reference: parse_documents of the same batch",
                f"{len(docs):,} documents",
                f"{timed(lambda: parse_documents(docs)):.2f} s",
            )
        )
        reader = SqliteStore(path)
        events: list[object] = []
        rows.append(
            (
                "watcher: poll every event from revision 0",
                f"{store.revision()} revision",
                f"{timed(lambda: events.extend(reader.poll(Revision(0)))):.2f} s "
                f"({len(events):,} events)",
            )
        )
        rows.append(("consumer: list everything", "", f"{timed(reader.list):.2f} s"))
        rows.append(
            ("manifests(): parse everything stored", "", f"{timed(reader.manifests):.2f} s")
        )
        pod = pod_doc(manifests.pods[len(manifests.pods) // 2])
        ref = ObjectRef("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        rows.append(
            (
                "put one pod (apply, configured), p50 / p99",
                f"{args.puts} puts",
                percentiles(one_pod_puts(store, pod, args.puts)),
            )
        )
        rows.append(
            (
                "label one pod (update), p50 / p99",
                f"{args.puts} updates",
                percentiles(one_pod_labels(store, ref, args.puts)),
            )
        )
        for interval in (0.005, 0.05):
            latency = watch_latency(path, pod, interval=interval, count=args.puts // 2)
            rows.append(
                (
                    f"commit → seen by another process, poll {interval * 1000:g} ms, p50 / p99",
                    f"{args.puts // 2} commits",
                    percentiles(latency),
                )
            )
        full = SqliteStore(path, full_validation=True)
        rows.append(
            (
                "put one pod validating the whole union (full_validation)",
                "3 puts",
                percentiles(one_pod_puts(full, pod, 3)),
            )
        )
        sizes = {p.suffix or ".db": p.stat().st_size / 2**20 for p in Path(directory).iterdir()}
        files = ", ".join(f"{suffix[1:]} {mib:.1f} MiB" for suffix, mib in sorted(sizes.items()))
        rows.append(("store files after the run", "", files))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--puts", type=int, default=300, help="samples per latency row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="where the temporary store goes (default: $TMPDIR)")
    args = parser.parse_args()
    rows = run(args)
    print(
        f"`python bench/bench_store.py --pods {args.pods} --policies {args.policies}`, "
        f"SQLite {__import__('sqlite3').sqlite_version}\n"
    )
    print("| operation | size | time |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
