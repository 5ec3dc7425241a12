"""The `AlertRule` kind: defaults, every field read, and every problem reported at its path."""

from __future__ import annotations

from typing import Any

import pytest

from kanal.errors import ManifestError
from kanal.model.alertparts import (
    NamespaceScope,
    PodScope,
    PolicyScope,
    QuarantineAction,
    WebhookAction,
)
from kanal.model.alertrule import AlertMetric, AlertRule, AlertType, GroupBy, VerdictFilter
from kanal.model.objects import Labels, LabelSelector, PolicyKey
from kanal.model.parse import parse_documents
from kanal.model.validate import duration


def _rule(spec: dict[str, Any], name: str = "scan") -> dict[str, Any]:
    return {
        "apiVersion": "kanal.io/v1alpha1",
        "kind": "AlertRule",
        "metadata": {"name": name},
        "spec": spec,
    }


def _parse(spec: dict[str, Any]) -> AlertRule:
    (rule,) = parse_documents([("rule.yaml", _rule(spec))]).alert_rules
    return rule


def _problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_documents([("rule.yaml", _rule(spec))])
    return [str(p) for p in caught.value.problems]


def test_a_minimal_rule_gets_the_defaults() -> None:
    assert _parse({"metric": "DeniedFlows", "threshold": 10}) == AlertRule(
        "scan", AlertMetric.DENIED_FLOWS, AlertType.BREACH, 10.0, period_s=60.0,
        window_s=None, throttle_s=60.0, group_by=GroupBy.SOURCE, scope=None, verdict=None,
        actions=(),
    )


def test_distinct_metrics_default_to_unique_count() -> None:
    rule = _parse({"metric": "DestinationAddresses", "threshold": 5, "verdict": "Denied"})
    assert (rule.type, rule.verdict) == (AlertType.UNIQUE_COUNT, VerdictFilter.DENIED)


def test_every_field_is_read() -> None:
    rule = _parse({
        "metric": "Bytes", "type": "RollingAverage", "period": "1m", "window": "1h",
        "threshold": 1e6, "throttle": "5m", "groupBy": "Destination",
        "scope": {"namespaceSelector": {"matchLabels": {"team": "db"}}},
        "actions": [
            {"webhook": {"url": "http://127.0.0.1:9000/alerts", "timeout": "2s",
                         "retries": 0}},
            {"quarantine": {"label": "example.com/isolate", "value": "yes"}},
        ],
    })
    assert rule == AlertRule(
        "scan", AlertMetric.BYTES, AlertType.ROLLING_AVERAGE, 1e6, period_s=60.0,
        window_s=3600.0, throttle_s=300.0, group_by=GroupBy.DESTINATION,
        scope=PodScope(None, LabelSelector(Labels({"team": "db"}))),
        actions=(WebhookAction("http://127.0.0.1:9000/alerts", 2.0, 0),
                 QuarantineAction("example.com/isolate", "yes")),
    )
    assert rule.horizon_s == 3600.0


def test_a_rolling_average_without_window_averages_over_ten_periods() -> None:
    rule = _parse({"metric": "AllowedFlows", "type": "RollingAverage", "period": "30s",
                   "threshold": 2})
    assert rule.window_s == 300.0


@pytest.mark.parametrize(("scope", "expected"), [
    pytest.param({"policy": "x/web"}, PolicyScope(PolicyKey("x/web")), id="a NetworkPolicy"),
    pytest.param({"policy": "guard"}, PolicyScope(PolicyKey("guard")), id="an admin policy"),
    pytest.param({"policy": {"kind": "NetworkPolicy", "namespace": "x", "name": "web"}},
                 PolicyScope(PolicyKey("x/web"), "NetworkPolicy"), id="a policy object"),
    pytest.param({"policy": {"kind": "BaselineAdminNetworkPolicy", "name": "default"}},
                 PolicyScope(PolicyKey("default"), "BaselineAdminNetworkPolicy"),
                 id="the baseline policy"),
    pytest.param({"namespace": "x"}, NamespaceScope("x"), id="a namespace"),
    pytest.param({"podSelector": {"matchLabels": {"app": "web"}}},
                 PodScope(LabelSelector(Labels({"app": "web"}))), id="a pod selector"),
])
def test_scopes(scope: dict[str, Any], expected: object) -> None:
    assert _parse({"metric": "DeniedFlows", "threshold": 1, "scope": scope}).scope == expected


def test_quarantine_defaults_to_the_kanal_label() -> None:
    rule = _parse({"metric": "DeniedFlows", "threshold": 1, "actions": [{"quarantine": {}}]})
    assert rule.actions == (QuarantineAction("kanal.io/quarantine", "true"),)


BAD = [
    ({"metric": None}, "spec.metric: is required"),
    ({"metric": "Packets"}, "spec.metric: unsupported value 'Packets': use one of DeniedFlows, "
     "AllowedFlows, Bytes, DestinationPorts, DestinationAddresses"),
    ({"type": "Spike"}, "spec.type: unsupported value 'Spike': use one of Breach, "
     "RollingAverage, UniqueCount"),
    ({"type": "UniqueCount"}, "spec.type: UniqueCount counts distinct values: use it with "
     "metric DestinationPorts or DestinationAddresses; DeniedFlows goes with Breach or "
     "RollingAverage"),
    ({"metric": "DestinationPorts", "type": "Breach"}, "spec.type: DestinationPorts counts "
     "distinct values: use type UniqueCount (or leave type out)"),
    ({"threshold": None}, "spec.threshold: is required: the value above which the alert fires"),
    ({"threshold": "10"}, "spec.threshold: must be a number, not a string"),
    ({"threshold": -1}, "spec.threshold: -1 must be 0 or more"),
    ({"metric": "DestinationPorts", "threshold": 2.5},
     "spec.threshold: 2.5 must be a whole number: UniqueCount counts distinct values"),
    ({"period": 60}, "spec.period: must be a duration with a unit, like 60s or 60m"),
    ({"period": "1 minute"}, "spec.period: '1 minute' is not a duration: a number and a unit "
     "(ms, s, m, h, d), like 30s, 5m or 1h30m"),
    ({"period": "500ms"}, "spec.period: 500ms must be between 1s and 1d"),
    ({"period": "2d"}, "spec.period: 2d must be between 1s and 1d"),
    ({"throttle": "0s"}, "spec.throttle: 0s must be between 1s and 7d"),
    ({"window": "10m"}, "spec.window: is the span a RollingAverage averages over: remove it, or "
     "use type RollingAverage"),
    ({"type": "RollingAverage", "period": "1m", "window": "1m"}, "spec.window: 1m must be "
     "longer than the period (1m): the average is taken over several periods"),
    ({"type": "RollingAverage", "window": "8d"}, "spec.window: 8d must be between 1s and 7d"),
    ({"groupBy": "Pod"}, "spec.groupBy: unsupported value 'Pod': use one of Source, "
     "Destination, Scope"),
    ({"verdict": "Dropped", "metric": "DestinationPorts"}, "spec.verdict: unsupported value "
     "'Dropped': use one of Allowed, Denied"),
    ({"verdict": "Denied"}, "spec.verdict: applies to DestinationPorts and DestinationAddresses "
     "only: DeniedFlows already says which flows it counts"),
    ({"scope": {}}, "spec.scope: must set one of policy, namespace, or podSelector and/or "
     "namespaceSelector: leave scope out to watch every flow"),
    ({"scope": {"namespace": "x", "podSelector": {}}}, "spec.scope: must set only one of policy, "
     "namespace, or podSelector and/or namespaceSelector, not namespace and "
     "podSelector/namespaceSelector"),
    ({"scope": {"namespaces": "x"}}, "spec.scope.namespaces: unknown field: did you mean "
     "'namespace'?"),
    ({"scope": {"namespace": "X_Y"}}, "spec.scope.namespace: invalid namespace 'X_Y': a "
     "lowercase RFC 1123 label"),
    ({"scope": {"policy": "a/b/c"}}, "spec.scope.policy: 'a/b/c' is not a policy: write "
     "NAMESPACE/NAME, or NAME for an admin policy"),
    ({"scope": {"policy": "x/Web"}}, "spec.scope.policy: invalid policy name 'Web': a "
     "lowercase RFC 1123 subdomain"),
    ({"scope": {"policy": {"kind": "Pod", "name": "a"}}}, "spec.scope.policy.kind: unsupported "
     "kind 'Pod': use one of NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy"),
    ({"scope": {"policy": {"kind": "NetworkPolicy", "name": "a"}}},
     "spec.scope.policy.namespace: is required for a NetworkPolicy"),
    ({"scope": {"policy": {"kind": "AdminNetworkPolicy", "namespace": "x", "name": "a"}}},
     "spec.scope.policy.namespace: a AdminNetworkPolicy is cluster-scoped: remove the "
     "namespace"),
    ({"scope": {"policy": {"namespace": "x"}}}, "spec.scope.policy.name: is required"),
    ({"scope": {"podSelector": {"matchLabels": {"app": "a b"}}}},
     "spec.scope.podSelector.matchLabels[app]: invalid label value 'a b'"),
    ({"actions": {"webhook": {}}}, "spec.actions: must be a list, not an object"),
    ({"actions": [{}]}, "spec.actions[0]: must set exactly one of webhook or quarantine"),
    ({"actions": [{"webhook": {"url": "http://a"}, "quarantine": {}}]},
     "spec.actions[0]: must set exactly one of webhook or quarantine, not webhook and "
     "quarantine"),
    ({"actions": [{"log": {}}]}, "spec.actions[0].log: unknown field: expected one of "
     "quarantine, webhook"),
    ({"actions": [{"webhook": {}}]}, "spec.actions[0].webhook.url: is required"),
    ({"actions": [{"webhook": {"url": "ftp://host/x"}}]}, "spec.actions[0].webhook.url: "
     "'ftp://host/x' is not an http(s) URL: write http://HOST[:PORT]/PATH"),
    ({"actions": [{"webhook": {"url": "http://host:99999/"}}]}, "spec.actions[0].webhook.url: "
     "'http://host:99999/' is not an http(s) URL"),
    ({"actions": [{"webhook": {"url": "http://h", "timeout": "2m"}}]},
     "spec.actions[0].webhook.timeout: 2m must be between 0.01s and 1m"),
    ({"actions": [{"webhook": {"url": "http://h", "retries": 11}}]},
     "spec.actions[0].webhook.retries: 11 must be between 0 and 10"),
    ({"actions": [{"webhook": {"url": "http://h", "method": "PUT"}}]},
     "spec.actions[0].webhook.method: unknown field"),
    ({"actions": [{"quarantine": {"label": "-bad"}}]},
     "spec.actions[0].quarantine.label: invalid label key '-bad'"),
    ({"actions": [{"quarantine": {"value": "a b"}}]},
     "spec.actions[0].quarantine.value: invalid label value 'a b'"),
    ({"groupBy": "Scope", "actions": [{"quarantine": {}}]}, "spec.actions[0].quarantine: "
     "groupBy Scope has no pod to label: group by Source or Destination"),
    ({"treshold": 1}, "spec.treshold: unknown field: did you mean 'threshold'?"),
]


@pytest.mark.parametrize(("spec", "line"), [pytest.param(s, line, id=line.split(":")[0] + ": "
                                                          + line.split(": ", 1)[1][:40])
                                             for s, line in BAD])
def test_bad_fields_are_reported_at_their_path(spec: dict[str, Any], line: str) -> None:
    full = {"metric": "DeniedFlows", "threshold": 10} | spec
    full = {k: v for k, v in full.items() if v is not None}
    problems = _problems(full)
    assert any(p.startswith(f"rule.yaml: AlertRule scan: {line}") for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems({"metric": "Packets", "threshold": -1, "period": "soon",
                          "actions": [{"webhook": {"url": "ftp://x"}}]})
    assert len(problems) == 4, problems


def test_an_alert_rule_is_cluster_scoped_and_needs_a_spec() -> None:
    doc = _rule({}) | {"metadata": {"name": "a", "namespace": "x"}}
    del doc["spec"]
    with pytest.raises(ManifestError) as caught:
        parse_documents([("rule.yaml", doc)])
    assert [str(p) for p in caught.value.problems] == ["rule.yaml: AlertRule a: spec: is required"]


def test_the_wrong_api_version_names_the_right_one() -> None:
    doc = _rule({"metric": "DeniedFlows", "threshold": 1}) | {"apiVersion": "v1"}
    with pytest.raises(ManifestError) as caught:
        parse_documents([("rule.yaml", doc)])
    assert str(caught.value) == ("rule.yaml: AlertRule scan: apiVersion: 'v1' is not supported "
                                 "for AlertRule: use kanal.io/v1alpha1")


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("2d", 172800.0),
    ("1.5h", 5400.0)])
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "-5s", "5w"])
def test_not_durations(text: str) -> None:
    assert isinstance(duration(text), str)
