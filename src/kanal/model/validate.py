"""String and address validators, as `k8s.io/apimachinery/pkg/util/validation` defines them.

Each validator returns the list of everything wrong with a value (empty when valid), like its
upstream twin, so a caller reports one problem per message. The messages are upstream's, so a
user who has seen the API server reject a value recognises the reason. These functions know
nothing about field paths or objects: `kanal.model.fields` attaches them to a place.
"""

from __future__ import annotations

import ipaddress
import re

from kanal.model.objects import IPAddress, IPNetwork

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63
PORT_NAME_MAX = 15
PORT_MIN, PORT_MAX = 1, 65535

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL)
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_PORT_NAME_CHARSET_RE = re.compile(r"[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile(r"[a-z]")

_DNS1123_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')"
)
_DNS1123_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com')"
)
_QUALIFIED_NAME_HELP = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')"
)
_LABEL_VALUE_HELP = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value')"
)


def _too_long(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def dns1123_label(value: str) -> list[str]:
    """Namespace names (and label-like names): `IsDNS1123Label`."""
    errors = _too_long(value, DNS1123_LABEL_MAX)
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errors.append(_DNS1123_LABEL_HELP)
    return errors


def dns1123_subdomain(value: str) -> list[str]:
    """Most object names (pods, policies, nodes) and label-key prefixes: `IsDNS1123Subdomain`."""
    errors = _too_long(value, DNS1123_SUBDOMAIN_MAX)
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(_DNS1123_SUBDOMAIN_HELP)
    return errors


def label_key(value: str) -> list[str]:
    """Label keys: `IsQualifiedName`, an optional DNS subdomain prefix, `/`, then a name."""
    parts = value.split("/")
    if len(parts) > 2:
        return [f"a qualified name {_QUALIFIED_NAME_HELP}, with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')"]
    errors: list[str] = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {m}" for m in dns1123_subdomain(prefix))
    name = parts[-1]
    if not name:
        return [*errors, "name part must be non-empty"]
    if len(name) > QUALIFIED_NAME_MAX:
        errors.append(f"name part must be no more than {QUALIFIED_NAME_MAX} characters")
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errors.append(f"name part {_QUALIFIED_NAME_HELP}")
    return errors


def label_value(value: str) -> list[str]:
    """Label values (and selector values): `IsValidLabelValue`; the empty string is valid."""
    errors = _too_long(value, LABEL_VALUE_MAX)
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(_LABEL_VALUE_HELP)
    return errors


def port_name(value: str) -> list[str]:
    """Container port names and named policy ports: `IsValidPortName` (an IANA_SVC_NAME)."""
    errors = _too_long(value, PORT_NAME_MAX)
    if not _PORT_NAME_CHARSET_RE.fullmatch(value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def port_number(value: int) -> list[str]:
    """`IsValidPortNum`."""
    if PORT_MIN <= value <= PORT_MAX:
        return []
    return [f"must be between {PORT_MIN} and {PORT_MAX}, inclusive"]


def ip_address(value: str) -> IPAddress | str:
    """An IPv4 or IPv6 address, or the reason it is not one.

    Python's parser is stricter than Go's legacy one (no leading zeros in IPv4 octets), like the
    API server's own strict validation since Kubernetes 1.33."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)"


_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(value: str) -> float | str:
    """Seconds of a duration as Kubernetes and Prometheus write them (`30s`, `5m`, `1h30m`,
    `250ms`, `2d`), or the reason it is not one. A bare number has no unit and is refused:
    `60` could mean seconds or minutes."""
    parts = _DURATION_PART_RE.findall(value)
    if value and "".join(f"{number}{unit}" for number, unit in parts) == value:
        return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    return (
        f"{value!r} is not a duration: a number and a unit (ms, s, m, h, d), like 30s, 5m or "
        "1h30m"
    )


def cidr(value: str) -> IPNetwork | str:
    """An IPv4 or IPv6 CIDR, normalized, or the reason it is not one.

    Host bits are accepted and cleared (`10.0.0.1/24` is `10.0.0.0/24`), as Go's
    `net.ParseCIDR` and the API server (before strict validation) accept them; the masked
    network is what every implementation enforces."""
    if "/" not in value:
        return f"{value!r} is not a CIDR: add a prefix length (e.g. {value}/32 or 10.0.0.0/8)"
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{value!r} is not a valid CIDR (e.g. 192.168.1.0/24 or 2001:db8::/64)"
