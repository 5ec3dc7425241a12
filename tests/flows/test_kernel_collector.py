"""Real packets, real NFLOG and conntrack: collectors on a 2-node minilab record every probe
with pod names and the rule that decided, and bytes once connections end.

The cluster is `cluster.py`'s (x/web isolated by a default deny, clients in y admitted on http
and 53/UDP, z/other egress-isolated), rendered with a log group and loaded in each node.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import minilab
from kanal.dataplane.netns import entered
from kanal.dataplane.nft import Nft, load_table_atomically
from kanal.engine import PolicyEngine
from kanal.flows.attribute import same_decision
from kanal.flows.collector import Collector, CollectorConfig, collector_command
from kanal.flows.filters import FlowFilter
from kanal.flows.records import FlowRecord, Source
from kanal.flows.store import FlowStore
from kanal.lab.prober import Probe, probe_many
from kanal.lab.servers import PodServers, ServedPod
from kanal.model.objects import Direction, Protocol
from kanal.render import RenderOptions, render_node, table_text
from kanal.store.sqlite import SqliteStore

from . import cluster

pytestmark = pytest.mark.kernel

GROUP = 7
SHORT_TIMEOUTS = {  # conntrack entries of ended connections expire within a second
    "nf_conntrack_tcp_timeout_time_wait": "1",
    "nf_conntrack_tcp_timeout_close": "1",
    "nf_conntrack_udp_timeout": "1",
    "nf_conntrack_udp_timeout_stream": "1",
}


@dataclass
class Lab:
    minilab: minilab.MiniLab
    engine: PolicyEngine
    manifests: Path
    db: Path

    def pod(self, name: str) -> minilab.MiniPod:
        index = [p[1] for p in cluster.PODS].index(name)
        return self.minilab.pods[index]


@pytest.fixture
def lab(netns_prefix: str, tmp_path: Path) -> Iterator[Lab]:
    built = minilab.build(netns_prefix, backend="vxlan")
    try:
        docs = cluster.documents([p.node for p in built.pods], [str(p.ip) for p in built.pods])
        engine = cluster.engine(docs)
        for node in built.nodes:
            ruleset = render_node(engine, node, RenderOptions(log_group=GROUP))
            assert ruleset.problems == ()
            with Nft(node) as nft:
                load_table_atomically(nft, table_text(ruleset))
            with entered(node):
                for name, value in SHORT_TIMEOUTS.items():
                    Path(f"/proc/sys/net/netfilter/{name}").write_text(value)
        manifests = cluster.write(tmp_path / "cluster.json", docs)
        yield Lab(built, engine, manifests, tmp_path / "flows.db")
    finally:
        minilab.teardown(built)


@pytest.fixture
def servers(lab: Lab) -> Iterator[None]:
    web = lab.pod("web")
    served = PodServers([ServedPod("x/web", web.netns, web.ip,
                                   ((80, Protocol.TCP), (81, Protocol.TCP), (53, Protocol.UDP)))])
    served.bind()
    thread = threading.Thread(target=served.serve)
    thread.start()
    try:
        yield
    finally:
        served.stop()
        thread.join(timeout=5)
        served.close()


@pytest.fixture
def collectors(lab: Lab) -> Iterator[list[Collector]]:
    stop = threading.Event()
    running: list[tuple[Collector, threading.Thread]] = []
    try:
        for node in lab.minilab.nodes:
            collector = Collector(CollectorConfig(node=node, group=GROUP, db=lab.db,
                                                  manifests=lab.manifests, netns=node))
            collector.open()
            thread = threading.Thread(target=collector.run, args=(stop,))
            thread.start()
            running.append((collector, thread))
        yield [c for c, _ in running]
    finally:
        stop.set()
        for collector, thread in running:
            thread.join(timeout=5)
            collector.close()


def _probe(lab: Lab, cases: list[tuple[str, str, int, Protocol]]) -> list[bool]:
    probes = [Probe(lab.pod(s).netns, lab.pod(d).ip, port, proto) for s, d, port, proto in cases]
    return [r.connected for r in probe_many(probes, timeout_s=0.5)]


def _wait_for(predicate: object, timeout_s: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _brief(record: FlowRecord) -> tuple[str, str, int | None, str, str, str, str]:
    return (record.src.describe(), record.dst.describe(), record.dst.port,
            record.direction.value, record.verdict.value, record.decision.describe(),
            record.source.value)


CASES = [
    ("client-a", "web", 80, Protocol.TCP),   # same node, admitted by x/allow-clients
    ("client-b", "web", 80, Protocol.TCP),   # cross node, admitted
    ("other", "web", 80, Protocol.TCP),      # egress allowed at n1, ingress default deny at n0
    ("client-a", "web", 81, Protocol.TCP),   # same node, no rule admits 81: default deny
    ("other", "client-b", 80, Protocol.TCP),  # egress default deny at n1
    ("client-b", "web", 53, Protocol.UDP),   # cross node, admitted on 53/UDP
]
ISOLATED = "default deny (isolated by x/allow-clients, x/default-deny)"
ALLOW = "[NetworkPolicy x/allow-clients] rule #0 Allow"
EXPECTED = {
    ("y/client-a", "x/web", 80, "Ingress", "allowed", ALLOW, "nflog"),
    ("y/client-a", "x/web", 80, "Egress", "allowed", "not isolated", "conntrack"),
    ("y/client-b", "x/web", 80, "Ingress", "allowed", ALLOW, "nflog"),
    ("y/client-b", "x/web", 80, "Egress", "allowed", "not isolated", "conntrack"),
    ("z/other", "x/web", 80, "Egress", "allowed",
     "[NetworkPolicy z/egress-only] rule #0 Allow", "nflog"),
    ("z/other", "x/web", 80, "Ingress", "denied", ISOLATED, "nflog"),
    ("y/client-a", "x/web", 81, "Ingress", "denied", ISOLATED, "nflog"),
    ("z/other", "y/client-b", 80, "Egress", "denied",
     "default deny (isolated by z/egress-only)", "nflog"),
    ("y/client-b", "x/web", 53, "Ingress", "allowed", ALLOW, "nflog"),
    ("y/client-b", "x/web", 53, "Egress", "allowed", "not isolated", "conntrack"),
}


def test_collectors_record_every_probe_with_pods_rule_and_bytes(
    lab: Lab, servers: None, collectors: list[Collector]
) -> None:
    connected = _probe(lab, CASES)
    assert connected == [True, True, False, False, False, True]
    store = FlowStore(lab.db, create=False)
    try:
        _wait_for(lambda: {_brief(r) for r in store.query(FlowFilter())} >= EXPECTED, 10)
        records = store.query(FlowFilter())
        # Denied TCP attempts may be retransmitted (one record each); nothing else is recorded.
        assert {_brief(r) for r in records} == EXPECTED
        for record in records:
            verdict = lab.engine.explain(record.src.describe(), record.dst.describe(),
                                         record.dst.port or 0, Protocol(record.protocol))
            step = (verdict.egress if record.direction is Direction.EGRESS
                    else verdict.ingress).deciding
            assert same_decision(record.decision, step), record
            assert record.node == lab.pod(
                record.src.pod if record.direction is Direction.EGRESS else record.dst.pod or ""
            ).node
        web = next(r for r in records if r.dst.pod == "web" and r.verdict.value == "allowed"
                   and r.direction is Direction.INGRESS)
        assert web.dst.labels == {"app": "web"} and web.src.namespace == "y"
        assert "isolated for ingress by policies `x/allow-clients`, `x/default-deny`" in next(
            r.summary for r in records if r.dst.port == 81)

        # Bytes once connections end: every connection that was established. z/other's
        # egress was allowed at n1 but its SYNs were dropped at n0: that entry stays SYN_SENT
        # (2 minutes) and its record gets its bytes only then.
        def established(record: FlowRecord) -> bool:
            return record.verdict.value == "allowed" and record.src.pod != "other"

        _wait_for(lambda: all(r.completion for r in store.query(FlowFilter())
                              if established(r)), 30)
        done = [r for r in store.query(FlowFilter()) if established(r)]
        assert len(done) == 6
        for record in done:
            assert record.completion is not None
            assert record.completion.bytes > 0 and record.completion.packets >= 2
            assert 0 <= record.completion.duration < 1.0, record
        tcp = next(r for r in done if r.protocol == "TCP")
        assert tcp.completion is not None and tcp.completion.packets >= 5  # handshake + FINs
        stats = store.totals()
        hits = {c.labels["decision"]: c.value for c in stats.counters
                if c.name == "decision_hits"}
        assert sum(hits.values()) == len(store.query(FlowFilter()))
    finally:
        store.close()


def test_collector_process_reads_the_datastore_records_and_stops(
    lab: Lab, servers: None, tmp_path: Path
) -> None:
    node = lab.pod("web").node
    datastore = SqliteStore(tmp_path / "store.db")  # as the lab's agents read it
    datastore.apply([("cluster", d) for d in cluster.documents(
        [p.node for p in lab.minilab.pods], [str(p.ip) for p in lab.minilab.pods])])
    datastore.close()
    ready = tmp_path / "ready"
    argv = collector_command(node=node, netns=node, group=GROUP, db=lab.db,
                             manifests=tmp_path / "store.db", ready_file=ready,
                             python=sys.executable)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: ready.exists() or proc.poll() is not None, 15)
        assert proc.poll() is None, proc.communicate()
        assert _probe(lab, [("client-a", "web", 81, Protocol.TCP)]) == [False]
        store = FlowStore(lab.db, create=False)
        try:
            _wait_for(lambda: store.query(FlowFilter(port=81)), 5)
            record = store.query(FlowFilter(port=81))[0]
            assert (record.src.describe(), record.dst.describe()) == ("y/client-a", "x/web")
            assert record.decision.describe() == ISOLATED and record.source is Source.NFLOG
        finally:
            store.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "loaded 4 pods, 3 policies" in err


def test_a_second_listener_on_the_group_is_refused_with_the_reason(lab: Lab) -> None:
    from kanal.errors import DataplaneError
    from kanal.flows.nflog import NflogSocket

    with entered(lab.minilab.nodes[0]):
        first = NflogSocket(GROUP)
        try:
            with pytest.raises(DataplaneError, match="refused"):
                NflogSocket(GROUP)
        finally:
            first.close()


def test_a_table_newer_than_the_collectors_manifests_is_attributed_after_a_reload(
    lab: Lab, servers: None
) -> None:
    node = lab.pod("web").node
    collector = Collector(CollectorConfig(node=node, group=GROUP, db=lab.db,
                                          manifests=lab.manifests, netns=node,
                                          reload_interval_s=3600.0))
    collector.open()
    try:
        allow_81 = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "allow-81", "namespace": "x"},
                    "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 81}]}]}}
        docs = [*cluster.documents([p.node for p in lab.minilab.pods],
                                   [str(p.ip) for p in lab.minilab.pods]), allow_81]
        partial = lab.manifests.with_suffix(".partial")
        cluster.write(partial, docs)
        partial.replace(lab.manifests)  # as the lab must write it: atomically
        ruleset = render_node(cluster.engine(docs), node, RenderOptions(log_group=GROUP))
        with Nft(node) as nft:
            load_table_atomically(nft, table_text(ruleset))
        assert _probe(lab, [("client-a", "web", 81, Protocol.TCP)]) == [True]
        deadline = time.monotonic() + 5
        while not collector.store.query(FlowFilter(port=81)):
            assert time.monotonic() < deadline
            collector.step(timeout=0.1)
        [record] = collector.store.query(FlowFilter(port=81))
        assert record.decision.describe() == "[NetworkPolicy x/allow-81] rule #0 Allow"
        collector.step(timeout=0.0)
    finally:
        collector.close()
    store = FlowStore(lab.db, create=False)
    counters = {c.name: c.value for c in store.counters()
                if c.name in ("reloads", "unknown_log_ids")}
    store.close()
    assert counters == {"reloads": 1}


def test_a_table_older_than_the_collectors_manifests_is_attributed_as_the_kernel_ran_it(
    lab: Lab, servers: None
) -> None:
    node = lab.pod("web").node
    collector = Collector(CollectorConfig(node=node, group=GROUP, db=lab.db,
                                          manifests=lab.manifests, netns=node,
                                          reload_interval_s=0.0))
    collector.open()
    try:  # allow-clients is deleted from the manifests; the kernel still runs the old table
        docs = [d for d in cluster.documents([p.node for p in lab.minilab.pods],
                                             [str(p.ip) for p in lab.minilab.pods])
                if d["metadata"]["name"] != "allow-clients"]
        partial = lab.manifests.with_suffix(".partial")
        cluster.write(partial, docs)
        partial.replace(lab.manifests)
        collector.step(timeout=0.0)
        assert _probe(lab, [("client-a", "web", 80, Protocol.TCP)]) == [True]
        deadline = time.monotonic() + 5
        while not collector.store.query(FlowFilter(port=80)):
            assert time.monotonic() < deadline
            collector.step(timeout=0.1)
        record = next(r for r in collector.store.query(FlowFilter(port=80))
                      if r.source is Source.NFLOG)
        assert record.decision.describe() == ALLOW
        assert "the table in the kernel and the collector's manifests differ" in record.summary
    finally:
        collector.close()
    store = FlowStore(lab.db, create=False)
    counters = {c.name: c.value for c in store.counters()
                if c.name in ("reloads", "unknown_log_ids", "disagreements")}
    store.close()
    assert counters == {"reloads": 1, "disagreements": 1}
