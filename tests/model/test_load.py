"""Reading manifests from files, directories and stdin: source strings, formats, and problems
that happen before validation (missing files, syntax errors)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from kanal.errors import ManifestError
from kanal.model.load import load_manifests
from kanal.model.objects import Direction

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three-tier"

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: shop
"""
BAD_POD = POD.format(name="Web")
BAD_POD_PROBLEM = (
    "Pod shop/Web: metadata.name: invalid name 'Web': a lowercase RFC 1123 subdomain must "
    "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'example.com')"
)


def pod_list(*pods: str) -> str:
    """A `kind: List` document holding the given pod documents."""
    items = "".join("- " + text.rstrip("\n").replace("\n", "\n  ") + "\n" for text in pods)
    return f"apiVersion: v1\nkind: List\nitems:\n{items}"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(paths: list[str], *, stdin: str = "") -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifests(paths, stdin=io.StringIO(stdin))
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(BAD_POD, [f"{{f}}: {BAD_POD_PROBLEM}"], id="one document: the file name"),
        pytest.param(
            f"---\n{BAD_POD}", [f"{{f}}: {BAD_POD_PROBLEM}"], id="a leading --- is still one"
        ),
        pytest.param(
            f"{BAD_POD}---\n", [f"{{f}}: {BAD_POD_PROBLEM}"], id="a trailing --- is still one"
        ),
        pytest.param(
            f"{POD.format(name='a')}---\n{BAD_POD}",
            [f"{{f}}:doc 2: {BAD_POD_PROBLEM}"],
            id="several documents: file and document number",
        ),
        pytest.param(
            f"{POD.format(name='a')}---\n---\n{BAD_POD}",
            [f"{{f}}:doc 3: {BAD_POD_PROBLEM}"],
            id="empty documents are skipped but counted, as an editor shows them",
        ),
        pytest.param(
            pod_list(BAD_POD),
            [f"{{f}}:item 1: {BAD_POD_PROBLEM}"],
            id="a List names each item",
        ),
        pytest.param(
            f"{POD.format(name='a')}---\n{pod_list(POD.format(name='b'), BAD_POD)}",
            [f"{{f}}:doc 2:item 2: {BAD_POD_PROBLEM}"],
            id="a List in a multi-document file names document and item",
        ),
    ],
)
def test_source_strings(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, "pods.yaml", text)
    assert problems([str(path)]) == [line.format(f=path) for line in expected]


def test_documents_are_read_from_yaml_json_and_stdin(tmp_path: Path) -> None:
    yaml_file = write(tmp_path, "a.yaml", f"{POD.format(name='a')}---\n{POD.format(name='b')}")
    pod_c = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c", "namespace": "shop"}}
    json_file = write(tmp_path, "c.json", json.dumps(pod_c))
    stdin = io.StringIO(POD.format(name="d"))
    manifests = load_manifests([str(yaml_file), str(json_file), "-"], stdin=stdin)
    assert [p.key for p in manifests.pods] == ["shop/a", "shop/b", "shop/c", "shop/d"]


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        pytest.param(BAD_POD, [f"<stdin>: {BAD_POD_PROBLEM}"], id="stdin is <stdin>"),
        pytest.param(
            f"{POD.format(name='a')}---\n{BAD_POD}",
            [f"<stdin>:doc 2: {BAD_POD_PROBLEM}"],
            id="stdin numbers its documents too",
        ),
    ],
)
def test_stdin_source(stdin: str, expected: list[str]) -> None:
    assert problems(["-"], stdin=stdin) == expected


def test_a_json_list_is_read(tmp_path: Path) -> None:
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": "shop"}}
        for n in ("a", "b")
    ]
    path = write(tmp_path, "pods.json", json.dumps({"apiVersion": "v1", "kind": "List",
                                                    "items": pods}))
    assert [p.key for p in load_manifests([str(path)]).pods] == ["shop/a", "shop/b"]


def test_a_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", BAD_POD.replace("Web", "Web-B"))
    write(tmp_path, "a/z.yml", BAD_POD.replace("Web", "Web-Z"))
    write(tmp_path, "a/c.json", json.dumps({"apiVersion": "v1", "kind": "Pod",
                                            "metadata": {"name": "Web-C"}}))
    write(tmp_path, "a/notes.txt", "not a manifest")
    write(tmp_path, "README.md", "# not a manifest")
    lines = problems([str(tmp_path)])
    assert [line.split(": ")[0] for line in lines] == [
        str(tmp_path / "a" / "c.json"),
        str(tmp_path / "a" / "z.yml"),
        str(tmp_path / "b.yaml"),
    ]


def test_a_directory_without_manifests_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "nothing here")
    assert problems([str(tmp_path)]) == [
        f"{tmp_path}: no .yaml, .yml, .json files in this directory"
    ]


def test_syntax_errors_name_line_and_column_and_earlier_documents_are_still_checked(
    tmp_path: Path,
) -> None:
    broken_yaml = write(tmp_path, "a.yaml", f"{BAD_POD}---\nkind: Pod\nmetadata: name: x\n")
    broken_json = write(tmp_path, "b.json", '{"kind": "Pod",\n "metadata": }')
    assert problems([str(broken_yaml), str(broken_json)]) == [
        f"{broken_yaml}:doc 1: {BAD_POD_PROBLEM}",
        f"{broken_yaml}:8:15: invalid YAML: mapping values are not allowed in this context",
        f"{broken_json}:2:14: invalid JSON: Expecting value",
    ]


def test_a_missing_file_is_a_problem_beside_the_others(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD_POD)
    missing = tmp_path / "missing.yaml"
    assert problems([str(missing), str(bad)]) == [
        f"{missing}: cannot read: No such file or directory",
        f"{bad}: {BAD_POD_PROBLEM}",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.yaml", POD.format(name="a"))
    path.chmod(0)
    assert problems([str(path)]) == [f"{path}: cannot read: Permission denied"]


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Pod\nmetadata:\n  name: caf\xe9\n")
    assert problems([str(path)]) == [
        f"{path}:3: is not UTF-8 text (byte 0xe9): save the file as UTF-8"
    ]


def test_empty_files_yield_nothing(tmp_path: Path) -> None:
    empty_yaml = write(tmp_path, "a.yaml", "# nothing yet\n")
    empty_json = write(tmp_path, "b.json", "\n")
    assert load_manifests([str(empty_yaml), str(empty_json)]).pods == ()


def test_the_three_tier_example_loads() -> None:
    manifests = load_manifests([str(EXAMPLE)])
    assert [(n.name, n.labels["tier"]) for n in manifests.namespaces] == [
        ("backend", "backend"), ("db", "db"), ("frontend", "frontend")
    ]
    assert [(p.key, p.node_name) for p in manifests.pods] == [
        ("backend/api-1", "node-1"),
        ("backend/api-2", "node-2"),
        ("db/backup-0", "node-1"),
        ("db/postgres-0", "node-2"),
        ("frontend/web-1", "node-1"),
        ("frontend/web-2", "node-2"),
    ]
    assert [(p.key, sorted(p.policy_types)) for p in manifests.policies] == [
        ("backend/allow-web-to-api", [Direction.INGRESS]),
        ("backend/default-deny-ingress", [Direction.INGRESS]),
        ("db/allow-api-to-postgres", [Direction.INGRESS]),
        ("db/allow-backup-offsite", [Direction.EGRESS]),
        ("db/default-deny-egress", [Direction.EGRESS]),
        ("db/default-deny-ingress", [Direction.INGRESS]),
    ]
    assert manifests.notes == (
        f"{EXAMPLE}/90-deployment.yaml: skipped Deployment frontend/web "
        "(kanal does not use this kind)",
    )
