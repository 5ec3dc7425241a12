"""Benchmark `kanal lab`: real namespaces, real nftables, real packets (issue 4 §5). Needs root.

```
python bench/bench_lab.py [--only up,load,probe,traffic,sweep] [--repeat 3] [--rounds 4]
                          [--iperf-seconds 5] [--conn-seconds 3] [--policies 1000]
                          [--sweep 100,300,1000] [--allow-first] [--json out.json]
```

Sections (each can run alone with `--only`):

```
up       3 nodes, 30 pods (x/y/z × p0..p9, serving 80/81 on TCP/UDP/SCTP): Lab.up, Lab.down
load     one node's `table inet kanal` for 1,000 policies over 1,000 pods: compile, render
         (IR), text, atomic load into a netns of our own (fresh, then replacing itself); pods
         are engine objects with their own addresses placed on that node (no netns per pod);
         kernel counts for the generated cluster (generate.py) and for the fan-in cluster
         (fixed policies, 10 / 100 / 1,000 pods: rules must not grow with pods)
probe    the classic 9-pod model (x/y/z × a/b/c, 80/81 × TCP/UDP/SCTP) on 3 nodes: the full
         matrix with no policy, then with default deny (ingress + egress) in every namespace
traffic  the fan-in cluster, one pod of it per template, on 3 nodes: client fan-0/api-0 on
         node-1, server fan-1/api-0 on node-2 (VXLAN between them); iperf3 (one TCP stream)
         and new connections per second (connect + RST close, sequential) with the policies
         applied vs deleted, in ABBA order (none, with, with, none, ...) so drift cancels
sweep    new connections per second alone, the same way, for each `--sweep` policy count with
         the allowing policies last, and once more at the largest count with them first:
         the extra time per connection divided by the rules walked prices one rule
```

The fan-in cluster: 5 namespaces × 2 apps (`api`, `db`) = 10 templates; N policies, 40% in
the client's namespace (egress), 40% in the server's (ingress), the rest spread, with realistic
peers (pod / namespace selectors, matchExpressions, ipBlock with except, named ports, endPort
ranges, UDP and SCTP); about 4 in 5 select `app: api`, so the client's egress and the server's
ingress dispatch chains jump through hundreds of policy chains; none of them admits the bench
ports except `zz-allow-bench` in each of the two namespaces, which sorts last (a NEW packet
walks the whole chain before it is allowed).

Every lab and netns gets the prefix `kb<4 hex>-`, is removed in `finally`, and the run ends by
checking no netns with the prefix is left. Traffic only goes to pod addresses inside the lab.
This is a benchmark, not a test: nothing asserts a time; the table says whether a target is met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from generate import ClusterSpec, generate
from kanal.dataplane.netns import create_netns, delete_netns, list_netns
from kanal.dataplane.nft import Nft, count_table, load_table_atomically
from kanal.engine import PolicyEngine
from kanal.lab.lab import Lab
from kanal.lab.probe import DEFAULT_PARALLELISM, DEFAULT_TIMEOUT_S
from kanal.model.objects import Manifests, Protocol
from kanal.model.parse import parse_documents
from kanal.render import render_node, table_text

T = TypeVar("T")
Doc = dict[str, Any]
SECTIONS = ("up", "load", "probe", "traffic", "sweep")
IPERF_PORT = 5201
CONN_PORT = 5202
CLIENT = "fan-0/api-0"
SERVER = "fan-1/api-0"
NODE = "node-1"
IPERF_TARGET = 0.95
CONN_TARGET = 0.90
CLASSIC_PROBES = [(port, proto) for port in (80, 81)
                  for proto in (Protocol.TCP, Protocol.UDP, Protocol.SCTP)]
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def new_prefix() -> str:
    return f"kb{secrets.token_hex(2)}-"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max, and the spread (max - min) relative to the median, over the runs."""
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
        "runs": list(values),
    }


def loadavg() -> float:
    return os.getloadavg()[0]


# -- manifests (raw documents, as `-f` files hold them) ----------------------------------------


def namespace(name: str, **labels: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    key: str,
    labels: dict[str, str],
    ports: Sequence[tuple[int, str, str]],
    *,
    node: str | None = None,
    ip: str | None = None,
) -> Doc:
    ns, name = key.split("/")
    doc: Doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": port, "protocol": proto, "name": pname}
            for port, proto, pname in ports
        ]}]},
    }
    if node is not None:
        doc["spec"]["nodeName"] = node
    if ip is not None:
        doc["status"] = {"podIP": ip}
    return doc


def policy(ns: str, name: str, spec: Doc) -> Doc:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def lab_doc(name: str, nodes: int) -> Doc:
    return {"apiVersion": "kanal.io/v1alpha1", "kind": "Lab", "metadata": {"name": name},
            "spec": {"nodes": nodes, "backend": "vxlan", "ipam": "node"}}


def write_docs(path: Path, docs: Sequence[Doc]) -> str:
    path.write_text(yaml.dump_all(list(docs), Dumper=_DUMPER, sort_keys=False))
    return str(path)


def parse(docs: Sequence[Doc]) -> Manifests:
    return parse_documents(("bench", d) for d in docs)


CLASSIC_PORTS = [(port, proto, f"serve-{port}-{proto.lower()}")
                 for port in (80, 81) for proto in ("TCP", "UDP", "SCTP")]


def classic_docs(pods_per_namespace: Sequence[str] = ("a", "b", "c")) -> list[Doc]:
    """Upstream's classic model (x/y/z × a/b/c serving 80/81 on three protocols); more pod
    names make a bigger lab of the same shape."""
    docs = [namespace(ns, ns=ns) for ns in ("x", "y", "z")]
    docs += [pod(f"{ns}/{p}", {"pod": p}, CLASSIC_PORTS)
             for ns in ("x", "y", "z") for p in pods_per_namespace]
    return docs


def default_deny_docs() -> list[Doc]:
    return [policy(ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
            for ns in ("x", "y", "z")]


# -- the fan-in cluster: fixed policies over 10 templates, any number of replicas -------------

FAN_NAMESPACES = 5
FAN_APPS = (("api", "backend"), ("db", "database"))
FAN_PORTS = [(80, "TCP", "http"), (9090, "TCP", "metrics")]


def fan_in_pods(replicas: int, *, node: str | None = None, pinned: bool = False) -> list[Doc]:
    """`replicas` pods per template (fan-<i>/<app>-<r>). `node`: every pod there, with an
    address of its own (for engine-only runs); `pinned`: client on node-1, server on node-2
    (a lab places the rest)."""
    docs = []
    for i in range(FAN_NAMESPACES):
        for app, tier in FAN_APPS:
            for r in range(replicas):
                key = f"fan-{i}/{app}-{r}"
                where = node
                if pinned and key in (CLIENT, SERVER):
                    where = "node-1" if key == CLIENT else "node-2"
                ip = None
                if node is not None:
                    n = len(docs) + 1
                    ip = f"10.244.{n // 250}.{n % 250 + 1}"
                labels = {"app": app, "tier": tier, "version": f"v{1 + r % 2}"}
                docs.append(pod(key, labels, FAN_PORTS, node=where, ip=ip))
    return docs


def fan_in_namespaces() -> list[Doc]:
    return [namespace(f"fan-{i}", team=f"t{i}", env="prod" if i % 2 == 0 else "dev")
            for i in range(FAN_NAMESPACES)]


def _subject(k: int) -> Doc:
    """4 in 5 select the api pods (the client and the server among them)."""
    return [
        {},
        {"matchLabels": {"app": "api"}},
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend", "web"]}]},
        {"matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v0"]}]},
        {"matchLabels": {"app": "db"}},
    ][k % 5]


def _rule(k: int, peer_key: str) -> Doc:
    """Peers and ports of policy k: none of them admits the bench ports."""
    shape = (k // 5) % 6
    if shape == 0:
        return {peer_key: [{"podSelector": {"matchLabels": {"app": "api"}}}],
                "ports": [{"protocol": "TCP", "port": 10000 + k}]}
    if shape == 1:
        return {peer_key: [{"namespaceSelector": {"matchLabels": {"team": f"t{k % 5}"}}}],
                "ports": [{"protocol": "TCP", "port": 10000 + k},
                          {"protocol": "UDP", "port": 10000 + k}]}
    if shape == 2:
        return {peer_key: [{"namespaceSelector": {"matchLabels": {"env": "prod"}},
                            "podSelector": {"matchLabels": {"tier": "database"}}}],
                "ports": [{"protocol": "TCP", "port": 20000, "endPort": 20010 + k % 50}]}
    if shape == 3:
        return {peer_key: [{"ipBlock": {"cidr": "10.244.0.0/16",
                                        "except": [f"10.244.{k % 3}.0/24"]}}],
                "ports": [{"protocol": "TCP", "port": 30000 + k}]}
    if shape == 4:
        return {peer_key: [{"namespaceSelector": {}}], "ports": [{"port": "metrics"}]}
    return {peer_key: [{"namespaceSelector": {"matchExpressions": [
                {"key": "team", "operator": "NotIn", "values": ["t9"]}]},
             "podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["api", "web"]}]}}],
            "ports": [{"protocol": "SCTP", "port": 40000 + k % 1000}]}


def fan_in_policies(count: int, *, allow_first: bool = False) -> list[Doc]:
    """`count` (at least 2) NetworkPolicies: `count - 2` that do not admit the bench ports, and
    the two `zz-allow-bench` (client egress, server ingress) that do and sort last in their
    namespace (`allow_first`: named `aa-allow-bench`, they sort first: the best case)."""
    if count < 2:
        raise ValueError(f"the fan-in cluster needs at least 2 policies, not {count}")
    docs = []
    for k in range(count - 2):
        slot = k % 5
        if slot in (0, 1):
            ns, direction = 0, "Egress"
        elif slot in (2, 3):
            ns, direction = 1, "Ingress"
        else:
            ns, direction = 2 + (k // 5) % 3, ("Ingress", "Egress")[(k // 15) % 2]
        peer_key = "from" if direction == "Ingress" else "to"
        spec = {"podSelector": _subject(k // 5 + slot), "policyTypes": [direction],
                direction.lower(): [_rule(k, peer_key)]}
        docs.append(policy(f"fan-{ns}", f"p{k:05d}", spec))
    bench_ports = [{"protocol": "TCP", "port": IPERF_PORT}, {"protocol": "TCP", "port": CONN_PORT}]
    api = {"matchLabels": {"app": "api"}}
    allow = "aa-allow-bench" if allow_first else "zz-allow-bench"
    docs.append(policy("fan-0", allow, {
        "podSelector": api, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "t1"}},
                            "podSelector": api}], "ports": bench_ports}]}))
    docs.append(policy("fan-1", allow, {
        "podSelector": api, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t0"}},
                               "podSelector": api}], "ports": bench_ports}]}))
    return docs


# -- the kernel's view of a table -----------------------------------------------------------------


def list_table(netns: str) -> list[dict[str, Any]]:
    with Nft(netns) as nft:
        listed = nft.run_json("list table inet kanal")
    return listed.get("nftables", []) if isinstance(listed, dict) else []


def _rules_by_chain(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rules: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if "rule" in entry:
            rules.setdefault(entry["rule"]["chain"], []).append(entry["rule"])
    return rules


def _dispatch_targets(entries: list[dict[str, Any]], direction: str) -> dict[str, str]:
    """Pod address -> its dispatch chain, from the `<direction>_pods_v4` verdict map."""
    found = {}
    for entry in entries:
        if "map" in entry and entry["map"]["name"] == f"{direction}_pods_v4":
            for key, verdict in entry["map"].get("elem", []):
                found[key] = next(iter(verdict.values()))["target"]
    return found


def _port_targets(expr: dict[str, Any], port: int | None) -> list[str]:
    """The chains a `meta l4proto . th dport vmap` sends a TCP packet to `port` (None: to any
    port, all of them), from nft's JSON listing; an address map (`data` a name) has none."""
    data = expr["vmap"]["data"]
    if not isinstance(data, dict):
        return []
    found = []
    for key, verdict in data.get("set", []):
        proto, ports = key["concat"]
        lo, hi = ports["range"] if isinstance(ports, dict) else (ports, ports)
        if proto == "tcp" and (port is None or lo <= port <= hi):
            found.append(next(iter(verdict.values()))["target"])
    return found


def _walk(
    rules: dict[str, list[dict[str, Any]]], target: str | None, port: int | None = None
) -> dict[str, int]:
    """Chains and rules a NEW TCP packet may meet from dispatch chain `target`: every chain it
    jumps to, and through the port map the class chain of `port` (None: the longest one)."""
    if target is None:
        return {"policy_chains": 0, "rules": 0}
    chains: list[str] = []
    for rule in rules.get(target, []):
        for e in rule["expr"]:
            if "jump" in e:
                chains.append(e["jump"]["target"])
            elif "vmap" in e and (classes := _port_targets(e, port)):
                chains.append(max(classes, key=lambda c: len(rules.get(c, []))))
    return {"policy_chains": len(chains),
            "rules": len(rules.get(target, [])) + sum(len(rules.get(c, [])) for c in chains)}


def dispatch_walk(
    entries: list[dict[str, Any]], ip: str, direction: str, *, port: int | None = None
) -> dict[str, int]:
    """What a NEW TCP packet of `ip` in `direction` (`egress`/`ingress`) to `port` may meet:
    the chains its dispatch chain sends it to (through the port map: only its port's class),
    and their rules plus the dispatch chain's (all are walked when only the last rule admits
    the packet, or none does)."""
    return _walk(_rules_by_chain(entries), _dispatch_targets(entries, direction).get(ip), port)


def walk_stats(entries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per direction, over the node's pods that have a dispatch chain: median and max of
    `dispatch_walk`'s chains and rules, for each pod's longest TCP port class."""
    rules = _rules_by_chain(entries)
    out = {}
    for direction in ("egress", "ingress"):
        walks = [_walk(rules, t) for t in _dispatch_targets(entries, direction).values()]
        chains = [w["policy_chains"] for w in walks] or [0]
        lengths = [w["rules"] for w in walks] or [0]
        out[direction] = {"pods": len(walks), "chains_median": statistics.median(chains),
                          "chains_max": max(chains), "rules_median": statistics.median(lengths),
                          "rules_max": max(lengths)}
    return out


# -- 1. up / down --------------------------------------------------------------------------------


@contextlib.contextmanager
def lab_session(prefix: str, workdir: Path, docs: Sequence[Doc]) -> Iterator[Lab]:
    """A lab up on `docs`; `down` in finally, then no netns with `prefix` may be left."""
    workdir.mkdir(parents=True, exist_ok=True)
    lab = Lab(workdir / "state", prefix=prefix)
    try:
        lab.up([write_docs(workdir / "up.yaml", docs)])
        yield lab
    finally:
        lab.down()
        ensure_clean(prefix)


def ensure_clean(prefix: str) -> None:
    """Remove and then complain about any netns with `prefix` (a bug in the teardown)."""
    left = list_netns(prefix)
    for name in left:
        delete_netns(name, missing_ok=True)
    if left:
        raise RuntimeError(f"namespaces left behind (now removed): {left}")


def measure_up(
    prefix: str, workdir: Path, *, nodes: int = 3, pods: int = 30, repeat: int = 3
) -> dict[str, Any]:
    """`repeat` × (Lab.up of `nodes` nodes and `pods` pods, then Lab.down)."""
    per_ns = max(1, pods // 3)
    docs = [*classic_docs([f"p{i}" for i in range(per_ns)]), lab_doc("bench-up", nodes)]
    ups, downs = [], []
    for run in range(repeat):
        where = workdir / f"up-{run}"
        where.mkdir(parents=True)
        lab = Lab(where / "state", prefix=prefix)
        path = write_docs(where / "up.yaml", docs)
        try:
            up_s, _ = timed(lambda lab=lab, path=path: lab.up([path]))
            ups.append(up_s)
            status = lab.status()
        finally:
            down_s, _ = timed(lab.down)
            ensure_clean(prefix)
        downs.append(down_s)
        log(f"  up {up_s:.2f} s, down {down_s:.2f} s")
    return {"nodes": len(status.nodes), "pods": len(status.pods),
            "up_s": summary(ups), "down_s": summary(downs)}


# -- 2. render + load ----------------------------------------------------------------------------


def on_one_node(manifests: Manifests, node: str = NODE) -> Manifests:
    """Every pod on `node` (its own address kept): the node's table holds every policy."""
    return replace(manifests, pods=tuple(replace(p, node_name=node) for p in manifests.pods))


def generated_cluster(pods: int, policies: int, seed: int = 1) -> Manifests:
    return on_one_node(generate(ClusterSpec(pods=pods, policies=policies, seed=seed)))


def fan_in_cluster(pods: int, policies: int) -> Manifests:
    replicas = max(1, pods // (FAN_NAMESPACES * len(FAN_APPS)))
    return parse([*fan_in_namespaces(), *fan_in_pods(replicas, node=NODE),
                  *fan_in_policies(policies)])


def measure_load(
    manifests: Manifests, netns: str, *, repeat: int = 3, node: str = NODE
) -> dict[str, Any]:
    """Compile, render, write and atomically load `node`'s table into `netns`, `repeat` times:
    a fresh load (the table deleted first, not timed) and a replacing load (over itself)."""
    times: dict[str, list[float]] = {k: [] for k in
                                     ("compile", "render", "text", "load", "replace", "total")}
    for _ in range(repeat):
        compile_s, engine = timed(lambda: PolicyEngine.from_manifests(manifests))
        render_s, ruleset = timed(lambda engine=engine: render_node(engine, node))
        text_s, text = timed(lambda ruleset=ruleset: table_text(ruleset))
        with Nft(netns) as nft:
            nft.run("table inet kanal\ndelete table inet kanal")

        def load(text: str = text) -> None:
            with Nft(netns) as nft:
                load_table_atomically(nft, text)

        load_s, _ = timed(load)
        replace_s, _ = timed(load)
        for key, value in (("compile", compile_s), ("render", render_s), ("text", text_s),
                           ("load", load_s), ("replace", replace_s),
                           ("total", render_s + text_s + load_s)):
            times[key].append(value)
    entries = list_table(netns)
    return {
        "pods": len(manifests.pods),
        "policies": len(manifests.policies),
        "local_pods": sum(p.node_name == node for p in manifests.pods),
        "table_bytes": len(text),
        "rendered": ruleset.stats(),
        "kernel": count_table({"nftables": entries}).to_json(),
        "walks": walk_stats(entries),
        "problems": len(ruleset.problems),
        **{f"{k}_s": summary(v) for k, v in times.items()},
    }


def measure_load_section(
    prefix: str, *, pods: int = 1000, policies: int = 1000, scale: Sequence[int] = (10, 100, 1000),
    repeat: int = 3, seed: int = 1,
) -> dict[str, Any]:
    netns = f"{prefix}load"
    create_netns(netns)
    try:
        log(f"  generated cluster: {pods} pods, {policies} policies, all on {NODE}")
        generated = measure_load(generated_cluster(pods, policies, seed), netns, repeat=repeat)
        scaling = []
        for n in scale:
            log(f"  fan-in cluster: {n} pods, {policies} policies")
            scaling.append(measure_load(fan_in_cluster(n, policies), netns, repeat=repeat))
    finally:
        delete_netns(netns, missing_ok=True)
    return {"generated": generated, "scaling": scaling}


# -- 3. probe matrix -----------------------------------------------------------------------------


def measure_probe(
    prefix: str, workdir: Path, *, repeat: int = 3,
    probes: Sequence[tuple[int, Protocol]] = tuple(CLASSIC_PROBES),
    timeout_s: float = DEFAULT_TIMEOUT_S, parallelism: int = DEFAULT_PARALLELISM,
) -> dict[str, Any]:
    """The 9-pod classic model on 3 nodes: full matrix `repeat` times without policy, then
    `repeat` times with default deny (ingress and egress) in x, y and z."""
    result: dict[str, Any] = {"timeout_s": timeout_s, "parallelism": parallelism}
    with lab_session(prefix, workdir / "probe", [*classic_docs(), lab_doc("bench-probe", 3)]) \
            as lab:
        for case in ("none", "deny"):
            if case == "deny":
                lab.apply([write_docs(workdir / "probe" / "deny.yaml", default_deny_docs())])
            walls, counts = [], {}
            for _ in range(repeat):
                wall, report = timed(lambda: lab.probe(
                    probes, timeout_s=timeout_s, parallelism=parallelism))
                walls.append(wall)
                cells = [c for t in report.tables for row in t.measured for c in row]
                counts = {"probes": len(cells), "allowed": sum(c is True for c in cells),
                          "denied": sum(c is False for c in cells),
                          "mismatches": len(report.mismatches)}
                log(f"  {case}: {wall:.2f} s, {counts}")
            result[case] = {"wall_s": summary(walls), **counts}
    return result


# -- 4 + 5. traffic: iperf3 and connection rate ----------------------------------------------------

CONN_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4096)
while True:
    c, _ = s.accept()
    c.close()
"""

CONN_CLIENT = """
import json, socket, struct, sys, time
src, dst, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT, ports are reusable at once
done = failed = 0
start = time.perf_counter()
end = start + seconds
while time.perf_counter() < end:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.settimeout(1.0)
    try:
        s.bind((src, 0))
        s.connect((dst, port))
        done += 1
    except OSError:
        failed += 1
    finally:
        s.close()
print(json.dumps({"connections": done, "failed": failed, "seconds": time.perf_counter() - start}))
"""


def in_netns(netns: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *command]


def wait_listening(netns: str, port: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(in_netns(netns, "ss", "-Hltn", f"sport = :{port}"),
                             capture_output=True, text=True, check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} in `{netns}` after {timeout_s} s")


def run_iperf(client_ns: str, client_ip: str, server_ip: str, seconds: float) -> dict[str, Any]:
    command = in_netns(client_ns, "iperf3", "-c", server_ip, "-B", client_ip, "-p",
                       str(IPERF_PORT), "-t", f"{seconds:g}", "-J", "--connect-timeout", "3000")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30,
                          check=False)
    report = json.loads(done.stdout)
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    end = report["end"]
    return {"bits_per_second": end["sum_received"]["bits_per_second"],
            "retransmits": end["sum_sent"].get("retransmits", 0),
            "cpu_local": end["cpu_utilization_percent"]["host_total"],
            "cpu_remote": end["cpu_utilization_percent"]["remote_total"]}


def run_connections(
    client_ns: str, client_ip: str, server_ip: str, seconds: float
) -> dict[str, Any]:
    command = in_netns(client_ns, sys.executable, "-c", CONN_CLIENT, client_ip, server_ip,
                       str(CONN_PORT), f"{seconds:g}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30,
                          check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    result["per_second"] = result["connections"] / result["seconds"]
    return result


def abba(rounds: int) -> list[bool]:
    """Policy on/off per step: (off, on), (on, off), ... so slow drift hits both equally."""
    return [state for r in range(rounds) for state in ((False, True) if r % 2 == 0
                                                       else (True, False))]


def _ratios(steps: list[dict[str, Any]], key: str) -> list[float]:
    """with / without, per ABBA pair (adjacent runs, so they saw about the same load)."""
    pairs = [steps[i:i + 2] for i in range(0, len(steps) - 1, 2)]
    out = []
    for pair in pairs:
        by_state = {s["policies"]: s[key] for s in pair}
        if len(by_state) == 2 and by_state[False]:
            out.append(by_state[True] / by_state[False])
    return out


def measure_traffic(
    prefix: str, workdir: Path, *, policies: int = 1000, rounds: int = 4,
    iperf_s: float = 5.0, conn_s: float = 3.0, allow_first: bool = False,
) -> dict[str, Any]:
    """iperf3 (skipped when `iperf_s` is 0) and new connections per second, `rounds` ABBA
    pairs without and with the fan-in cluster's `policies`."""
    where = workdir / f"traffic-{policies}-{'first' if allow_first else 'last'}"
    docs = [*fan_in_namespaces(), *fan_in_pods(1, pinned=True), lab_doc("bench-traffic", 3)]
    servers: list[subprocess.Popen[bytes]] = []
    with lab_session(prefix, where, docs) as lab:
        try:
            pods = {p.name: p for p in lab.status().pods}
            client, server = pods[CLIENT], pods[SERVER]
            nodes = {p.name: p.node for p in (client, server)}
            policy_docs = fan_in_policies(policies, allow_first=allow_first)
            policy_file = write_docs(where / "policies.yaml", policy_docs)
            if iperf_s > 0:
                servers.append(subprocess.Popen(
                    in_netns(server.netns, "iperf3", "-s", "-B", server.ip, "-p",
                             str(IPERF_PORT)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait_listening(server.netns, IPERF_PORT)
            servers.append(subprocess.Popen(
                in_netns(server.netns, sys.executable, "-c", CONN_SERVER, server.ip,
                         str(CONN_PORT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_listening(server.netns, CONN_PORT)
            applied, applies, deletes, walk = False, [], [], {}
            steps = []
            for on in abba(rounds):
                if on and not applied:
                    wall, _ = timed(lambda: lab.apply([policy_file]))
                    applies.append(wall)
                    walk = walk or _walks(lab, client.ip, server.ip)
                elif applied and not on:
                    wall, _ = timed(lambda: lab.delete([policy_file]))
                    deletes.append(wall)
                applied = on
                step: dict[str, Any] = {"policies": on}
                if iperf_s > 0:
                    step["iperf"] = run_iperf(client.netns, client.ip, server.ip, iperf_s)
                    step["gbps"] = step["iperf"]["bits_per_second"] / 1e9
                step["conn"] = run_connections(client.netns, client.ip, server.ip, conn_s)
                step["conn_per_s"] = step["conn"]["per_second"]
                step["load"] = loadavg()
                steps.append(step)
                gbps = f"{step['gbps']:.2f} Gbit/s, " if "gbps" in step else ""
                log(f"  {policies} policies {'on' if on else 'off'}: {gbps}"
                    f"{step['conn_per_s']:.0f} conn/s, load {step['load']:.1f}")
        finally:
            stop(servers)
    result = {
        "policies": policies,
        "allow": "first" if allow_first else "last",
        "nodes": nodes,
        "walk": walk,
        "apply_s": summary(applies) if applies else None,
        "delete_s": summary(deletes) if deletes else None,
        "steps": steps,
        "failed_connections": sum(s["conn"]["failed"] for s in steps),
        "server_pids": [p.pid for p in servers],
    }
    for key in ("gbps", "conn_per_s"):
        if all(key in s for s in steps):
            result[key] = {str(on): summary([s[key] for s in steps if s["policies"] is on])
                           for on in (False, True)}
            result[f"{key}_ratio"] = summary(_ratios(steps, key))
    without, with_ = (result["conn_per_s"][k]["median"] for k in ("False", "True"))
    walked = sum(w["rules"] for w in walk.values())
    result["first_packet_us"] = 1e6 * (1 / with_ - 1 / without)
    result["ns_per_rule"] = 1e3 * result["first_packet_us"] / walked if walked else None
    return result


def measure_sweep(
    prefix: str, workdir: Path, counts: Sequence[int], *, rounds: int = 2, conn_s: float = 3.0
) -> list[dict[str, Any]]:
    """New connections/s for several policy counts (the allowing policy last), and the best
    case at the largest count (it first): what one NEW packet costs per rule it walks."""
    runs = [measure_traffic(prefix, workdir, policies=n, rounds=rounds, iperf_s=0,
                            conn_s=conn_s) for n in counts]
    runs.append(measure_traffic(prefix, workdir, policies=max(counts), rounds=rounds, iperf_s=0,
                                conn_s=conn_s, allow_first=True))
    return runs


def _walks(lab: Lab, client_ip: str, server_ip: str) -> dict[str, dict[str, int]]:
    """The client's egress walk on its node and the server's ingress walk on its node."""
    nodes = {n.name: n.netns for n in lab.status().nodes}
    pods = {p.ip: p.node for p in lab.status().pods}
    return {
        "client_egress": dispatch_walk(list_table(nodes[pods[client_ip]]), client_ip, "egress",
                                       port=CONN_PORT),
        "server_ingress": dispatch_walk(list_table(nodes[pods[server_ip]]), server_ip,
                                        "ingress", port=CONN_PORT),
    }


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the report ------------------------------------------------------------------------------------


def _s(stat: dict[str, Any], unit: str = "s", digits: int = 2) -> str:
    """`median unit (min–max, n runs)`."""
    low, high = f"{stat['min']:.{digits}f}", f"{stat['max']:.{digits}f}"
    unit = f" {unit}" if unit else ""
    return f"{stat['median']:.{digits}f}{unit} ({low}–{high}, {len(stat['runs'])} runs)"


def _ms(stat: dict[str, Any]) -> str:
    return (f"{stat['median'] * 1000:.0f} ms ({stat['min'] * 1000:.0f}–{stat['max'] * 1000:.0f}, "
            f"{len(stat['runs'])} runs)")


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    if "up" in results:
        up = results["up"]
        rows.append((f"lab up, {up['nodes']} nodes / {up['pods']} pods", _s(up["up_s"]), "–", "–"))
        rows.append(("lab down (same lab)", _s(up["down_s"]), "–", "–"))
    if "load" in results:
        g = results["load"]["generated"]
        k = g["kernel"]
        rows.append((
            f"render + atomic load, {g['policies']:,} policies / {g['pods']:,} pods "
            "(generate.py, all pods on the node)",
            f"{_ms(g['total_s'])}: render {g['render_s']['median'] * 1000:.0f}, text "
            f"{g['text_s']['median'] * 1000:.0f}, load {g['load_s']['median'] * 1000:.0f} ms "
            f"(replace {g['replace_s']['median'] * 1000:.0f} ms; engine compile "
            f"{g['compile_s']['median'] * 1000:.0f} ms more)", "–", "–"))
        rows.append(("… that table in the kernel",
                     f"{k['chains']:,} chains, {k['rules']:,} rules, {k['sets']} sets, "
                     f"{k['set_elements']:,} set + {k['map_elements']:,} map elements", "–", "–"))
        w = g["walks"]
        rows.append(("… policy chains a pod's dispatch chain jumps to (median / max)",
                     f"ingress {w['ingress']['chains_median']:g} / {w['ingress']['chains_max']}, "
                     f"egress {w['egress']['chains_median']:g} / {w['egress']['chains_max']} "
                     f"(rules to the chain's end: ingress {w['ingress']['rules_median']:g} / "
                     f"{w['ingress']['rules_max']}, egress {w['egress']['rules_median']:g} / "
                     f"{w['egress']['rules_max']})", "–", "–"))
        scaling = results["load"]["scaling"]
        pods = " / ".join(f"{r['pods']:,}" for r in scaling)
        shape = [(r["kernel"]["chains"], r["kernel"]["rules"]) for r in scaling]
        rows.append((
            f"fan-in cluster, {scaling[0]['policies']:,} policies, {pods} pods: chains, rules",
            " / ".join(f"{c:,}, {n:,}" for c, n in shape), "same for every pod count",
            _met(len(set(shape)) == 1)))
        for key, words in (("set_elements", "set elements"), ("map_elements", "map elements")):
            rows.append((f"… {words}", " / ".join(f"{r['kernel'][key]:,}" for r in scaling),
                         "grow with pods", "–"))
        rows.append(("… render + atomic load",
                     " / ".join(f"{r['total_s']['median'] * 1000:.0f}" for r in scaling) + " ms",
                     "–", "–"))
    if "probe" in results:
        p = results["probe"]
        for case, words in (("none", "no policy"), ("deny", "default deny everywhere")):
            c = p[case]
            rows.append((
                f"probe matrix, 9 pods × 6 probes, {words} (timeout {p['timeout_s']:g} s, "
                f"{p['parallelism']} in flight)",
                f"{_s(c['wall_s'])}; {c['probes']} probes, {c['denied']} denied",
                "0 mismatches", _met(c["mismatches"] == 0)))
    if "traffic" in results:
        t = results["traffic"]
        gb, cn = t["gbps"], t["conn_per_s"]
        walk = t["walk"]
        rows.append((
            "iperf3, 1 TCP stream across nodes (VXLAN), no policy", _s(gb["False"], "Gbit/s"),
            "–", "–"))
        rows.append((
            f"… with {t['policies']:,} policies, the allowing ones sorted {t['allow']} "
            f"(client's egress dispatch: "
            f"{walk['client_egress']['policy_chains']} policy chains / "
            f"{walk['client_egress']['rules']} rules to its end; server's ingress: "
            f"{walk['server_ingress']['policy_chains']} / {walk['server_ingress']['rules']})",
            _s(gb["True"], "Gbit/s"), "–", "–"))
        rows.append(("… ratio with / without (per ABBA pair)", _s(t["gbps_ratio"], ""),
                     f"≥ {IPERF_TARGET}", _met(t["gbps_ratio"]["median"] >= IPERF_TARGET)))
        rows.append(("new TCP connections/s across nodes, no policy", _s(cn["False"], "/s", 0),
                     "–", "–"))
        rows.append((f"… with {t['policies']:,} policies", _s(cn["True"], "/s", 0), "–", "–"))
        rows.append(("… ratio with / without (per ABBA pair)", _s(t["conn_per_s_ratio"], ""),
                     f"≥ {CONN_TARGET}", _met(t["conn_per_s_ratio"]["median"] >= CONN_TARGET)))
        rows.append(("… what the policies add to one connection (from the medians)",
                     _cost(t), "–", "–"))
        if t["apply_s"]:
            rows.append((f"kanal lab apply of the {t['policies']:,} policies (running lab)",
                         _s(t["apply_s"]), "–", "–"))
    for t in results.get("sweep", []):
        walked = sum(w["rules"] for w in t["walk"].values())
        rows.append((
            f"new connections/s with / without {t['policies']:,} policies, allowing policy "
            f"sorted {t['allow']} ({walked:,} rules in the two dispatch chains and their "
            "policy chains)",
            f"{_s(t['conn_per_s_ratio'], '')}; {_cost(t)}", f"≥ {CONN_TARGET}",
            _met(t["conn_per_s_ratio"]["median"] >= CONN_TARGET)))
    return rows


def _cost(t: dict[str, Any]) -> str:
    """Extra time per connection; per rule only when every rule is walked (allow last)."""
    per_rule = ""
    if t["ns_per_rule"] is not None and t["allow"] == "last":
        per_rule = f", {t['ns_per_rule']:.0f} ns per rule walked"
    return f"{t['first_packet_us']:+.1f} µs per connection{per_rule}"


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| metric | value (median (min–max, runs)) | target | met? |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(results)]
    return "\n".join(lines)


def commands(args: argparse.Namespace, sections: Sequence[str]) -> list[str]:
    """The command that reproduces each section alone, with this run's parameters."""
    base = ".venv/bin/python bench/bench_lab.py"
    extra = {
        "up": f"--repeat {args.repeat}",
        "load": f"--repeat {args.repeat} --policies {args.policies} --seed {args.seed}",
        "probe": f"--repeat {args.repeat}",
        "traffic": (f"--rounds {args.rounds} --policies {args.policies} "
                    f"--iperf-seconds {args.iperf_seconds:g} --conn-seconds {args.conn_seconds:g}"
                    + (" --allow-first" if args.allow_first else "")),
        "sweep": (f"--sweep {args.sweep} --rounds {args.rounds} "
                  f"--conn-seconds {args.conn_seconds:g}"),
    }
    return [f"{base} --only {s} {extra[s]}" for s in sections]


def run(args: argparse.Namespace, sections: Sequence[str]) -> dict[str, Any]:
    prefix = new_prefix()
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}bench-"))
    results: dict[str, Any] = {"prefix": prefix, "load_before": os.getloadavg()}
    try:
        if "up" in sections:
            log("up: 3 nodes, 30 pods")
            results["up"] = measure_up(prefix, workdir, repeat=args.repeat)
        if "load" in sections:
            log("load: render + atomic load")
            results["load"] = measure_load_section(prefix, pods=1000, policies=args.policies,
                                                   repeat=args.repeat, seed=args.seed)
        if "probe" in sections:
            log("probe: the classic 9-pod matrix")
            results["probe"] = measure_probe(prefix, workdir, repeat=args.repeat)
        if "traffic" in sections:
            log("traffic: iperf3 and new connections")
            results["traffic"] = measure_traffic(
                prefix, workdir, policies=args.policies, rounds=args.rounds,
                iperf_s=args.iperf_seconds, conn_s=args.conn_seconds,
                allow_first=args.allow_first)
        if "sweep" in sections:
            counts = [int(n) for n in args.sweep.split(",")]
            log(f"sweep: new connections/s at {counts} policies")
            results["sweep"] = measure_sweep(prefix, workdir, counts, rounds=args.rounds,
                                             conn_s=args.conn_seconds)
    finally:
        ensure_clean(prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    assert list_netns(prefix) == [], "namespaces left behind"
    results["load_after"] = os.getloadavg()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of up, load and probe")
    parser.add_argument("--rounds", type=int, default=4,
                        help="traffic and sweep: ABBA pairs of runs (each: without and with)")
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--iperf-seconds", type=float, default=5.0)
    parser.add_argument("--conn-seconds", type=float, default=3.0)
    parser.add_argument("--allow-first", action="store_true",
                        help="traffic: the allowing policies sort first (best case), not last")
    parser.add_argument("--sweep", default="100,300,1000",
                        help="sweep: policy counts for new connections/s (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="generate.py's seed (load)")
    parser.add_argument("--json", type=Path, help="write every raw number here ('-': stdout)")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}: choose from {', '.join(SECTIONS)}")
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, nftables)")
    results = run(args, sections)
    if args.json is not None:
        text = json.dumps(results, indent=2) + "\n"
        if str(args.json) == "-":
            sys.stdout.write(text)
            return 0
        args.json.write_text(text)
    print("```")
    print("\n".join(commands(args, sections)))
    print("```\n")
    print(markdown_table(results))
    before, after = results["load_before"][0], results["load_after"][0]
    print(f"\n2 cores shared with other work: 1-min load average {before:.1f} before, "
          f"{after:.1f} after; spread = (max - min) / median per metric, in the JSON.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
