"""The parts of an AlertRule that name things outside it: its scope (a policy, a namespace, a
group of pods) and its actions (a webhook, a quarantine label). See `kanal.model.alertrule`.

These only check shapes and names; how a flow is matched against a scope and how an action is
carried out are `kanal.flows.alerts` and the collector's actions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kanal.model.fields import (
    At,
    Raw,
    as_str,
    check_fields,
    get_int,
    get_mapping,
    get_str,
    items_of,
)
from kanal.model.meta import get_selector
from kanal.model.objects import LabelSelector, PolicyKey
from kanal.model.validate import (
    dns1123_label,
    dns1123_subdomain,
    duration,
    label_key,
    label_value,
)

QUARANTINE_LABEL = "kanal.io/quarantine"
QUARANTINE_VALUE = "true"
DEFAULT_WEBHOOK_TIMEOUT_S = 5.0
MIN_WEBHOOK_TIMEOUT_S = 0.01
MAX_WEBHOOK_TIMEOUT_S = 60.0
DEFAULT_WEBHOOK_RETRIES = 3
MAX_WEBHOOK_RETRIES = 10
POLICY_KINDS = ("NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy")

_SCOPE_FIELDS = ("policy", "namespace", "podSelector", "namespaceSelector")
_POLICY_FIELDS = ("kind", "namespace", "name")
_ACTION_FIELDS = ("webhook", "quarantine")
_WEBHOOK_FIELDS = ("url", "timeout", "retries")
_QUARANTINE_FIELDS = ("label", "value")
_URL_RE = re.compile(r"(https?)://([^/?#\s@]+?)(?::(\d+))?([/?#]\S*)?")


@dataclass(frozen=True, slots=True)
class PolicyScope:
    """Flows decided by a rule of `policy`, or by a default deny it takes part in. `kind` None:
    any policy with that key (`ns/name` is a NetworkPolicy's, `name` an admin policy's)."""

    policy: PolicyKey
    kind: str | None = None

    def describe(self) -> str:
        return f"policy {self.policy}"


@dataclass(frozen=True, slots=True)
class NamespaceScope:
    """Flows from or to a pod of `namespace`."""

    namespace: str

    def describe(self) -> str:
        return f"namespace {self.namespace}"


@dataclass(frozen=True, slots=True)
class PodScope:
    """Flows from or to a selected pod: a NetworkPolicy peer's selectors, read cluster-wide
    (an AlertRule has no namespace): an absent selector selects every pod / namespace."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None

    def describe(self) -> str:
        pods = "pods" if self.pod_selector is None else f"pods {self.pod_selector.describe()}"
        if self.namespace_selector is None:
            return pods
        return f"{pods} in namespaces {self.namespace_selector.describe()}"


AlertScope = PolicyScope | NamespaceScope | PodScope | None
"""None: every flow the collector records."""


@dataclass(frozen=True, slots=True)
class WebhookAction:
    """POST the alert as JSON to `url`; each attempt waits `timeout_s`, `retries` more tries."""

    url: str
    timeout_s: float = DEFAULT_WEBHOOK_TIMEOUT_S
    retries: int = DEFAULT_WEBHOOK_RETRIES


@dataclass(frozen=True, slots=True)
class QuarantineAction:
    """Label the offending pod `label=value` in the datastore, for an administrator's policy."""

    label: str = QUARANTINE_LABEL
    value: str = QUARANTINE_VALUE


AlertAction = WebhookAction | QuarantineAction


def get_duration(spec: Raw, key: str, at: At, *, low: float, high: float) -> float | None:
    """`spec[key]` as seconds within [low, high]; None when absent or invalid (reported)."""
    value = spec.get(key)
    field_at = at.field(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        field_at.problem(f"must be a duration with a unit, like {value}s or {value}m")
        return None
    text = get_str(spec, key, at)
    if text is None:
        return None
    seconds = duration(text)
    if isinstance(seconds, str):
        field_at.problem(seconds)
        return None
    if not low <= seconds <= high:
        field_at.problem(
            f"{text} must be between {duration_text(low)} and {duration_text(high)}"
        )
        return None
    return seconds


def duration_text(seconds: float) -> str:
    """60.0 -> `1m`, 86400.0 -> `1d`: durations in messages as users write them."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- scope -----------------------------------------------------------------------------------


def parse_scope(spec: Raw, at: At) -> AlertScope:
    scope = get_mapping(spec, "scope", at)
    if scope is None:
        return None
    scope_at = at.field("scope")
    check_fields(scope, _SCOPE_FIELDS, scope_at)
    given = [key for key in ("policy", "namespace") if scope.get(key) is not None]
    if any(scope.get(key) is not None for key in ("podSelector", "namespaceSelector")):
        given.append("podSelector/namespaceSelector")
    if len(given) != 1:
        choices = "policy, namespace, or podSelector and/or namespaceSelector"
        if given:
            scope_at.problem(f"must set only one of {choices}, not {' and '.join(given)}")
        else:
            scope_at.problem(f"must set one of {choices}: leave scope out to watch every flow")
        return None
    if given[0] == "policy":
        return _policy_scope(scope["policy"], scope_at.field("policy"))
    if given[0] == "namespace":
        namespace = get_str(scope, "namespace", scope_at)
        if namespace is None or not scope_at.field("namespace").problems(
            dns1123_label(namespace), prefix=f"invalid namespace {namespace!r}: "
        ):
            return None
        return NamespaceScope(namespace)
    return PodScope(
        get_selector(scope, "podSelector", scope_at),
        get_selector(scope, "namespaceSelector", scope_at),
    )


def _policy_scope(value: object, at: At) -> PolicyScope | None:
    """`ns/name` (a NetworkPolicy), `name` (an admin policy) or {kind, namespace, name}."""
    if isinstance(value, dict):
        return _policy_object(value, at)
    text = as_str(value, at)
    if text is None:
        return None
    namespace, _, name = text.rpartition("/")
    if "/" in namespace:
        at.problem(f"{text!r} is not a policy: write NAMESPACE/NAME, or NAME for an admin policy")
        return None
    ok = _check_policy_name(namespace, name, at)
    return PolicyScope(PolicyKey(text)) if ok else None


def _policy_object(raw: Raw, at: At) -> PolicyScope | None:
    check_fields(raw, _POLICY_FIELDS, at)
    kind = get_str(raw, "kind", at)
    namespace = get_str(raw, "namespace", at) or ""
    name = get_str(raw, "name", at, required=True)
    if kind is not None and kind not in POLICY_KINDS:
        at.field("kind").problem(f"unsupported kind {kind!r}: use one of {', '.join(POLICY_KINDS)}")
        return None
    if kind == "NetworkPolicy" and not namespace:
        at.field("namespace").problem("is required for a NetworkPolicy")
        return None
    if kind is not None and kind != "NetworkPolicy" and namespace:
        at.field("namespace").problem(f"a {kind} is cluster-scoped: remove the namespace")
        return None
    if name is None or not _check_policy_name(namespace, name, at):
        return None
    key = f"{namespace}/{name}" if namespace else name
    return PolicyScope(PolicyKey(key), kind or ("NetworkPolicy" if namespace else None))


def _check_policy_name(namespace: str, name: str, at: At) -> bool:
    ok = at.problems(dns1123_subdomain(name), prefix=f"invalid policy name {name!r}: ")
    if namespace:
        prefix = f"invalid namespace {namespace!r}: "
        ok = at.problems(dns1123_label(namespace), prefix=prefix) and ok
    return ok


# -- actions ---------------------------------------------------------------------------------


def parse_actions(spec: Raw, at: At, *, group_by: str) -> tuple[AlertAction, ...]:
    actions: list[AlertAction] = []
    for raw, item_at in items_of(spec, "actions", at):
        check_fields(raw, _ACTION_FIELDS, item_at)
        given = [key for key in _ACTION_FIELDS if key in raw]
        if len(given) != 1:
            item_at.problem("must set exactly one of webhook or quarantine"
                            + (f", not {' and '.join(given)}" if given else ""))
            continue
        body = get_mapping(raw, given[0], item_at) if raw[given[0]] is not None else {}
        if body is None:
            continue
        action_at = item_at.field(given[0])
        if given[0] == "webhook":
            webhook = _webhook(body, action_at)
            if webhook is not None:
                actions.append(webhook)
        else:
            actions.append(_quarantine(body, action_at, group_by=group_by))
    return tuple(actions)


def _webhook(raw: Raw, at: At) -> WebhookAction | None:
    check_fields(raw, _WEBHOOK_FIELDS, at)
    url = get_str(raw, "url", at, required=True)
    if url is not None and not _valid_url(url):
        at.field("url").problem(
            f"{url!r} is not an http(s) URL: write http://HOST[:PORT]/PATH "
            "(e.g. http://127.0.0.1:9000/alerts)"
        )
    timeout = _webhook_timeout(raw, at)
    retries = get_int(raw, "retries", at)
    if retries is not None and not 0 <= retries <= MAX_WEBHOOK_RETRIES:
        at.field("retries").problem(f"{retries} must be between 0 and {MAX_WEBHOOK_RETRIES}")
    if url is None:
        return None
    return WebhookAction(
        url, timeout, DEFAULT_WEBHOOK_RETRIES if retries is None else retries
    )


def _valid_url(url: str) -> bool:
    match = _URL_RE.fullmatch(url)
    if match is None:
        return False
    port = match.group(3)
    return port is None or 1 <= int(port) <= 65535


def _webhook_timeout(raw: Raw, at: At) -> float:
    seconds = get_duration(raw, "timeout", at, low=MIN_WEBHOOK_TIMEOUT_S,
                           high=MAX_WEBHOOK_TIMEOUT_S)
    return DEFAULT_WEBHOOK_TIMEOUT_S if seconds is None else seconds


def _quarantine(raw: Raw, at: At, *, group_by: str) -> QuarantineAction:
    check_fields(raw, _QUARANTINE_FIELDS, at)
    label = get_str(raw, "label", at) or QUARANTINE_LABEL
    value = get_str(raw, "value", at)
    value = QUARANTINE_VALUE if value is None else value
    at.field("label").problems(label_key(label), prefix=f"invalid label key {label!r}: ")
    at.field("value").problems(label_value(value), prefix=f"invalid label value {value!r}: ")
    if group_by == "Scope":
        at.problem("groupBy Scope has no pod to label: group by Source or Destination")
    return QuarantineAction(label, value)
