"""`kubectl label` semantics: argument forms, --overwrite only for a different value, what is
reported, and validation with the model's own validators."""

from __future__ import annotations

import pytest

from kanal.store.labels import LabelError, LabelOutcome, parse_label_args, relabel

from .builders import Doc


def pod_doc(**labels: str) -> Doc:
    metadata: Doc = {"name": "a", "namespace": "x"}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}


@pytest.mark.parametrize(
    ("args", "to_set", "remove"),
    [
        pytest.param(["app=web"], {"app": "web"}, (), id="key=value sets"),
        pytest.param(["tier-"], {}, ("tier",), id="key- removes"),
        pytest.param(["app="], {"app": ""}, (), id="an empty value is a value"),
        pytest.param(
            ["example.com/team=blue", "a-", "b=c"],
            {"example.com/team": "blue", "b": "c"},
            ("a",),
            id="prefixed keys, several arguments in order",
        ),
    ],
)
def test_label_arguments(args: list[str], to_set: dict[str, str], remove: tuple[str, ...]) -> None:
    changes = parse_label_args(args)
    assert (dict(changes.set), changes.remove) == (to_set, remove)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["app"],
            "invalid label `app`: use KEY=VALUE to set it or KEY- to remove it",
            id="neither form",
        ),
        pytest.param(
            ["a=b=c"],
            "invalid label `a=b=c`: value a valid label must be an empty string or consist",
            id="a second = belongs to the value, which may not hold it",
        ),
        pytest.param(
            ["bad key=v"], "invalid label `bad key=v`: key name part must consist", id="bad key"
        ),
        pytest.param(["-=v"], "invalid label `-=v`: key name part must consist", id="bad key, too"),
        pytest.param(["=v"], "invalid label `=v`: key name part must be non-empty", id="empty key"),
        pytest.param(
            ["app=" + "v" * 64],
            "invalid label `app=vvvv",
            id="a value longer than 63 characters",
        ),
        pytest.param(
            ["app=web", "app-"],
            "label `app` is both set and removed: give one of `app=...` and `app-`",
            id="set and removed at once",
        ),
    ],
)
def test_bad_label_arguments_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(LabelError) as info:
        parse_label_args(args)
    assert str(info.value).startswith(message)


def test_every_bad_argument_is_reported_at_once() -> None:
    with pytest.raises(LabelError) as info:
        parse_label_args(["x", "y", "ok=1"])
    assert len(str(info.value).splitlines()) == 2


@pytest.mark.parametrize(
    ("labels", "args", "overwrite", "expected", "outcome"),
    [
        pytest.param({}, ["app=web"], False, {"app": "web"}, "labeled", id="a new key"),
        pytest.param(
            {"app": "web"},
            ["app=web"],
            False,
            {"app": "web"},
            "not labeled",
            id="the same value needs no --overwrite and changes nothing",
        ),
        pytest.param(
            {"app": "web"},
            ["app=api"],
            True,
            {"app": "api"},
            "labeled",
            id="a different value with --overwrite",
        ),
        pytest.param(
            {"app": "web", "tier": "1"},
            ["tier-"],
            False,
            {"app": "web"},
            "unlabeled",
            id="only a removal",
        ),
        pytest.param({"app": "web"}, ["app-"], False, None, "unlabeled", id="the last label"),
        pytest.param(
            {"app": "web"},
            ["app-", "new=1"],
            False,
            {"new": "1"},
            "labeled",
            id="a removal and an addition",
        ),
    ],
)
def test_relabel(
    labels: dict[str, str],
    args: list[str],
    overwrite: bool,
    expected: dict[str, str] | None,
    outcome: str,
) -> None:
    doc = pod_doc(**labels)
    result = relabel(doc, parse_label_args(args), overwrite=overwrite)
    assert result.doc["metadata"].get("labels") == expected
    assert result.outcome == LabelOutcome(outcome)
    assert doc == pod_doc(**labels), "the input document is not modified"


def test_a_different_value_needs_overwrite() -> None:
    with pytest.raises(LabelError) as info:
        relabel(
            pod_doc(app="web", tier="1"), parse_label_args(["app=api", "tier=2"]), overwrite=False
        )
    assert str(info.value).splitlines() == [
        "label `app` already has a value (web): pass --overwrite to replace it",
        "label `tier` already has a value (1): pass --overwrite to replace it",
    ]


def test_removing_a_missing_label_changes_nothing_and_says_so() -> None:
    doc = pod_doc(app="web")
    result = relabel(doc, parse_label_args(["gone-"]), overwrite=False)
    assert (result.doc, result.outcome, result.missing) == (
        doc,
        LabelOutcome.NOT_LABELED,
        ("gone",),
    )
