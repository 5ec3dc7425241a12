"""Pod servers (one process, many netns) and the prober, on a real 2-node host-gw lab.

Layout (from `minilab`): pods n0-p0, n0-p1 on node n0 and n1-p0, n1-p1 on node n1. Every pod but
n1-p1 serves 80/TCP, 53/UDP and 9000/SCTP; n1-p1 serves 80/TCP only (no SCTP socket at all).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import minilab
from kanal.dataplane.netns import list_netns, netns_pids
from kanal.dataplane.nft import Nft
from kanal.errors import DataplaneError
from kanal.lab.prober import Probe, probe, probe_many
from kanal.lab.servers import ServedPod, dump_spec
from kanal.model.objects import Protocol

pytestmark = pytest.mark.kernel

TCP, UDP, SCTP = Protocol.TCP, Protocol.UDP, Protocol.SCTP
SERVED = {TCP: 80, UDP: 53, SCTP: 9000}
TIMEOUT_S = 0.5


@dataclass
class ServedLab:
    lab: minilab.MiniLab
    servers: subprocess.Popen[str]
    ready_file: Path

    def pod(self, name: str) -> minilab.MiniPod:
        return next(p for p in self.lab.pods if p.name == name)

    def probe(self, src: str, dst: str, protocol: Protocol, port: int | None = None) -> Probe:
        port = SERVED[protocol] if port is None else port
        return Probe(self.pod(src).netns, self.pod(dst).ip, port, protocol)


def _served(pod: minilab.MiniPod) -> ServedPod:
    ports = ((80, TCP),) if pod.name == "n1-p1" else tuple((p, t) for t, p in SERVED.items())
    return ServedPod(pod.name, pod.netns, pod.ip, ports)


@pytest.fixture(scope="module")
def served_lab(
    module_netns_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedLab]:
    """One lab and one server process for the module; tests that change the kernel undo it
    (see `node_table`), and the teardown proves the server stops cleanly and leaves nothing."""
    lab = minilab.build(module_netns_prefix, backend="host-gw")
    proc = None
    try:
        tmp = tmp_path_factory.mktemp("servers")
        spec = tmp / "spec.json"
        spec.write_text(dump_spec([_served(p) for p in lab.pods]))
        proc = minilab.start_servers(spec, tmp / "ready")
        yield ServedLab(lab, proc, tmp / "ready")
        assert minilab.stop_servers(proc) == 0, "servers must exit 0 on SIGTERM"
        for name in lab.all_netns():
            assert netns_pids(name) == [], f"process left in netns `{name}`"
    finally:
        if proc is not None:
            minilab.stop_servers(proc)
        minilab.teardown(lab)


@pytest.fixture
def node_table(served_lab: ServedLab) -> Iterator[Callable[[str, str], None]]:
    """Load `table inet kanaltest { <body> }` into a node; removed again after the test."""
    loaded: list[str] = []

    def load(node: str, body: str) -> None:
        with Nft(node) as nft:
            nft.run(f"table inet kanaltest {{\n{body}\n}}\n")
        loaded.append(node)

    yield load
    for node in loaded:
        with Nft(node) as nft:
            nft.run("delete table inet kanaltest")


def test_the_ready_file_counts_every_socket(served_lab: ServedLab) -> None:
    # 3 pods x (TCP + UDP + one raw SCTP socket) + n1-p1's TCP
    assert served_lab.ready_file.read_text() == "ready 10\n"


@pytest.mark.parametrize("protocol", [TCP, UDP, SCTP])
@pytest.mark.parametrize("dst", ["n0-p1", "n1-p0"], ids=["same node", "other node"])
def test_a_served_port_connects_and_the_reply_names_the_pod(
    served_lab: ServedLab, protocol: Protocol, dst: str
) -> None:
    result = probe(served_lab.probe("n0-p0", dst, protocol), timeout_s=TIMEOUT_S)
    assert result.connected, result
    assert f"{dst} {SERVED[protocol]}/{protocol}" in result.detail
    assert result.elapsed_s < TIMEOUT_S / 2


@pytest.mark.parametrize(
    ("protocol", "dst", "port", "detail"),
    [
        pytest.param(TCP, "n1-p0", 81, "refused (RST)", id="TCP to a closed port: RST"),
        pytest.param(UDP, "n1-p0", 54, "refused (ICMP port unreachable)", id="UDP closed port"),
        pytest.param(SCTP, "n1-p0", 9001, "refused (ABORT)", id="SCTP to an unserved port"),
        pytest.param(
            SCTP, "n1-p1", 9000, "refused (ICMP protocol unreachable)", id="SCTP to a pod without"
        ),
    ],
)
def test_a_closed_port_is_refused_at_once_not_timed_out(
    served_lab: ServedLab, protocol: Protocol, dst: str, port: int, detail: str
) -> None:
    result = probe(served_lab.probe("n0-p0", dst, protocol, port), timeout_s=TIMEOUT_S)
    assert (result.connected, result.detail) == (False, detail)
    assert result.elapsed_s < TIMEOUT_S / 2


@pytest.mark.parametrize("protocol", [TCP, UDP, SCTP])
def test_a_drop_in_the_node_forward_hook_makes_the_probe_time_out(
    served_lab: ServedLab, node_table: Callable[[str, str], None], protocol: Protocol
) -> None:
    dst = served_lab.pod("n1-p0")
    node_table(
        dst.node,
        f"chain forward {{\n type filter hook forward priority filter; policy accept;\n"
        f" ip daddr {dst.ip} drop\n}}",
    )
    result = probe(served_lab.probe("n0-p0", "n1-p0", protocol), timeout_s=TIMEOUT_S)
    assert not result.connected
    assert result.detail.startswith("timed out")
    assert TIMEOUT_S <= result.elapsed_s < TIMEOUT_S + 0.3
    assert probe(served_lab.probe("n0-p0", "n0-p1", protocol), timeout_s=TIMEOUT_S).connected


def test_replies_pass_as_established_under_a_default_drop_forward_chain(
    served_lab: ServedLab, node_table: Callable[[str, str], None]
) -> None:
    """Conntrack must see the hand-built SCTP INIT as new and the INIT-ACK as established,
    exactly as it does for the TCP handshake and the UDP echo."""
    dst = served_lab.pod("n1-p0")
    node_table(
        dst.node,
        "chain forward {\n type filter hook forward priority filter; policy drop;\n"
        " ct state established,related accept\n"
        f" ip daddr {dst.ip} tcp dport 80 accept\n"
        f" ip daddr {dst.ip} udp dport 53 accept\n"
        f" ip daddr {dst.ip} sctp dport 9000 accept\n}}",
    )
    for protocol in (TCP, UDP, SCTP):
        assert probe(served_lab.probe("n0-p0", "n1-p0", protocol), timeout_s=TIMEOUT_S).connected
        result = probe(served_lab.probe("n0-p0", "n1-p1", protocol, 80), timeout_s=TIMEOUT_S)
        assert not result.connected and result.detail.startswith("timed out"), result


def test_probe_many_keeps_order_and_runs_denied_probes_in_parallel(
    served_lab: ServedLab, node_table: Callable[[str, str], None]
) -> None:
    dst = served_lab.pod("n1-p1")
    node_table(
        dst.node,
        "chain forward {\n type filter hook forward priority filter;\n"
        f" ct state established accept\n ip daddr {dst.ip} drop\n}}",
    )
    names = [p.name for p in served_lab.lab.pods]
    targets = [served_lab.probe(s, d, TCP) for s in names for d in names if s != d]
    start = time.monotonic()
    results = probe_many(targets, timeout_s=TIMEOUT_S, parallelism=16)
    elapsed = time.monotonic() - start
    denied = [t.dst_ip == dst.ip for t in targets]
    assert [not r.connected for r in results] == denied
    assert elapsed < 2 * TIMEOUT_S, "3 denied probes must overlap, not queue"
    for target, result in zip(targets, results, strict=True):
        if result.connected:
            name = next(p.name for p in served_lab.lab.pods if p.ip == target.dst_ip)
            assert name in result.detail


def test_probing_from_a_missing_netns_raises(netns_prefix: str) -> None:
    target = Probe(netns_prefix + "missing", IPv4Address("10.244.1.2"), 80, TCP)
    with pytest.raises(DataplaneError, match="missing"):
        probe(target)


def test_a_spec_naming_a_missing_netns_exits_2_without_readiness(
    netns_prefix: str, tmp_path: Path
) -> None:
    ghost = netns_prefix + "ghost"
    pod = ServedPod("default/ghost", ghost, IPv4Address("10.244.1.2"), ((80, TCP),))
    spec = tmp_path / "spec.json"
    spec.write_text(dump_spec([pod]))
    done = subprocess.run(
        [sys.executable, "-m", "kanal.lab.servers", "--spec", str(spec),
         "--ready-file", str(tmp_path / "ready")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2
    assert f"`default/ghost` 80/TCP on 10.244.1.2 in netns `{netns_prefix}ghost`" in done.stderr
    assert not (tmp_path / "ready").exists()
    assert list_netns(netns_prefix) == [], "the server must not create a netns"


def test_a_malformed_spec_on_stdin_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kanal.lab.servers", "--spec", "-"],
        input='{"pods": [{"name": "x"}]}', capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 2
    assert "invalid pod server spec" in done.stderr
