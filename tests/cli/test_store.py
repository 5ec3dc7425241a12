"""`kanal apply|delete|get|label` on a store in tmp_path: exact output and exit codes.

`KANAL_LAB_DIR` points at tmp_path, so every command uses `tmp_path/store.db` as its default
store; time is a fake clock (the store's creation times and AGE both read it)."""

from __future__ import annotations

import io
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kanal.cli import store as store_cli
from kanal.cli.main import main
from kanal.cli.store import age
from kanal.store.sqlite import SystemClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three-tier"

SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db, tier: data}}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: block}
spec: {priority: 10, subject: {namespaces: {}}, ingress: []}
"""
SHOP_CREATED = """\
namespace/shop created
pod/web created
pod/db created
networkpolicy.networking.k8s.io/db-from-web created
adminnetworkpolicy.policy.networking.k8s.io/block created
"""


class FakeClock(SystemClock):
    """Time stands still unless a test moves it (no sleeping here: the CLI does not poll)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


@dataclass(frozen=True)
class Run:
    code: int | str | None
    out: str
    err: str


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(start=1_700_000_000.0)
    monkeypatch.setattr(store_cli, "CLOCK", fake)
    return fake


@pytest.fixture
def kanal(
    tmp_path: Path,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """`kanal("get pods -A", stdin=None) -> Run`, with the store in tmp_path."""
    monkeypatch.setenv("KANAL_LAB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def run(command: str, stdin: str | None = None) -> Run:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code: int | str | None = main(shlex.split(command))
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def shop(kanal: Any, tmp_path: Path) -> Any:
    (tmp_path / "shop.yaml").write_text(SHOP)
    assert kanal("apply -f shop.yaml") == Run(0, SHOP_CREATED, "")
    return kanal


# -- apply -----------------------------------------------------------------------------------------


def test_apply_again_is_unchanged_and_a_change_is_configured(shop: Any, tmp_path: Path) -> None:
    assert shop("apply -f shop.yaml").out == SHOP_CREATED.replace("created", "unchanged")
    (tmp_path / "shop.yaml").write_text(SHOP.replace("tier: data", "tier: store"))
    assert shop("apply -f shop.yaml").out.splitlines()[2] == "pod/db configured"


def test_apply_notes_the_kinds_it_skips(kanal: Any) -> None:
    result = kanal(f"apply -f {EXAMPLE}")
    assert result.code == 0
    assert result.err == (
        f"note: {EXAMPLE}/90-deployment.yaml: skipped Deployment frontend/web "
        "(kanal does not use this kind)\n"
    )
    assert result.out.splitlines()[:2] == [
        "namespace/frontend created",
        "namespace/backend created",
    ]


def test_an_invalid_document_rejects_the_whole_apply(kanal: Any) -> None:
    bad = SHOP + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: Bad, namespace: shop}\n"
    result = kanal("apply -f -", stdin=bad)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(
        "error: <stdin>:doc 6: Pod shop/Bad: metadata.name: invalid name 'Bad'"
    )
    assert kanal("get pods -A").err == "note: No resources found\n"


def test_an_empty_file_is_an_error_as_in_kubectl(kanal: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n---\n")
    assert kanal("apply -f empty.yaml") == Run(
        2, "", "error: no objects passed to apply: empty.yaml holds no document\n"
    )
    assert not (tmp_path / "store.db").exists()


def test_a_missing_file_is_an_error(kanal: Any) -> None:
    assert kanal("apply -f nothing.yaml") == Run(
        2, "", "error: nothing.yaml: cannot read: No such file or directory\n"
    )


# -- get -------------------------------------------------------------------------------------------


def test_get_pods_in_every_namespace(shop: Any, clock: FakeClock) -> None:
    clock.now += 90
    assert shop("get pods -A") == Run(
        0,
        "NAMESPACE   NAME   IP         NODE     AGE\n"
        "shop        db     10.0.0.2   <none>   90s\n"
        "shop        web    10.0.0.1   node-1   90s\n",
        "",
    )


def test_get_wide_adds_labels_and_kinds_have_short_names(shop: Any, clock: FakeClock) -> None:
    clock.now += 3 * 3600
    assert shop("get PO -n shop -o wide").out == (
        "NAME   IP         NODE     AGE   LABELS\n"
        "db     10.0.0.2   <none>   3h    app=db,tier=data\n"
        "web    10.0.0.1   node-1   3h    app=web\n"
    )


@pytest.mark.parametrize(
    ("command", "table"),
    [
        pytest.param(
            "get netpol -n shop",
            "NAME          POD-SELECTOR   AGE\ndb-from-web   app=db         0s\n",
            id="networkpolicies: the pod selector",
        ),
        pytest.param(
            "get anp", "NAME    PRIORITY   AGE\nblock   10         0s\n", id="admin policies"
        ),
        pytest.param(
            "get namespaces -o wide", "NAME   AGE   LABELS\nshop   0s    team=blue\n", id="ns"
        ),
    ],
)
def test_get_tables(shop: Any, command: str, table: str) -> None:
    assert shop(command) == Run(0, table, "")


ALERT_RULES = """\
apiVersion: kanal.io/v1alpha1
kind: AlertRule
metadata: {name: port-scan}
spec: {metric: DestinationPorts, threshold: 10, period: 30s}
---
apiVersion: kanal.io/v1alpha1
kind: AlertRule
metadata: {name: denied}
spec: {metric: DeniedFlows, threshold: 5}
"""


def test_alert_rules_are_stored_and_listed(shop: Any, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(ALERT_RULES)
    assert shop("apply -f rules.yaml") == Run(
        0, "alertrule.kanal.io/port-scan created\nalertrule.kanal.io/denied created\n", ""
    )
    assert shop("get alertrules") == Run(
        0,
        "NAME        METRIC             TYPE          THRESHOLD   PERIOD   AGE\n"
        "denied      DeniedFlows        Breach        5           60s      0s\n"
        "port-scan   DestinationPorts   UniqueCount   10          30s      0s\n",
        "",
    )


def test_an_invalid_alert_rule_stores_nothing(shop: Any, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(ALERT_RULES.replace("threshold: 5", "threshold: -5"))
    assert shop("apply -f rules.yaml") == Run(
        2, "", "error: rules.yaml:doc 2: AlertRule denied: spec.threshold: -5 must be 0 or more\n"
    )
    assert shop("get alertrules") == Run(0, "", "note: No resources found\n")


def test_get_one_object_as_yaml_with_the_metadata_the_store_owns(shop: Any) -> None:
    assert shop("get pod shop/web -o yaml").out == (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata:\n"
        "  creationTimestamp: '2023-11-14T22:13:20Z'\n"
        "  labels:\n"
        "    app: web\n"
        "  name: web\n"
        "  namespace: shop\n"
        "  resourceVersion: '1'\n"
        "spec:\n"
        "  nodeName: node-1\n"
        "status:\n"
        "  podIP: 10.0.0.1\n"
    )


def test_get_json_is_a_list_and_applies_back_unchanged(shop: Any) -> None:
    listed = shop("get pods -n shop -o json").out
    value = json.loads(listed)
    assert (value["kind"], [i["metadata"]["name"] for i in value["items"]]) == (
        "List",
        ["db", "web"],
    )
    assert shop("apply -f -", stdin=listed).out == "pod/db unchanged\npod/web unchanged\n"


def test_get_reports_nothing_found_as_kubectl_does(shop: Any) -> None:
    assert shop("get pods") == Run(0, "", "note: No resources found in default namespace.\n")
    assert shop("get banp") == Run(0, "", "note: No resources found\n")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        pytest.param(
            "get services",
            "error: kanal does not store `services` objects: use one of pods (po), namespaces "
            "(ns), nodes (no), networkpolicies (netpol), adminnetworkpolicies (anp), "
            "baselineadminnetworkpolicies (banp), labs, alertrules\n",
            id="an unknown kind",
        ),
        pytest.param(
            "get pod shop/nope", "error: Pod `shop/nope` does not exist\n", id="a missing object"
        ),
        pytest.param("get pods -A -n shop", "error: give -n NS or -A, not both\n", id="-n and -A"),
        pytest.param(
            "get anp shop/block",
            "error: adminnetworkpolicies are cluster-scoped: give `block` without a namespace\n",
            id="a namespace for a cluster-scoped kind",
        ),
    ],
)
def test_get_errors(shop: Any, command: str, error: str) -> None:
    assert shop(command) == Run(2, "", error)


def test_read_commands_do_not_create_a_store(kanal: Any, tmp_path: Path) -> None:
    result = kanal("get pods --store elsewhere.db")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("error: there is no store at `elsewhere.db`: create one with")
    assert not (tmp_path / "elsewhere.db").exists()


# -- label -----------------------------------------------------------------------------------------


def test_label_sets_overwrites_and_removes(shop: Any) -> None:
    assert shop("label pod shop/web env=prod") == Run(0, "pod/web labeled\n", "")
    assert shop("label po web app=api -n shop") == Run(
        2, "", "error: label `app` already has a value (web): pass --overwrite to replace it\n"
    )
    assert shop("label pod shop/web app=api --overwrite").out == "pod/web labeled\n"
    assert shop("label pod shop/web env-").out == "pod/web unlabeled\n"
    assert shop("label pod shop/web gone-") == Run(
        0, "pod/web not labeled\n", 'note: label "gone" not found\n'
    )
    assert shop("get pod shop/web -o json").out.count('"app": "api"') == 1


def test_label_a_namespace_and_refuse_an_invalid_label(shop: Any) -> None:
    assert shop("label ns shop env=prod").out == "namespace/shop labeled\n"
    result = shop("label pod shop/web 'bad key=v'")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("error: invalid label `bad key=v`: key name part must consist")


def test_label_of_a_missing_object(shop: Any) -> None:
    assert shop("label pod shop/nope a=b") == Run(
        2,
        "",
        "error: Pod `shop/nope` does not exist\n"
        "error: nothing was changed: check the names with `kanal get KIND -A`\n",
    )


# -- delete ----------------------------------------------------------------------------------------


def test_delete_by_name(shop: Any) -> None:
    assert shop("delete pod shop/web shop/db -n other") == Run(
        0, 'pod "web" deleted\npod "db" deleted\n', ""
    )
    assert (
        shop("delete anp block").out
        == 'adminnetworkpolicy.policy.networking.k8s.io "block" deleted\n'
    )


def test_delete_a_missing_object_deletes_nothing(shop: Any) -> None:
    assert shop("delete pod shop/web shop/nope").code == 2
    assert shop("get pod shop/web").code == 0
    assert shop("delete pod shop/web shop/nope --ignore-not-found").out == 'pod "web" deleted\n'


def test_delete_the_objects_of_files(shop: Any) -> None:
    assert shop("delete -f shop.yaml").out == (
        'namespace "shop" deleted\n'
        'pod "web" deleted\n'
        'pod "db" deleted\n'
        'networkpolicy.networking.k8s.io "db-from-web" deleted\n'
        'adminnetworkpolicy.policy.networking.k8s.io "block" deleted\n'
    )


@pytest.mark.parametrize(
    ("command", "error"),
    [
        pytest.param(
            "delete pod shop/web -f shop.yaml",
            "error: give the objects to delete either with -f PATH or as KIND NAME..., not both\n",
            id="-f and names",
        ),
        pytest.param(
            "delete pod", "error: name the pods to change: `KIND [NS/]NAME...`\n", id="no name"
        ),
    ],
)
def test_delete_usage_errors(shop: Any, command: str, error: str) -> None:
    assert shop(command) == Run(2, "", error)


# -- AGE -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (3 * 86400 + 5 * 3600, "3d5h"),
        (8 * 86400, "8d"),
        (800 * 86400, "2y70d"),
        (3000 * 86400, "8y"),
    ],
    ids=str,
)
def test_age_reads_as_kubectl_prints_it(seconds: int, text: str) -> None:
    assert age(seconds) == text
