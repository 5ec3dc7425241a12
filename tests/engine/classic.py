"""The classic model of upstream's network policy e2e tests and of cyclonus, and its truth tables.

Namespaces x, y, z (labels `ns: x`, plus the automatic `kubernetes.io/metadata.name`), pods a, b,
c in each (label `pod: a`), every pod serving 80 and 81 on TCP, UDP and SCTP under the names
upstream gives them (`serve-80-tcp`, ...). Addresses follow the namespace, so a CIDR reads as a
set of pods:

```
            IPv4          IPv6
x/a  x/b    10.0.1.1 ...  fd00:0:0:1::1 ...      10.0.1.0/24 = fd00:0:0:1::/64 = namespace x
y/a  ...    10.0.2.1 ...  fd00:0:0:2::1 ...      10.0.2.0/24 = namespace y, and so on
```

A truth table is written as cyclonus and `kanal matrix` print it, the probe in the corner,
sources down, destinations across, `.` allowed and `X` denied:

```
80/TCP  x/a x/b x/c y/a y/b y/c z/a z/b z/c
x/a      X   X   X   .   .   .   .   .   .
...
```

Several tables are separated by a blank line. `assert_truth_tables` checks every cell against
both `compute_matrix` and `PolicyEngine.explain`, except the diagonal: a pod talking to itself is
written `.` ("a pod cannot block access to itself", Kubernetes documentation) and, as in
upstream's e2e tests (ignoreLoopback, kubernetes/kubernetes#95879), not compared; that rule has
its own test in test_semantics.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kanal.engine import PolicyEngine
from kanal.engine.matrix import compute_matrix
from kanal.model.objects import Manifests, Protocol
from kanal.model.parse import parse_documents

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PODS = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in POD_NAMES)
SERVED = tuple((port, proto) for port in (80, 81) for proto in ("TCP", "UDP", "SCTP"))
FAMILIES = ("ipv4", "ipv6", "dual")

Doc = dict[str, Any]
Tweak = Callable[[list[Doc]], None]
"""Changes the model's documents in place before they are parsed."""


# -- the model -------------------------------------------------------------------------------------


def ipv4_of(pod: str) -> str:
    ns, name = pod.split("/")
    return f"10.0.{NAMESPACES.index(ns) + 1}.{POD_NAMES.index(name) + 1}"


def ipv6_of(pod: str) -> str:
    ns, name = pod.split("/")
    return f"fd00:0:0:{NAMESPACES.index(ns) + 1}::{POD_NAMES.index(name) + 1}"


def port_name(port: int, protocol: str) -> str:
    return f"serve-{port}-{protocol.lower()}"


def _namespace(ns: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"ns": ns}}}


def _pod(key: str, family: str) -> Doc:
    ns, name = key.split("/")
    ips = {"ipv4": [ipv4_of(key)], "ipv6": [ipv6_of(key)], "dual": [ipv4_of(key), ipv6_of(key)]}
    containers = [
        {
            "name": f"cont-{port}-{proto.lower()}",
            "ports": [{"containerPort": port, "protocol": proto, "name": port_name(port, proto)}],
        }
        for port, proto in SERVED
    ]
    addresses = ips[family]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
        "spec": {"nodeName": "node-1", "containers": containers},
        "status": {"podIP": addresses[0], "podIPs": [{"ip": ip} for ip in addresses]},
    }


def model_docs(family: str = "ipv4", tweaks: Iterable[Tweak] = ()) -> list[Doc]:
    """Namespace and Pod manifests of the model, `family` one of FAMILIES."""
    docs = [_namespace(ns) for ns in NAMESPACES] + [_pod(key, family) for key in PODS]
    for tweak in tweaks:
        tweak(docs)
    return docs


def _find(docs: list[Doc], kind: str, key: str) -> Doc:
    ns, _, name = key.rpartition("/")
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == kind and meta["name"] == name and meta.get("namespace", "") == ns:
            return doc
    raise KeyError(f"no {kind} {key} in the model")


def pod_labels(key: str, labels: Mapping[str, str]) -> Tweak:
    """Add labels to one pod (`x/a`)."""

    def tweak(docs: list[Doc]) -> None:
        _find(docs, "Pod", key)["metadata"]["labels"].update(labels)

    return tweak


def namespace_labels(ns: str, labels: Mapping[str, str]) -> Tweak:
    def tweak(docs: list[Doc]) -> None:
        _find(docs, "Namespace", ns)["metadata"]["labels"].update(labels)

    return tweak


def rename_ports(key: str, names: Mapping[str, str]) -> Tweak:
    """Give one pod's container ports other names: `{"80/TCP": "serve-81-tcp", ...}`."""

    def tweak(docs: list[Doc]) -> None:
        for container in _find(docs, "Pod", key)["spec"]["containers"]:
            for port in container["ports"]:
                new = names.get(f"{port['containerPort']}/{port['protocol']}")
                if new is not None:
                    port["name"] = new

    return tweak


TWEAKS: dict[str, Callable[[str, Any], Tweak]] = {
    "pod_labels": pod_labels,
    "namespace_labels": namespace_labels,
    "port_names": rename_ports,
}
"""Scenario fixture keys (`cluster: {pod_labels: {x/a: {k: v}}}`) and the tweak each builds."""


def tweaks_from(cluster: Mapping[str, Any]) -> list[Tweak]:
    found: list[Tweak] = []
    for key, per_object in cluster.items():
        if key != "family":
            found += [TWEAKS[key](name, value) for name, value in per_object.items()]
    return found


def manifests(
    policies: Iterable[Doc], *, family: str = "ipv4", tweaks: Iterable[Tweak] = ()
) -> Manifests:
    """The model plus `policies`, through the validating parser as `kanal -f` reads them."""
    docs = model_docs(family, tweaks) + [copy.deepcopy(p) for p in policies]
    return parse_documents((f"doc {i}", doc) for i, doc in enumerate(docs, start=1))


# -- truth tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    port: int
    protocol: Protocol
    pods: tuple[str, ...]
    allowed: tuple[tuple[bool, ...], ...]
    """allowed[i][j]: pods[i] -> pods[j]."""

    @property
    def probe(self) -> str:
        return f"{self.port}/{self.protocol}"

    def off_diagonal(self) -> Table:
        """The table with every pod-to-itself cell set to allowed, for comparing the rest."""
        cells = tuple(
            tuple(ok or i == j for j, ok in enumerate(row)) for i, row in enumerate(self.allowed)
        )
        return Table(self.port, self.protocol, self.pods, cells)

    def diagonal_allowed(self) -> bool:
        return all(self.allowed[i][i] for i in range(len(self.pods)))

    def render(self) -> str:
        """One canonical layout, so that two tables compare (and diff) as text."""
        width = max(len("80/SCTP"), len(self.probe), *(len(p) for p in self.pods))
        head = f"{self.probe:<{width}} " + " ".join(f"{p:^3}" for p in self.pods)
        rows = [
            f"{src:<{width}} " + " ".join(f"{'.' if ok else 'X':^3}" for ok in row)
            for src, row in zip(self.pods, self.allowed, strict=True)
        ]
        return "\n".join(line.rstrip() for line in [head, *rows])


def parse_tables(text: str) -> list[Table]:
    tables: list[Table] = []
    for block in text.strip().split("\n\n"):
        head, *rows = [line.split() for line in block.strip().splitlines()]
        probe, *pods = head
        port, protocol = probe.split("/")
        assert [r[0] for r in rows] == pods, f"{probe}: rows must list the columns' pods in order"
        assert all(len(r) == len(pods) + 1 for r in rows), f"{probe}: a row has a wrong length"
        assert all(c in ".X" for r in rows for c in r[1:]), f"{probe}: cells are `.` or `X`"
        cells = tuple(tuple(c == "." for c in r[1:]) for r in rows)
        tables.append(Table(int(port), Protocol(protocol), tuple(pods), cells))
    return tables


def matrix_table(engine: PolicyEngine, port: int, protocol: Protocol) -> Table:
    m = compute_matrix(engine, port=port, protocol=protocol)
    return Table(port, protocol, tuple(m.pods), tuple(tuple(map(bool, r)) for r in m.allowed))


def explain_table(engine: PolicyEngine, port: int, protocol: Protocol) -> Table:
    pods = tuple(sorted(engine.pods()))
    cells = tuple(
        tuple(engine.explain(src, dst, port, protocol).allowed for dst in pods) for src in pods
    )
    return Table(port, protocol, pods, cells)


def assert_truth_tables(engine: PolicyEngine, expected: str) -> None:
    """Every table of `expected` equals the matrix and the cell-by-cell `explain` verdicts, off
    the diagonal."""
    for table in parse_tables(expected):
        for source, compute in (("compute_matrix", matrix_table), ("explain", explain_table)):
            got = compute(engine, table.port, table.protocol)
            assert got.off_diagonal() == table.off_diagonal(), _difference(source, got, table)


def _difference(source: str, got: Table, want: Table) -> str:
    """Both tables and the differing cells (this module is not assertion-rewritten)."""
    cells = [
        f"{src} -> {dst}: {'allowed' if ok else 'denied'}, expected the opposite"
        for i, src in enumerate(got.pods)
        for j, dst in enumerate(got.pods)
        if (ok := got.allowed[i][j]) != want.allowed[i][j] and i != j
    ]
    return "\n".join(
        [
            f"{source} disagrees on {want.probe}:",
            *cells,
            "got (the diagonal is not compared):",
            got.render(),
            "expected:",
            want.render(),
        ]
    )


# -- scenario fixtures -----------------------------------------------------------------------------


def load_scenarios(directory: Path) -> list[Any]:
    """One `pytest.param` per scenario of the directory's *.yaml files (not recursive), with the
    scenario's sentence as id; `xfail: <reason>` marks a known engine bug (strict)."""
    params = []
    for path in sorted(directory.glob("*.yaml")):
        for scenario in yaml.safe_load(path.read_text()):
            bug = scenario.get("xfail")
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(scenario, id=scenario["id"], marks=marks))
    return params


def check_scenario(scenario: Mapping[str, Any]) -> None:
    """Build the model with the scenario's policies and tweaks; check every table."""
    cluster = scenario.get("cluster") or {}
    m = manifests(
        scenario["policies"], family=cluster.get("family", "ipv4"), tweaks=tweaks_from(cluster)
    )
    assert_truth_tables(PolicyEngine.from_manifests(m), scenario["expect"])
