"""Benchmark the node agent with the upstream metric names (issue 5 §4). Needs root.

```
python bench/bench_agent.py [--pods 10000] [--policies 1000] [--labels 200] [--local-labels 30]
                            [--policy-rounds 20] [--reach-pods 100] [--rate 20] [--json out.json]
                            [--sections scale,policy,reach]
```

```
scale    generate.py cluster (10k pods / 1k policies) ─► one SQLite store ─► `kanal agent` for
         one node in a throwaway netns (libnftables, the real table)
         agent start → first table loaded; label changes (`store.update`, kubectl label), one
         at a time (`QUIET_S` apart, so the runner's min interval never delays them), of a
         pod on another node (the set-patch path), of a pod on this node (`app` removed and
         put back: patched, with chains and sets added or removed when its verdicts gain
         their first or lose their last local pod: `restructured`), and of a pod on
         this node moved into another local group of its namespace and back (the local patch
         path): write started → the agent's kernel transaction returned; the agent's RSS
policy   a 2-node lab, client on node-1, server on node-2 behind a default deny:
         policy_enforcement_latency_policy_creation_seconds = allow policy written to the store
         → first successful TCP connection client → server (connect attempts every ~10 ms)
reach    a lab whose client pods are wired (as CNI would have done) but not in the store;
         pod_creation_reachability_latency_seconds = a pod's document written → its first
         successful connection to the server, pods written at --rate pods/s
```

"Kernel updated" in `scale` is the agent's own timestamp (`/status` history `at`, taken when
the libnftables transaction returned), compared with `time.time()` before the write: both are the
same clock. The first three label changes are also checked in the kernel (`nft list set`).
Connections in `policy` and `reach` are real: each attempt is a fresh TCP connect from the pod's
netns with a short timeout, so a SYN dropped by policy costs one attempt (the resolution).

This is a benchmark, not a test: nothing asserts a time. The machine has 2 busy cores; read
p99s as upper bounds. Targets from the issue: policy creation p99 ≤ 500 ms, pod reachability
p99 ≤ 1 s, label change → kernel p99 ≤ 20 ms, agent ≤ 300 MiB at 10k pods / 1k policies.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench_store import cluster_documents
from generate import ClusterSpec, generate
from kanal.agent import process
from kanal.agent.process import AgentSpec
from kanal.dataplane import links
from kanal.dataplane.netns import create_netns, delete_netns, entered, list_netns
from kanal.dataplane.nft import Nft
from kanal.engine import PolicyEngine
from kanal.engine.groups import GroupKey
from kanal.lab.enforce import open_store
from kanal.lab.lab import Lab
from kanal.lab.plan import HOST_IFNAME_PREFIX
from kanal.model.objects import Manifests, Pod
from kanal.render import render_node
from kanal.render.partial import render_with_dispatch
from kanal.store.api import Doc, ObjectRef
from kanal.store.sqlite import SqliteStore

WAIT_S = 300.0
ATTEMPT_TIMEOUT_S = 0.01
QUIET_S = 0.12
"""Pause before each label change: more than the agent's min interval (50 ms), so each change
is measured alone; back to back, a change waits up to that interval to be coalesced."""
PORT = 80

# -- numbers ---------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Metric:
    name: str
    what: str
    samples: list[float] = field(default_factory=list)
    unit: str = "s"
    target: float | None = None
    """The p99 (or the value) must be at most this."""
    note: str = ""

    def row(self) -> tuple[str, str, str, str, str, str]:
        if not self.samples:
            return (self.name, self.what, "-", "-", "0", self._target())
        if self.unit == "MiB":
            value = max(self.samples)
            met = "" if self.target is None else (" ✓" if value <= self.target else " ✗")
            return (self.name, self.what, f"{value:.0f} MiB", "", "1", self._target() + met)
        p50, p99 = statistics.median(self.samples), percentile(self.samples, 0.99)
        met = "" if self.target is None else (" ✓" if p99 <= self.target else " ✗")
        return (self.name, self.what, _ms(p50), _ms(p99), str(len(self.samples)),
                self._target() + met)

    def _target(self) -> str:
        if self.target is None:
            return ""
        return f"≤ {self.target:.0f} MiB" if self.unit == "MiB" else f"p99 ≤ {_ms(self.target)}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "what": self.what, "unit": self.unit, "target": self.target,
                "samples": self.samples, "note": self.note}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- an agent on a synthetic cluster ---------------------------------------------------------------


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def applied_at(spec: AgentSpec, pid: int, log_path: Path, revision: int) -> dict[str, Any]:
    """The first sync of the agent that reached `revision` (waiting for it)."""
    found = process.wait_ready(spec, pid, log_path, revision=revision, timeout=WAIT_S)
    reached = [s for s in found["history"] if s["revision"] >= revision]
    return dict(reached[0] if reached else found["last_sync"])


def relevant_pods(manifests: Manifests, node: str) -> tuple[list[Pod], list[Pod]]:
    """(remote, local) pods whose address is in one of `node`'s sets of a selector on `app`:
    removing their `app` label (and putting it back) changes the node's table."""
    engine = PolicyEngine.from_manifests(manifests)
    ruleset = render_node(engine, node)
    by_app = [s for s in ruleset.sets if s.name.startswith("pods_") and "app" in s.comment]
    in_sets = {e for s in by_app for e in s.elements}
    chosen = [p for p in manifests.pods if p.ips and str(p.ips[0]) in in_sets and "app" in p.labels]
    return ([p for p in chosen if p.node_name != node], [p for p in chosen if p.node_name == node])


Relabel = tuple[Pod, dict[str, str]]
"""A pod and the labels it is given (and then its own labels again)."""


def without_app(pods: list[Pod]) -> list[Relabel]:
    return [(p, {k: v for k, v in p.labels.items() if k != "app"}) for p in pods]


def local_group_moves(manifests: Manifests, node: str) -> list[Relabel]:
    """Local pods given the labels of another local group of their namespace with the same
    ports whose verdicts or selector sets differ (a relabel between two groups that both have
    pods here, which the kernel sees), when every verdict of the moving pod is kept by another
    local pod: the move and the move back keep the node's structure, the local fast path's
    case (`kanal.agent.local`)."""
    engine = PolicyEngine.from_manifests(manifests)
    ruleset, dispatch = render_with_dispatch(engine, node)
    users = Counter(use for d in dispatch.values() for use in d.verdicts())
    local = sorted((p for p in engine.pods().values() if p.node_name == node and p.ips),
                   key=lambda p: p.key)
    sets = [set(s.elements) for s in ruleset.sets if s.name.startswith("pods_")]

    def seen(p: Pod) -> tuple[object, ...]:
        """What the table holds because of `p`'s labels: verdicts, selector sets it is in."""
        return (dispatch[p.key], tuple(str(p.ips[0]) in s for s in sets))

    moves: list[Relabel] = []
    for p in local:
        if any(users[use] < 2 for use in dispatch[p.key].verdicts()):
            continue
        target = next((q for q in local if q.namespace == p.namespace and seen(q) != seen(p)
                       and GroupKey.of(q).ports == GroupKey.of(p).ports), None)
        if target is not None:
            moves.append((p, dict(target.labels)))
    return moves


def label_changes(
    store: SqliteStore, relabels: list[Relabel], count: int, *,
    agent: tuple[AgentSpec, int, Path], netns: str, check: int = 3,
) -> tuple[list[float], dict[str, list[float]]]:
    """`count` label changes (a pod relabelled, then given its labels back) spread over
    `relabels`; latencies of the changes the agent applied as a kernel write, and those of
    each kind of sync (and reason: a delta was `patched` or `rendered`)."""
    spec, pid, log_path = agent
    latencies: list[float] = []
    kinds: dict[str, list[float]] = {}
    for i in range(count if relabels else 0):
        pod, target = relabels[(i // 2) % len(relabels)]
        ref = ObjectRef("Pod", pod.namespace, pod.name)
        labels = target if i % 2 == 0 else dict(pod.labels)

        def relabel(doc: Doc, labels: dict[str, str] = labels) -> Doc:
            doc["metadata"]["labels"] = dict(labels)
            return doc

        before = _listing(netns) if i < check else ""
        time.sleep(QUIET_S)  # one change at a time, not a burst the runner would coalesce
        start = time.time()
        revision = store.update(ref, relabel).revision
        sync = applied_at(spec, pid, log_path, revision)
        kind = sync["kind"] + (f" ({sync['reason']})" if sync.get("reason") else "")
        kinds.setdefault(kind, []).append(sync["at"] - start)
        if sync["kind"] != "unchanged":
            latencies.append(sync["at"] - start)
            if i < check:
                assert _listing(netns) != before, f"the kernel did not change for {pod.key}"
    return latencies, kinds


def by_kind(kinds: dict[str, list[float]]) -> str:
    """`kind: n× p50 … p99 …` per kind of sync, for a metric's note."""
    return "; ".join(
        f"{kind}: {len(samples)}× p50 {_ms(statistics.median(samples))} "
        f"p99 {_ms(percentile(samples, 0.99))}"
        for kind, samples in sorted(kinds.items())
    )


def _listing(netns: str) -> str:
    with Nft(netns) as nft:
        return nft.run("list table inet kanal")


def policy_changes(
    store: SqliteStore, subject: Pod, count: int, *, agent: tuple[AgentSpec, int, Path]
) -> tuple[list[float], dict[str, int]]:
    """`count` NetworkPolicies selecting a local pod's labels created (and each deleted again
    before the next): written → the agent's kernel transaction returned."""
    spec, pid, log_path = agent
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    for i in range(count):
        doc = netpol(f"{subject.namespace}/bench-{i}", {
            "podSelector": {"matchLabels": dict(subject.labels)},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"bench": str(i)}}}]}],
        })
        time.sleep(QUIET_S)
        start = time.time()
        revision = store.apply([(f"bench-{i}.yaml", doc)]).revision
        sync = applied_at(spec, pid, log_path, revision)
        kinds[sync["kind"]] = kinds.get(sync["kind"], 0) + 1
        latencies.append(sync["at"] - start)
        gone = store.delete([ObjectRef("NetworkPolicy", subject.namespace, f"bench-{i}")])
        applied_at(spec, pid, log_path, gone.revision)
    return latencies, kinds


def measure_scale(args: argparse.Namespace, prefix: str) -> list[Metric]:
    spec = ClusterSpec(args.pods, args.policies, seed=args.seed)
    manifests = generate(spec)
    node = max(
        (n.name for n in manifests.nodes),
        key=lambda n: sum(1 for p in manifests.pods if p.node_name == n),
    )
    remote, local = relevant_pods(manifests, node)
    moves = local_group_moves(manifests, node)
    log(f"scale: {len(manifests.pods):,} pods, {len(manifests.policies):,} policies; agent for "
        f"`{node}` ({sum(1 for p in manifests.pods if p.node_name == node)} local pods); "
        f"{len(remote)} remote and {len(local)} local pods in its sets, {len(moves)} local pods "
        "that can move to another local group")
    netns = f"{prefix}node"
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "store.db")
        store.apply(cluster_documents(manifests))
        create_netns(netns)
        links.bring_up_loopback(netns)  # the agent serves /status on the node's 127.0.0.1
        agent = AgentSpec(node, store.path, netns,  # the lab's veth prefix: guard sets kept
                          extra=("--vxlan-port", "0", "--pod-interfaces", HOST_IFNAME_PREFIX))
        log_path = Path(directory) / "agent.log"
        try:
            started = time.monotonic()
            pid = process.spawn(agent, log_path)
            first = process.wait_ready(agent, pid, log_path, timeout=WAIT_S)
            start_s = time.monotonic() - started
            stats = first["last_sync"]["stats"]
            log(f"scale: first table in {start_s:.1f} s ({stats}); label changes")
            remote_s, remote_kinds = label_changes(
                store, without_app(remote), args.labels, agent=(agent, pid, log_path),
                netns=netns)
            local_s, local_kinds = label_changes(
                store, without_app(local), args.local_labels, agent=(agent, pid, log_path),
                netns=netns)
            move_s, move_kinds = label_changes(
                store, moves, args.local_labels, agent=(agent, pid, log_path), netns=netns)
            policy_s, policy_kinds = policy_changes(
                store, local[0], args.scale_policies, agent=(agent, pid, log_path))
            rss, peak = rss_mib(pid)
            log(f"scale: RSS {rss:.0f} MiB, peak {peak:.0f} MiB")
        finally:
            process.stop(process.owned_by(store.path))
            store.close()
            delete_netns(netns, missing_ok=True)
    size = f"{args.pods // 1000}k pods / {args.policies:,} policies"
    return [
        Metric("agent start → first table loaded", f"{size}, {stats['rules']} rules, "
               f"{stats['set_elements']:,} set elements", [start_s]),
        Metric("label change → kernel updated (pod on another node)",
               f"{size}: set-element delta, no re-render", remote_s, target=0.020,
               note=by_kind(remote_kinds)),
        Metric("label change → kernel updated (pod on this node, `app` removed/restored)",
               f"{size}: patched; restructured when chains or sets come or go",
               local_s, target=0.020, note=by_kind(local_kinds)),
        Metric("label change → kernel updated (pod on this node, into another local group)",
               f"{size}: set + verdict-map element patch, no re-render", move_s, target=0.020,
               note=by_kind(move_kinds)),
        Metric("policy created → kernel updated (no packets)",
               f"{size}: a policy selecting a pod of this node, re-render + whole load",
               policy_s, note=f"sync kinds {policy_kinds}"),
        Metric("agent memory (RSS, peak)", size, [peak], unit="MiB", target=300),
    ]


# -- labs ------------------------------------------------------------------------------------------


def namespace(name: str, **labels: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(key: str, node: str, **labels: str) -> Doc:
    ns, name = key.split("/")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [
                {"name": "c", "ports": [{"containerPort": PORT, "protocol": "TCP"}]}]}}


def netpol(key: str, spec: dict[str, Any]) -> Doc:
    ns, name = key.split("/")
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


DENY = netpol("x/deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW = netpol("x/allow-client", {"podSelector": {"matchLabels": {"app": "server"}},
                                  "ingress": [{"from": [{"podSelector": {"matchLabels": {
                                      "app": "client"}}}]}]})
LAB = {"apiVersion": "kanal.io/v1alpha1", "kind": "Lab", "metadata": {"name": "bench"},
       "spec": {"nodes": 2, "backend": "vxlan", "ipam": "node"}}


@contextmanager
def running_lab(directory: Path, prefix: str, docs: list[Doc]) -> Iterator[Lab]:
    lab = Lab(directory / "state", prefix=prefix)
    path = directory / "up.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    try:
        lab.up([str(path)])
        yield lab
    finally:
        lab.down()
        assert list_netns(prefix) == [], "the lab left namespaces behind"


def connects(netns: str, ip: str) -> bool:
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(ATTEMPT_TIMEOUT_S)
    try:
        sock.connect((ip, PORT))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def first_connection(netns: str, ip: str, start: float, *, limit: float = 30.0) -> float:
    """Seconds from `start` (time.time()) to the first successful connect (attempting)."""
    while not connects(netns, ip):
        if time.time() - start > limit:
            raise RuntimeError(f"no connection from {netns} to {ip} within {limit} s")
        time.sleep(0.002)
    return time.time() - start


def wait_applied(lab: Lab, revision: int) -> None:
    state = lab.store.load()
    assert state is not None
    lab.agents.wait(lab._plan(state, state.ipam), state.agents, revision)


def measure_policy(args: argparse.Namespace, prefix: str) -> list[Metric]:
    docs = [namespace("x"), pod("x/client", "node-1", app="client"),
            pod("x/server", "node-2", app="server"), DENY, LAB]
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as directory, \
            running_lab(Path(directory), prefix, docs) as lab:
        status = {p.name: p for p in lab.status().pods}
        client, server = status["x/client"], status["x/server"]
        assert not connects(client.netns, server.ip), "the default deny does not hold"
        for round_ in range(args.policy_rounds):
            with open_store(lab.store.directory) as store:
                start = time.time()
                store.apply([("allow.yaml", ALLOW)])
                samples.append(first_connection(client.netns, server.ip, start))
                gone = store.delete([ObjectRef("NetworkPolicy", "x", "allow-client")])
            wait_applied(lab, gone.revision)
            assert not connects(client.netns, server.ip), f"round {round_}: still allowed"
            time.sleep(0.1)
        log(f"policy: {len(samples)} rounds")
    return [Metric("policy_enforcement_latency_policy_creation_seconds",
                   "allow policy written → first connection (2-node vxlan lab)", samples,
                   target=0.5)]


def measure_reach(args: argparse.Namespace, prefix: str) -> list[Metric]:
    pods = [pod(f"x/r{i:03d}", f"node-{1 + i % 2}", app="client") for i in range(args.reach_pods)]
    docs = [namespace("x"), pod("x/server", "node-1", app="server"), DENY, ALLOW, *pods, LAB]
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as directory, \
            running_lab(Path(directory), prefix, docs) as lab:
        status = {p.name: p for p in lab.status().pods}
        server = status["x/server"]
        refs = [ObjectRef("Pod", "x", f"r{i:03d}") for i in range(args.reach_pods)]
        with open_store(lab.store.directory) as store:
            written = []
            for ref in refs:
                found = store.get(ref)
                assert found is not None
                written.append(found.doc)
            gone = store.delete(refs)  # wired, but unknown to the cluster: not allowed in
        wait_applied(lab, gone.revision)
        first = status["x/r000"]
        assert not connects(first.netns, server.ip), "a pod not in the store got through"
        results: dict[int, float] = {}
        threads = []
        interval = 1.0 / args.rate
        with open_store(lab.store.directory) as store:
            begin = time.monotonic()
            for i, doc in enumerate(written):
                time.sleep(max(0.0, begin + i * interval - time.monotonic()))
                start = time.time()
                store.apply([(f"r{i}.yaml", doc)])
                netns = status[f"x/r{i:03d}"].netns
                thread = threading.Thread(target=_reach, args=(results, i, netns, server.ip,
                                                                start))
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join()
        samples = [results[i] for i in sorted(results)]
        log(f"reach: {len(samples)} pods at {args.rate} pods/s")
    return [Metric("pod_creation_reachability_latency_seconds",
                   f"pod written → first connection, {args.rate} pods/s (2-node vxlan lab)",
                   samples, target=1.0)]


def _reach(results: dict[int, float], i: int, netns: str, ip: str, start: float) -> None:
    results[i] = first_connection(netns, ip, start)


# -- main ------------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[argparse.Namespace, str], list[Metric]]] = {
    "scale": measure_scale,
    "policy": measure_policy,
    "reach": measure_reach,
}


def markdown(metrics: list[Metric]) -> list[str]:
    lines = ["| metric | what | p50 | p99 | n | target |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(m.row()) + " |" for m in metrics]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--labels", type=int, default=200, help="remote-pod label changes")
    parser.add_argument("--local-labels", type=int, default=30, help="local-pod label changes")
    parser.add_argument("--policy-rounds", type=int, default=20)
    parser.add_argument("--scale-policies", type=int, default=10,
                        help="policies created at cluster size (scale section)")
    parser.add_argument("--reach-pods", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="pods written per second")
    parser.add_argument("--sections", default="scale,policy,reach")
    parser.add_argument("--json", type=Path, help="write every sample here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up netns and agents
    metrics: list[Metric] = []
    for section in args.sections.split(","):
        prefix = f"kbag{secrets.token_hex(2)}-"
        log(f"{section}: starting (netns prefix {prefix})")
        metrics += SECTIONS[section](args, prefix)
    command = "python bench/bench_agent.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"`{command.strip()}`\n")
    print("\n".join(markdown(metrics)))
    for m in metrics:
        if m.note:
            print(f"\n{m.name}: {m.note}")
    if args.json:
        args.json.write_text(json.dumps([m.to_json() for m in metrics], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
