"""What every kind shares: `metadata` (name, namespace, labels) and label selectors.

Validation follows `k8s.io/apimachinery` (`ValidateObjectMeta`, `ValidateLabels`,
`ValidateLabelSelector`) so kanal rejects what the API server rejects. Other metadata fields
(annotations, uid, managedFields...) are accepted and ignored: kanal does not use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kanal.model.fields import (
    At,
    Raw,
    as_list,
    as_mapping,
    as_str,
    check_fields,
    each_mapping,
    get_list,
    get_mapping,
    get_str,
)
from kanal.model.objects import (
    NO_LABELS,
    IPAddress,
    IPNetwork,
    Labels,
    LabelSelector,
    Operator,
    Protocol,
    Requirement,
)
from kanal.model.validate import cidr, ip_address, label_key, label_value

DEFAULT_NAMESPACE = "default"

NameRule = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """The metadata kanal uses; `namespace` is "" for cluster-scoped kinds."""

    name: str
    namespace: str
    labels: Labels

    def display(self) -> str:
        """`ns/name` or `name`, as kubectl and `Problem` name objects ("" when unnamed)."""
        if not self.name or not self.namespace:
            return self.name
        return f"{self.namespace}/{self.name}"


def parse_metadata(
    raw: Raw, at: At, *, namespaced: bool, name_rule: NameRule, namespace_rule: NameRule
) -> ObjectMeta:
    """Read `metadata`; names the report's object first, so even name problems say which one."""
    meta_at = at.field("metadata")
    metadata = get_mapping(raw, "metadata", at, required=True)
    if metadata is None:
        return ObjectMeta("", DEFAULT_NAMESPACE if namespaced else "", NO_LABELS)
    name = get_str(metadata, "name", meta_at) or ""
    namespace = ""
    if namespaced:
        namespace = get_str(metadata, "namespace", meta_at) or DEFAULT_NAMESPACE
    at.report.name = ObjectMeta(name, namespace, NO_LABELS).display()
    meta = ObjectMeta(name, namespace, _labels(metadata, meta_at))
    _check_name(metadata, meta, meta_at, name_rule=name_rule, namespace_rule=namespace_rule)
    return meta


def _labels(metadata: Raw, at: At) -> Labels:
    value = metadata.get("labels")
    return NO_LABELS if value is None else parse_labels(value, at.field("labels"))


def _check_name(
    metadata: Raw, meta: ObjectMeta, at: At, *, name_rule: NameRule, namespace_rule: NameRule
) -> None:
    name_given = isinstance(metadata.get("name"), str)
    if meta.name:
        at.field("name").problems(name_rule(meta.name), prefix=f"invalid name {meta.name!r}: ")
    elif "generateName" in metadata:
        at.field("name").problem("is required: generateName is not supported, give a name")
    elif name_given or metadata.get("name") is None:
        at.field("name").problem("is required")
    if meta.namespace and "namespace" in metadata:
        at.field("namespace").problems(
            namespace_rule(meta.namespace), prefix=f"invalid namespace {meta.namespace!r}: "
        )


def parse_labels(value: object, at: At) -> Labels:
    """A label map (`metadata.labels`, `matchLabels`); every key and value is validated."""
    mapping = as_mapping(value, at)
    if mapping is None:
        return NO_LABELS
    labels: dict[str, str] = {}
    for key, raw_value in mapping.items():
        entry_at = at.key(key)
        entry_at.problems(label_key(key), prefix=f"invalid label key {key!r}: ")
        text = as_str(raw_value, entry_at) if raw_value is not None else ""
        if text is not None:
            entry_at.problems(label_value(text), prefix=f"invalid label value {text!r}: ")
            labels[key] = text
    return Labels(labels)


_SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
_REQUIREMENT_FIELDS = ("key", "operator", "values")
_OPERATORS = ", ".join(op.value for op in Operator)


def parse_selector(value: object, at: At) -> LabelSelector | None:
    """A `metav1.LabelSelector`; the empty selector `{}` selects everything."""
    selector = as_mapping(value, at)
    if selector is None:
        return None
    check_fields(selector, _SELECTOR_FIELDS, at)
    match_labels = selector.get("matchLabels")
    labels = NO_LABELS if match_labels is None else parse_labels(
        match_labels, at.field("matchLabels")
    )
    expressions = get_list(selector, "matchExpressions", at) or []
    requirements = [
        _requirement(item, item_at)
        for item, item_at in each_mapping(expressions, at.field("matchExpressions"))
    ]
    return LabelSelector(labels, tuple(r for r in requirements if r is not None))


def get_selector(raw: Raw, key: str, at: At, *, required: bool = False) -> LabelSelector | None:
    """`raw[key]` as a selector; None when absent (or invalid, which is reported)."""
    value = raw.get(key)
    if value is None:
        if required:
            at.field(key).problem("is required: use {} to select everything")
        return None
    return parse_selector(value, at.field(key))


def _requirement(raw: Raw, at: At) -> Requirement | None:
    check_fields(raw, _REQUIREMENT_FIELDS, at)
    key = get_str(raw, "key", at, required=True)
    if key is not None:
        at.field("key").problems(label_key(key), prefix=f"invalid label key {key!r}: ")
    operator = _operator(raw, at)
    values = _values(raw, at.field("values"))
    if operator is not None:
        _check_values_for(operator, values, at.field("values"))
    if key is None or operator is None or values is None:
        return None
    return Requirement(key, operator, frozenset(values))


def _operator(raw: Raw, at: At) -> Operator | None:
    text = get_str(raw, "operator", at, required=True)
    if text is None:
        return None
    try:
        return Operator(text)
    except ValueError:
        at.field("operator").problem(f"unsupported operator {text!r}: use one of {_OPERATORS}")
        return None


def _values(raw: Raw, at: At) -> list[str] | None:
    value = raw.get("values")
    if value is None:
        return []
    items = as_list(value, at)
    if items is None:
        return None
    values: list[str] = []
    for index, item in enumerate(items):
        text = as_str(item, at.item(index))
        if text is not None:
            at.item(index).problems(label_value(text), prefix=f"invalid label value {text!r}: ")
            values.append(text)
    return values


def _check_values_for(operator: Operator, values: list[str] | None, at: At) -> None:
    if values is None:
        return
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        at.problem(f"must list at least one value when operator is {operator}")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        at.problem(f"must be empty when operator is {operator}: remove the values")


_PROTOCOLS = ", ".join(p.value for p in Protocol)


def get_protocol(raw: Raw, at: At, *, key: str = "protocol") -> Protocol | None:
    """`raw[key]` as a protocol, TCP when absent (every kind kanal reads defaults to TCP)."""
    text = get_str(raw, key, at)
    if text is None:
        return Protocol.TCP if raw.get(key) is None else None
    try:
        return Protocol(text)
    except ValueError:
        at.field(key).problem(f"unsupported protocol {text!r}: use one of {_PROTOCOLS}")
        return None


def parse_ip(value: object, at: At) -> IPAddress | None:
    """An IPv4 or IPv6 address given as a string."""
    text = as_str(value, at)
    if text is None:
        return None
    ip = ip_address(text)
    if isinstance(ip, str):
        at.problem(ip)
        return None
    return ip


def parse_cidr(value: object, at: At) -> IPNetwork | None:
    """An IPv4 or IPv6 CIDR given as a string, normalized (see `kanal.model.validate.cidr`)."""
    text = as_str(value, at)
    if text is None:
        return None
    network = cidr(text)
    if isinstance(network, str):
        at.problem(network)
        return None
    return network
