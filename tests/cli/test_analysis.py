"""`kanal check`, `kanal explain`, `kanal matrix`: exact output and exit codes.

Most cases run `main()` in-process; two run the installed `kanal` script, for the real entry
point. Fixtures: the README's example (examples/three-tier) and the classic model (namespaces
x, y, z × pods a, b, c, port 80) with y locked down except y/a from namespace x.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kanal.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "three-tier")
KANAL = Path(sys.executable).parent / "kanal"
SKIPPED_DEPLOYMENT = (
    f"note: {EXAMPLE}/90-deployment.yaml: skipped Deployment frontend/web "
    "(kanal does not use this kind)\n"
)


@dataclass(frozen=True)
class Run:
    code: int | str | None
    out: str
    err: str


@pytest.fixture
def kanal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`kanal("check -f PATH ...", stdin=None) -> Run`: main() in-process on the command line
    split as a shell would, with argparse's exits caught."""

    def run(command: str = "", stdin: str | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code: int | str | None = main(shlex.split(command))
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


# -- the classic model -----------------------------------------------------------------------------


def _classic_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for n, ns in enumerate("xyz", start=1):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"ns": ns}},
            }
        )
        for m, pod in enumerate("abc", start=1):
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                    "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
                    "status": {"podIP": f"10.0.{n}.{m}"},
                }
            )
    return docs


def _network_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "y"},
        "spec": spec,
    }


CLASSIC_POLICIES = [
    _network_policy("deny-all", {"podSelector": {}}),
    _network_policy(
        "allow-x-to-a",
        {
            "podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}],
                    "ports": [{"port": 80}],
                }
            ],
        },
    ),
]


def _admin_policy(name: str, rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "priority": 10,
            "subject": {"namespaces": {"matchLabels": {"ns": "y"}}},
            "ingress": [rule],
        },
    }


ADMIN_POLICIES = [
    _admin_policy(
        "pass-x",
        {"name": "r1", "action": "Pass", "from": [{"namespaces": {"matchLabels": {"ns": "x"}}}]},
    ),
    _admin_policy(
        "deny-z",
        {"name": "no-z", "action": "Deny", "from": [{"namespaces": {"matchLabels": {"ns": "z"}}}]},
    ),
]


def _write(path: Path, docs: list[dict[str, Any]]) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


@pytest.fixture
def classic(tmp_path: Path) -> str:
    return _write(tmp_path / "classic.yaml", _classic_documents() + CLASSIC_POLICIES)


@pytest.fixture
def admin(tmp_path: Path) -> str:
    return _write(tmp_path / "admin.yaml", ADMIN_POLICIES)


# -- check -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "destination", "port", "code", "line"),
    [
        pytest.param(
            "frontend/web-1",
            "backend/api-1",
            "8080",
            0,
            "allowed: frontend/web-1 -> backend/api-1 8080/TCP",
            id="the web tier reaches the API on its named port",
        ),
        pytest.param(
            "frontend/web-1",
            "db/postgres-0",
            "5432",
            1,
            "denied: frontend/web-1 -> db/postgres-0 5432/TCP (ingress: db/postgres-0 "
            "is isolated by `db/allow-api-to-postgres`, `db/default-deny-ingress`; "
            "no rule admits frontend/web-1 on 5432/TCP)",
            id="the web tier cannot skip the API to reach the database",
        ),
        pytest.param(
            "db/backup-0",
            "db/postgres-0",
            "5432",
            1,
            "denied: db/backup-0 -> db/postgres-0 5432/TCP (egress: db/backup-0 is "
            "isolated by `db/allow-backup-offsite`, `db/default-deny-egress`; no rule "
            "admits db/postgres-0 on 5432/TCP; ingress: db/postgres-0 is isolated by "
            "`db/allow-api-to-postgres`, `db/default-deny-ingress`; no rule admits "
            "db/backup-0 on 5432/TCP)",
            id="a connection denied both ways names both reasons",
        ),
        pytest.param(
            "db/backup-0",
            "192.0.2.10",
            "443",
            0,
            "allowed: db/backup-0 -> 192.0.2.10 443/TCP",
            id="the backup job reaches the off-site network",
        ),
        pytest.param(
            "db/backup-0",
            "192.0.2.200",
            "443",
            1,
            "denied: db/backup-0 -> 192.0.2.200 443/TCP (egress: db/backup-0 is "
            "isolated by `db/allow-backup-offsite`, `db/default-deny-egress`; no rule "
            "admits 192.0.2.200 on 443/TCP)",
            id="but not its excepted upper half",
        ),
    ],
)
def test_check_prints_one_line_and_exits_0_when_allowed_1_when_denied(
    kanal: Any, source: str, destination: str, port: str, code: int, line: str
) -> None:
    result = kanal(f"check -f {EXAMPLE} --from {source} --to {destination} --port {port}")
    assert result == Run(code, line + "\n", SKIPPED_DEPLOYMENT)


def test_check_json_is_the_verdict_with_both_decision_chains(kanal: Any) -> None:
    result = kanal(
        f"check -f {EXAMPLE} --from frontend/web-1 --to backend/api-1 --port 8080 -o json"
    )
    assert result.code == 0
    assert result.err == SKIPPED_DEPLOYMENT
    assert json.loads(result.out) == {
        "allowed": True,
        "from": "frontend/web-1",
        "to": "backend/api-1",
        "port": 8080,
        "protocol": "TCP",
        "egress": {
            "allowed": True,
            "subject": "frontend/web-1",
            "steps": [{"tier": None, "outcome": "NotIsolated"}],
        },
        "ingress": {
            "allowed": True,
            "subject": "backend/api-1",
            "steps": [
                {
                    "tier": "NetworkPolicy",
                    "outcome": "Allow",
                    "policy": "backend/allow-web-to-api",
                    "rule": 0,
                    "peer": "pods app=web in namespaces tier=frontend",
                    "port": "api/TCP",
                }
            ],
        },
    }


def test_check_json_of_a_default_deny_names_the_isolating_policies(kanal: Any) -> None:
    result = kanal(
        f"check -f {EXAMPLE} --from frontend/web-1 --to db/postgres-0 --port 5432 -o json"
    )
    assert result.code == 1
    assert json.loads(result.out)["ingress"] == {
        "allowed": False,
        "subject": "db/postgres-0",
        "steps": [
            {
                "tier": "NetworkPolicy",
                "outcome": "DefaultDeny",
                "isolated_by": ["db/allow-api-to-postgres", "db/default-deny-ingress"],
            }
        ],
    }


def test_check_names_the_admin_rule_that_denied(kanal: Any, classic: str, admin: str) -> None:
    result = kanal(f"check -f {classic} {admin} --from z/a --to 10.0.2.1 --port 80")
    assert result.code == 1
    assert result.out == (
        "denied: z/a -> y/a 80/TCP (ingress: [ANP deny-z] rule 'no-z' denies from namespaces "
        "ns=z on any port)\n"
    )


@pytest.mark.parametrize(
    ("protocol", "code"),
    [
        pytest.param("TCP", 0, id="the policy's port defaults to TCP"),
        pytest.param("udp", 1, id="so UDP is denied (protocol names in any case)"),
    ],
)
def test_check_protocol(kanal: Any, classic: str, protocol: str, code: int) -> None:
    result = kanal(f"check -f {classic} --from x/b --to y/a --port 80 --protocol {protocol}")
    assert (result.code, result.err) == (code, "")


# -- bad input: exit 2, a message on stderr, nothing on stdout, no traceback -----------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            "--from x/nope --to y/a --port 80",
            "error: pod `x/nope` is not in the loaded manifests\n",
            id="an unknown pod",
        ),
        pytest.param(
            "--from x/a --to nowhere --port 80",
            "error: `nowhere` is neither a pod (NAMESPACE/NAME) nor an IP address\n",
            id="neither a pod nor an address",
        ),
    ],
)
def test_unknown_endpoints_exit_2(kanal: Any, classic: str, args: str, message: str) -> None:
    for command in ("check", "explain"):
        assert kanal(f"{command} -f {classic} {args}") == Run(2, "", message)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        pytest.param(
            "--port", "0", "argument --port: port 0 is out of range: give 1-65535", id="port 0"
        ),
        pytest.param(
            "--port",
            "65536",
            "argument --port: port 65536 is out of range: give 1-65535",
            id="port 65536",
        ),
        pytest.param(
            "--port",
            "http",
            "argument --port: `http` is not a port number (1-65535)",
            id="a port name on the command line",
        ),
        pytest.param(
            "--protocol",
            "ICMP",
            "argument --protocol: `ICMP` is not a protocol: give TCP, UDP or SCTP",
            id="an unsupported protocol",
        ),
    ],
)
def test_bad_port_or_protocol_exits_2(
    kanal: Any, classic: str, option: str, value: str, message: str
) -> None:
    options = " ".join(f"{k} {v}" for k, v in {"--port": "80", option: value}.items())
    result = kanal(f"check -f {classic} --from x/a --to y/a {options}")
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines()[-1] == f"kanal check: error: {message}"


def test_invalid_manifests_print_every_problem_and_exit_2(kanal: Any, tmp_path: Path) -> None:
    bad = _write(
        tmp_path / "bad.yaml",
        [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name", "namespace": "x"}},
            _network_policy(
                "p",
                {"podSelector": {}, "ingress": [{"ports": [{"port": 70000, "protocol": "ICMP"}]}]},
            ),
        ],
    )
    result = kanal(f"check -f {bad} --from x/a --to x/b --port 80")
    problems = [
        f"{bad}:doc 1: Pod x/Bad_Name: metadata.name: invalid name 'Bad_Name': a lowercase RFC "
        "1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'example.com')",
        f"{bad}:doc 2: NetworkPolicy y/p: spec.ingress[0].ports[0].protocol: unsupported "
        "protocol 'ICMP': use one of TCP, UDP, SCTP",
        f"{bad}:doc 2: NetworkPolicy y/p: spec.ingress[0].ports[0].port: port 70000 must be "
        "between 1 and 65535, inclusive",
    ]
    assert result == Run(2, "", "".join(f"error: {p}\n" for p in problems))


def test_a_missing_file_exits_2(kanal: Any, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = kanal(f"matrix -f {missing}")
    assert result == Run(2, "", f"error: {missing}: cannot read: No such file or directory\n")


# -- stdin and several -f ------------------------------------------------------------------------


def test_dash_reads_manifests_from_stdin(kanal: Any, classic: str) -> None:
    text = Path(classic).read_text()
    result = kanal("check -f - --from x/a --to y/b --port 80", stdin=text)
    assert result.code == 1
    assert result.out.startswith("denied: x/a -> y/b 80/TCP (ingress: y/b is isolated by ")


def test_f_repeats_and_takes_several_paths(
    kanal: Any, classic: str, admin: str, tmp_path: Path
) -> None:
    docs = _classic_documents()
    pods = _write(tmp_path / "pods.yaml", docs)
    policies = _write(tmp_path / "policies.yaml", CLASSIC_POLICIES)
    command = f"check -f {pods} -f - {admin} --from z/a --to y/a --port 80"
    result = kanal(command, stdin=Path(policies).read_text())
    assert result.code == 1
    assert "[ANP deny-z]" in result.out


# -- explain ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "destination", "port", "code", "text"),
    [
        pytest.param(
            "frontend/web-1",
            "backend/api-1",
            "8080",
            0,
            """\
frontend/web-1 -> backend/api-1 on 8080/TCP: ALLOWED
egress at frontend/web-1:
  not isolated for egress: allowed
ingress at backend/api-1:
  [NetworkPolicy backend/allow-web-to-api] rule #0 allows from pods app=web in namespaces \
tier=frontend on api/TCP
""",
            id="a rule that allows names the policy, rule, peer and port",
        ),
        pytest.param(
            "frontend/web-1",
            "db/postgres-0",
            "5432",
            1,
            """\
frontend/web-1 -> db/postgres-0 on 5432/TCP: DENIED
egress at frontend/web-1:
  not isolated for egress: allowed
ingress at db/postgres-0:
  db/postgres-0 is isolated for ingress by policies `db/allow-api-to-postgres`, \
`db/default-deny-ingress`; no rule admits frontend/web-1 on 5432/TCP
""",
            id="a default deny names every isolating policy",
        ),
        pytest.param(
            "db/backup-0",
            "192.0.2.10",
            "443",
            0,
            """\
db/backup-0 -> 192.0.2.10 on 443/TCP: ALLOWED
egress at db/backup-0:
  [NetworkPolicy db/allow-backup-offsite] rule #0 allows to ipBlock 192.0.2.0/24 except \
192.0.2.128/25 on 443/TCP
ingress at 192.0.2.10:
  192.0.2.10 is not a pod, so no policy applies on this side: allowed
""",
            id="an address outside the cluster",
        ),
    ],
)
def test_explain_walks_through_both_directions(
    kanal: Any, source: str, destination: str, port: str, code: int, text: str
) -> None:
    result = kanal(f"explain -f {EXAMPLE} --from {source} --to {destination} --port {port}")
    assert result == Run(code, text, SKIPPED_DEPLOYMENT)


def test_explain_shows_an_admin_pass_then_the_network_policy(
    kanal: Any, classic: str, admin: str
) -> None:
    result = kanal(f"explain -f {classic} {admin} --from x/a --to y/a --port 80")
    assert (result.code, result.out) == (
        0,
        """\
x/a -> y/a on 80/TCP: ALLOWED
egress at x/a:
  not isolated for egress: allowed
ingress at y/a:
  [ANP pass-x] rule 'r1' passes from namespaces ns=x on any port; the next tiers decide
  [NetworkPolicy y/allow-x-to-a] rule #0 allows from pods in namespaces ns=x on 80/TCP
""",
    )
    assert (
        "warning: AdminNetworkPolicies `deny-z`, `pass-x` share priority 10: upstream leaves "
        "their order undefined; kanal evaluates them by name\n"
    ) in result.err


# -- matrix ----------------------------------------------------------------------------------------

CLASSIC_TEXT = """\
+--------+-----+-----+-----+-----+-----+-----+-----+-----+-----+
| 80/TCP | x/a | x/b | x/c | y/a | y/b | y/c | z/a | z/b | z/c |
+--------+-----+-----+-----+-----+-----+-----+-----+-----+-----+
| x/a    | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| x/b    | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| x/c    | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| y/a    | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| y/b    | .   | .   | .   | X   | .   | X   | .   | .   | .   |
| y/c    | .   | .   | .   | X   | X   | .   | .   | .   | .   |
| z/a    | .   | .   | .   | X   | X   | X   | .   | .   | .   |
| z/b    | .   | .   | .   | X   | X   | X   | .   | .   | .   |
| z/c    | .   | .   | .   | X   | X   | X   | .   | .   | .   |
+--------+-----+-----+-----+-----+-----+-----+-----+-----+-----+
"""

PODS = ["x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c"]
FROM_X = [True, True, True, True, False, False, True, True, True]
FROM_ELSEWHERE = [True, True, True, False, False, False, True, True, True]


def _self_allowed(rows: list[list[bool]]) -> list[list[bool]]:
    """A pod cannot block access to itself: the diagonal is always allowed."""
    return [[cell or i == j for j, cell in enumerate(row)] for i, row in enumerate(rows)]


def test_matrix_text_probes_every_declared_port_by_default(kanal: Any, classic: str) -> None:
    assert kanal(f"matrix -f {classic}") == Run(0, CLASSIC_TEXT, "")


def test_matrix_text_prints_one_table_per_probe_and_allow_x_to_a_is_tcp_only(
    kanal: Any, classic: str
) -> None:
    result = kanal(f"matrix -f {classic} --port 80 --port 80 --protocol UDP")
    x_row = "| .   | .   | .   | .   | X   | X   | .   | .   | .   |"
    udp = CLASSIC_TEXT.replace("80/TCP", "80/UDP")
    for pod in ("x/a", "x/b", "x/c"):
        udp = udp.replace(
            f"| {pod}    {x_row}", f"| {pod}    {x_row.replace('.   | X', 'X   | X')}"
        )
    assert "| x/a    | .   | .   | .   | X   | X   | X   | .   | .   | .   |" in udp
    assert result == Run(0, CLASSIC_TEXT + "\n" + udp, "")


def test_matrix_json_is_exactly_the_documented_shape(kanal: Any, classic: str) -> None:
    result = kanal(f"matrix -f {classic} --port 80 --port 81 --protocol SCTP -o json")
    assert result.code == 0
    assert json.loads(result.out) == {
        "probes": [
            {
                "port": 80,
                "protocol": "TCP",
                "pods": PODS,
                "allowed": _self_allowed([FROM_X] * 3 + [FROM_ELSEWHERE] * 6),
            },
            {
                "port": 81,
                "protocol": "SCTP",
                "pods": PODS,
                "allowed": _self_allowed(
                    [[True, True, True, False, False, False, True, True, True]] * 9
                ),
            },
        ]
    }
    assert result.out.count("\n") == 1, "one line"


def test_matrix_csv_has_one_header_and_a_row_per_probe_and_source(kanal: Any, classic: str) -> None:
    result = kanal(f"matrix -f {classic} --port 80 --port 80 --protocol UDP -o csv")
    rows = result.out.splitlines()
    assert result.code == 0
    assert rows[0] == "port,protocol,from,x/a,x/b,x/c,y/a,y/b,y/c,z/a,z/b,z/c"
    assert rows[1] == "80,TCP,x/a,true,true,true,true,false,false,true,true,true"
    assert rows[4] == "80,TCP,y/a,true,true,true,true,false,false,true,true,true"
    assert rows[10] == "80,UDP,x/a,true,true,true,false,false,false,true,true,true"
    assert len(rows) == 1 + 2 * 9


def test_matrix_md_has_a_heading_and_a_table_per_probe(kanal: Any, classic: str) -> None:
    result = kanal(f"matrix -f {classic} -o md")
    assert result == Run(
        0,
        """\
### 80/TCP

| from ↓ to → | x/a | x/b | x/c | y/a | y/b | y/c | z/a | z/b | z/c |
|-------------|-----|-----|-----|-----|-----|-----|-----|-----|-----|
| x/a         | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| x/b         | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| x/c         | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| y/a         | .   | .   | .   | .   | X   | X   | .   | .   | .   |
| y/b         | .   | .   | .   | X   | .   | X   | .   | .   | .   |
| y/c         | .   | .   | .   | X   | X   | .   | .   | .   | .   |
| z/a         | .   | .   | .   | X   | X   | X   | .   | .   | .   |
| z/b         | .   | .   | .   | X   | X   | X   | .   | .   | .   |
| z/c         | .   | .   | .   | X   | X   | X   | .   | .   | .   |
""",
        "",
    )


def test_matrix_of_the_example_probes_its_four_declared_ports(kanal: Any) -> None:
    result = kanal(f"matrix -f {EXAMPLE} -o json")
    assert result.err == SKIPPED_DEPLOYMENT
    probes = json.loads(result.out)["probes"]
    assert [(p["port"], p["protocol"]) for p in probes] == [
        (80, "TCP"),
        (5432, "TCP"),
        (8080, "TCP"),
        (9125, "UDP"),
    ]


EXAMPLE_8080 = """\
+----------------+---------------+---------------+-------------+---------------+----------------+----------------+
| 8080/TCP       | backend/api-1 | backend/api-2 | db/backup-0 | db/postgres-0 | frontend/web-1 | frontend/web-2 |
+----------------+---------------+---------------+-------------+---------------+----------------+----------------+
| backend/api-1  | .             | X             | X           | X             | .              | .              |
| backend/api-2  | X             | .             | X           | X             | .              | .              |
| db/backup-0    | X             | X             | .           | X             | X              | X              |
| db/postgres-0  | X             | X             | X           | .             | X              | X              |
| frontend/web-1 | .             | .             | X           | X             | .              | .              |
| frontend/web-2 | .             | .             | X           | X             | .              | .              |
+----------------+---------------+---------------+-------------+---------------+----------------+----------------+
"""  # noqa: E501


def test_matrix_text_of_the_example(kanal: Any) -> None:
    result = kanal(f"matrix -f {EXAMPLE} --port 8080")
    assert result == Run(0, EXAMPLE_8080, SKIPPED_DEPLOYMENT)


def test_matrix_without_declared_ports_says_how_to_probe(kanal: Any, tmp_path: Path) -> None:
    pods = _write(
        tmp_path / "pods.yaml",
        [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "x"}},
        ],
    )
    assert kanal(f"matrix -f {pods}") == Run(
        0, "", "note: no pod declares a container port: choose probes with --port N\n"
    )
    assert kanal(f"matrix -f {pods} -o json") == Run(
        0,
        '{"probes": []}\n',
        "note: no pod declares a container port: choose probes with --port N\n",
    )


def test_matrix_of_no_pods_is_an_empty_table(kanal: Any, tmp_path: Path) -> None:
    namespace = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]
    path = _write(tmp_path / "ns.yaml", namespace)
    text = "+--------+\n| 80/TCP |\n+--------+\n+--------+\n"
    assert kanal(f"matrix -f {path} --port 80") == Run(0, text, "")
    json_line = '{"probes": [{"port": 80, "protocol": "TCP", "pods": [], "allowed": []}]}\n'
    assert kanal(f"matrix -f {path} --port 80 -o json") == Run(0, json_line, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            "--protocol UDP --port 80",
            "--protocol applies to the --port just before it: give --port N first",
            id="--protocol before any --port",
        ),
        pytest.param(
            "--port 80 --protocol UDP --protocol TCP",
            "--protocol given twice for --port 80: repeat --port too",
            id="--protocol twice for one --port",
        ),
    ],
)
def test_matrix_protocol_belongs_to_the_port_before_it(
    kanal: Any, classic: str, args: str, message: str
) -> None:
    result = kanal(f"matrix -f {classic} {args}")
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines()[-1] == f"kanal matrix: error: {message}"


# -- help and the real entry point -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "explain", "matrix"])
def test_help_shows_an_example(kanal: Any, command: str) -> None:
    result = kanal(f"{command} --help")
    assert result.code == 0
    assert "\nexample" in result.out
    assert f"  kanal {command} -f examples/three-tier " in result.out


def test_no_command_is_a_usage_error(kanal: Any) -> None:
    result = kanal()
    assert (result.code, result.out) == (2, "")
    assert result.err.endswith("kanal: error: the following arguments are required: COMMAND\n")


def _installed(command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    argv = [str(KANAL), *shlex.split(command)]
    return subprocess.run(
        argv, check=False, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_installed_script_keeps_json_on_stdout_and_notes_on_stderr() -> None:
    done = _installed(
        f"check -f {EXAMPLE} --from frontend/web-2 --to db/postgres-0 --port 5432 -o json"
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["allowed"] is False
    assert done.stderr == SKIPPED_DEPLOYMENT


def test_the_installed_script_reports_bad_manifests_without_a_traceback() -> None:
    done = _installed("matrix -f -", stdin="kind: [\n")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: <stdin>:2:1: invalid YAML: did not find expected node content "
        "(while parsing a flow node)\n"
    )
