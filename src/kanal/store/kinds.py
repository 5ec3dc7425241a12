"""The kinds the store holds, named as kubectl names them, and the columns `kanal get` shows.

```
pods (po)                              Pod                    NAME  IP  NODE  AGE
namespaces (ns)                        Namespace              NAME  AGE
nodes (no)                             Node                   NAME  INTERNAL-IP  AGE
networkpolicies (netpol)               NetworkPolicy          NAME  POD-SELECTOR  AGE
adminnetworkpolicies (anp)             AdminNetworkPolicy     NAME  PRIORITY  AGE
baselineadminnetworkpolicies (banp)    BaselineAdminNetworkPolicy  NAME  AGE
labs                                   Lab (kanal.io)         NAME  AGE
alertrules                             AlertRule (kanal.io)   NAME  METRIC  TYPE  THRESHOLD  PERIOD
                                                              AGE
```

`-o wide` adds LABELS. A kind is found case-insensitively by its kind, singular, plural, short
name or `plural.group` (`networkpolicies.networking.k8s.io`), as kubectl resolves resources.
The cells come from the stored document as it is: this module does not validate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kanal.model.fields import At, Report
from kanal.model.meta import parse_selector
from kanal.model.parse import KINDS, KindSpec
from kanal.store.api import Doc, StoreError

NONE = "<none>"

Cell = Callable[[Doc], str]


@dataclass(frozen=True, slots=True)
class Resource:
    """A kind as the command line names it; `columns` go between NAME and AGE."""

    spec: KindSpec
    plural: str
    short: tuple[str, ...] = ()
    columns: tuple[tuple[str, Cell], ...] = ()

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def namespaced(self) -> bool:
        return self.spec.namespaced

    @property
    def group(self) -> str:
        """The API group: "" for the core group (`v1`)."""
        return self.spec.api_version.rpartition("/")[0]

    @property
    def qualified(self) -> str:
        """kubectl's name in `apply` output: `pod`, `networkpolicy.networking.k8s.io`."""
        singular = self.kind.lower()
        return f"{singular}.{self.group}" if self.group else singular

    def names(self) -> set[str]:
        names = {self.kind.lower(), self.plural, self.qualified, *self.short}
        return names | ({f"{self.plural}.{self.group}"} if self.group else set())


def _field(doc: Doc, *path: str | int) -> Any:
    value: Any = doc
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value


def pod_ip(doc: Doc) -> str:
    return str(_field(doc, "status", "podIP") or _field(doc, "status", "podIPs", 0, "ip") or NONE)


def node_name(doc: Doc) -> str:
    return str(_field(doc, "spec", "nodeName") or NONE)


def internal_ip(doc: Doc) -> str:
    addresses = _field(doc, "status", "addresses") or []
    found = [a.get("address") for a in addresses if a.get("type") == "InternalIP"]
    return str(found[0]) if found else NONE


def pod_selector(doc: Doc) -> str:
    """kubectl's POD-SELECTOR: `app=web,tier in (a,b)`, `<none>` for the empty selector."""
    selector = parse_selector(_field(doc, "spec", "podSelector") or {}, At(Report("", "")))
    return NONE if selector is None or selector.is_empty() else selector.describe()


def priority(doc: Doc) -> str:
    return str(_field(doc, "spec", "priority"))


def spec_cell(*path: str, default: str = NONE) -> Cell:
    """A cell showing `spec.<path>` as stored, `default` when absent."""

    def cell(doc: Doc) -> str:
        value = _field(doc, "spec", *path)
        return default if value is None else str(value)

    return cell


def alert_type(doc: Doc) -> str:
    """The type, or the one the metric implies (see `kanal.model.alertrule`)."""
    value = _field(doc, "spec", "type")
    if value is not None:
        return str(value)
    distinct = _field(doc, "spec", "metric") in ("DestinationPorts", "DestinationAddresses")
    return "UniqueCount" if distinct else "Breach"


def labels(doc: Doc) -> str:
    items = sorted((_field(doc, "metadata", "labels") or {}).items())
    return ",".join(f"{key}={value}" for key, value in items) or NONE


def _spec(kind: str) -> KindSpec:
    return next(spec for spec in KINDS.values() if spec.kind == kind)


RESOURCES = (
    Resource(_spec("Pod"), "pods", ("po",), (("IP", pod_ip), ("NODE", node_name))),
    Resource(_spec("Namespace"), "namespaces", ("ns",)),
    Resource(_spec("Node"), "nodes", ("no",), (("INTERNAL-IP", internal_ip),)),
    Resource(
        _spec("NetworkPolicy"), "networkpolicies", ("netpol",), (("POD-SELECTOR", pod_selector),)
    ),
    Resource(
        _spec("AdminNetworkPolicy"), "adminnetworkpolicies", ("anp",), (("PRIORITY", priority),)
    ),
    Resource(_spec("BaselineAdminNetworkPolicy"), "baselineadminnetworkpolicies", ("banp",)),
    Resource(_spec("Lab"), "labs"),
    Resource(
        _spec("AlertRule"),
        "alertrules",
        (),
        (
            ("METRIC", spec_cell("metric")),
            ("TYPE", alert_type),
            ("THRESHOLD", spec_cell("threshold")),
            ("PERIOD", spec_cell("period", default="60s")),
        ),
    ),
)
BY_KIND = {resource.kind: resource for resource in RESOURCES}
_BY_NAME = {name: resource for resource in RESOURCES for name in resource.names()}


def resource(text: str) -> Resource:
    """The resource `text` names (case-insensitive); StoreError listing the known ones."""
    found = _BY_NAME.get(text.lower())
    if found is None:
        known = ", ".join(f"{r.plural} ({r.short[0]})" if r.short else r.plural for r in RESOURCES)
        raise StoreError(f"kanal does not store `{text}` objects: use one of {known}")
    return found
