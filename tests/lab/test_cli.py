"""`kanal lab ...`: exact output and exit codes, through `kanal.cli.main.main`."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kanal.cli.lab import change_lines
from kanal.cli.main import main
from kanal.dataplane.netns import list_netns
from kanal.lab.enforce import NodeUpdate
from kanal.lab.lab import LabChange

from .docs import deny_ingress, lab, namespace, pod, write

Capsys = pytest.CaptureFixture[str]


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_commands_on_a_directory_without_a_lab(tmp_path: Path, capsys: Capsys) -> None:
    state = str(tmp_path / "none")
    assert run(capsys, "lab", "status", "--state-dir", state) == (
        2,
        "",
        f"error: no lab is up (no state in `{state}`): start one with `kanal lab up -f PATH`\n",
    )
    assert run(capsys, "lab", "down", "--state-dir", state) == (
        0,
        "removed 0 network namespaces and stopped 0 processes\n",
        "note: nothing to remove: no lab is up\n",
    )


def test_invalid_manifests_exit_2_before_anything_is_built(tmp_path: Path, capsys: Capsys) -> None:
    bad = write(tmp_path / "bad.yaml", [pod("x/a", ports=((0, "TCP"),))])
    code, out, err = run(capsys, "lab", "up", "-f", bad, "--state-dir", str(tmp_path / "s"))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {bad}: Pod x/a: spec.containers[0].ports[0].containerPort")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("updates", "summary"), [
    ((NodeUpdate("node-1", "delta", reason="patched"), NodeUpdate("node-2", "unchanged")),
     "set elements updated (node-1 delta, node-2 unchanged)"),
    ((NodeUpdate("node-1", "delta", reason="restructured"), NodeUpdate("node-2", "delta")),
     "chains and set elements updated (node-1 delta, node-2 delta)"),
    ((NodeUpdate("node-1", "load", reason="structure changed"),),
     "whole tables reloaded (node-1 load)"),
], ids=["elements", "a chain added in place", "reloaded"])
def test_a_change_says_how_it_reached_the_kernels(
    updates: tuple[NodeUpdate, ...], summary: str
) -> None:
    assert change_lines(LabChange(updates=updates, elapsed_s=0.05)) == [
        f"applied in 0.05 s: {summary}"]


@pytest.mark.kernel
def test_up_status_probe_apply_delete_down(
    netns_prefix: str, tmp_path: Path, capsys: Capsys
) -> None:
    state = str(tmp_path / "state")
    docs = [namespace("x"), pod("x/a", ports=((80, "TCP"),)), pod("x/b", ports=((80, "TCP"),)),
            lab("demo", backend="host-gw")]
    up = write(tmp_path / "up.yaml", docs)
    where = ("--state-dir", state)
    try:
        code, out, err = run(capsys, "lab", "up", "-f", up, "--prefix", netns_prefix, *where)
        assert code == 0
        assert re.fullmatch(r"note: lab `demo` is up in \d+\.\d\d s: 2 nodes, 2 pods\n", err)
        p = netns_prefix
        header = "PODS  SERVERS  AGENT     LAST SYNC  RULES  ELEMENTS  COLLECTOR  FLOWS"
        row = "1     running  ready r1  load r1    8      1         running    0"  # pod guard
        assert out == f"""\
lab demo: up, backend host-gw, ipam node, cluster 10.244.0.0/16, prefix {p}, state {state}

NODE    NETNS{' ' * (len(p) + 5)}UNDERLAY       POD CIDR       {header}
node-1  {p}n-node-1  192.168.100.1  10.244.0.0/24  {row}
node-2  {p}n-node-2  192.168.100.2  10.244.1.0/24  {row}

POD  IP          NODE    NETNS
x/a  10.244.0.1  node-1  {p}p-x.a
x/b  10.244.1.1  node-2  {p}p-x.b
"""
        code, out, _ = run(capsys, "lab", "status", "-o", "json", *where)
        status = json.loads(out)
        assert status["pods"] == [
            {"name": "x/a", "ip": "10.244.0.1", "node": "node-1"},
            {"name": "x/b", "ip": "10.244.1.1", "node": "node-2"},
        ]
        assert [n["name"] for n in status["nodes"]] == ["node-1", "node-2"]
        assert (status["backend"], status["ipam"], status["problems"]) == ("host-gw", "node", [])
        assert set(status["nodes"][0]["ruleset"]) == {
            "chains", "rules", "sets", "set_elements", "map_elements"}
        assert status["flows"] == {"enabled": True, "db": f"{state}/flows.db"}
        collector = status["nodes"][0]["collector"]  # 2 servers, 2 agents, 2 collectors
        assert (collector["running"], collector["records"]) == (True, 0)
        agent = status["nodes"][0]["agent"]
        assert (agent["running"], agent["healthy"], agent["ready"]) == (True, True, True)
        assert agent["applied_revision"] == agent["store_revision"] == 1
        assert agent["last_sync"]["kind"] == "load"

        guard = write(tmp_path / "guard.yaml", [deny_ingress("x/guard", pod="b")])
        code, out, _ = run(capsys, "lab", "apply", "-f", guard, *where)
        assert code == 0
        assert re.fullmatch(
            r"applied in \d+\.\d\d s: whole tables reloaded \(node-1 unchanged, node-2 load\)\n",
            out,
        )

        code, out, _ = run(capsys, "lab", "probe", "--timeout", "0.5", "-o", "junit", *where)
        assert code == 0
        root = ET.fromstring(out)
        assert (root.get("tests"), root.get("failures")) == ("4", "0")

        code, out, _ = run(capsys, "lab", "probe", "--timeout", "0.5", "--from", "x/a", *where)
        assert code == 0
        assert out.splitlines()[:6] == [
            "80/TCP measured in the kernel: the engine agrees on all 2 pairs",
            "+--------+-----+-----+",
            "| 80/TCP | x/a | x/b |",
            "+--------+-----+-----+",
            "| x/a    | .   | X   |",
            "+--------+-----+-----+",
        ]

        code, out, _ = run(capsys, "lab", "delete", "-f", guard, "-o", "json", *where)
        assert json.loads(out) == {
            "added": [], "removed": [], "servers_restarted": [],
            "nodes": [{"name": "node-1", "update": "unchanged"},
                      {"name": "node-2", "update": "load"}],
        }
        code, out, err = run(capsys, "lab", "probe", "--from", "no/such", *where)
        assert (code, err) == (2, "error: no pod `no/such` in lab `demo`: see `kanal lab status`\n")
    finally:
        code, out, _ = run(capsys, "lab", "down", *where)
    assert (code, out) == (0, "removed 5 network namespaces and stopped 6 processes\n")
    assert list_netns(netns_prefix) == [] and not Path(state).exists()
