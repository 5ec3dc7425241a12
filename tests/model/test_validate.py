"""The string validators against the values `k8s.io/apimachinery` accepts and rejects."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from kanal.model import validate

LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')"
)
SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com')"
)
NAME_PART_HELP = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')"
)
VALUE_HELP = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value')"
)

Validator = Callable[[str], list[str]]


@pytest.mark.parametrize(
    ("validator", "value", "expected"),
    [
        pytest.param(validate.dns1123_label, "frontend", [], id="a lowercase label is valid"),
        pytest.param(validate.dns1123_label, "a" * 63, [], id="a 63-character label is valid"),
        pytest.param(
            validate.dns1123_label,
            "a" * 64,
            ["must be no more than 63 characters"],
            id="a 64-character label is too long",
        ),
        pytest.param(validate.dns1123_label, "my.ns", [LABEL_HELP], id="a label has no dots"),
        pytest.param(validate.dns1123_label, "Web", [LABEL_HELP], id="a label is lowercase"),
        pytest.param(validate.dns1123_label, "-web", [LABEL_HELP], id="a label starts alnum"),
        pytest.param(validate.dns1123_subdomain, "web.v1", [], id="a subdomain may have dots"),
        pytest.param(
            validate.dns1123_subdomain, "web..v1", [SUBDOMAIN_HELP], id="no empty subdomain part"
        ),
        pytest.param(
            validate.dns1123_subdomain,
            "a" * 254,
            ["must be no more than 253 characters"],
            id="a 254-character subdomain is too long",
        ),
        pytest.param(validate.label_key, "app", [], id="a plain label key is valid"),
        pytest.param(validate.label_key, "App_Name.v2", [], id="a key name may be mixed case"),
        pytest.param(
            validate.label_key, "app.kubernetes.io/name", [], id="a key may have a prefix"
        ),
        pytest.param(
            validate.label_key, "/name", ["prefix part must be non-empty"], id="an empty prefix"
        ),
        pytest.param(
            validate.label_key,
            "Example.com/name",
            [f"prefix part {SUBDOMAIN_HELP}"],
            id="a key prefix is lowercase",
        ),
        pytest.param(
            validate.label_key, "example.com/", ["name part must be non-empty"], id="an empty name"
        ),
        pytest.param(
            validate.label_key,
            "a" * 64,
            ["name part must be no more than 63 characters"],
            id="a 64-character key name is too long",
        ),
        pytest.param(validate.label_key, "-app", [NAME_PART_HELP], id="a key name starts alnum"),
        pytest.param(
            validate.label_key,
            "a/b/c",
            [
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyName', 'my.name' or "
                "'123-abc'), with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"
            ],
            id="a key has at most one slash",
        ),
        pytest.param(validate.label_value, "", [], id="an empty label value is valid"),
        pytest.param(validate.label_value, "v1.2_rc-3", [], id="a value may use - _ and ."),
        pytest.param(validate.label_value, "-v1", [VALUE_HELP], id="a value starts alnum"),
        pytest.param(validate.label_value, "a b", [VALUE_HELP], id="a value has no spaces"),
        pytest.param(
            validate.label_value,
            "a" * 64,
            ["must be no more than 63 characters"],
            id="a 64-character value is too long",
        ),
        pytest.param(validate.port_name, "http", [], id="a port name is valid"),
        pytest.param(validate.port_name, "h2c-8080", [], id="a port name may have digits"),
        pytest.param(
            validate.port_name,
            "a-very-long-name",
            ["must be no more than 15 characters"],
            id="a 16-character port name is too long",
        ),
        pytest.param(
            validate.port_name,
            "HTTP",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
            id="a port name is lowercase",
        ),
        pytest.param(
            validate.port_name,
            "8080",
            ["must contain at least one letter (a-z)"],
            id="a port name has a letter",
        ),
        pytest.param(
            validate.port_name,
            "my--port",
            ["must not contain consecutive hyphens"],
            id="a port name has no double hyphen",
        ),
        pytest.param(
            validate.port_name,
            "-http",
            ["must not begin or end with a hyphen"],
            id="a port name does not start with a hyphen",
        ),
    ],
)
def test_string_validators(validator: Validator, value: str, expected: list[str]) -> None:
    assert validator(value) == expected


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        pytest.param(1, [], id="port 1 is the lowest"),
        pytest.param(65535, [], id="port 65535 is the highest"),
        pytest.param(0, ["must be between 1 and 65535, inclusive"], id="port 0 is rejected"),
        pytest.param(65536, ["must be between 1 and 65535, inclusive"], id="port 65536 too"),
    ],
)
def test_port_number(port: int, expected: list[str]) -> None:
    assert validate.port_number(port) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8"), id="an IPv4 CIDR"),
        pytest.param("2001:db8::/32", ipaddress.ip_network("2001:db8::/32"), id="an IPv6 CIDR"),
        pytest.param(
            "10.0.0.1/24",
            ipaddress.ip_network("10.0.0.0/24"),
            id="host bits are cleared, as Go's ParseCIDR does",
        ),
        pytest.param(
            "10.0.0.1",
            "'10.0.0.1' is not a CIDR: add a prefix length (e.g. 10.0.0.1/32 or 10.0.0.0/8)",
            id="an address without prefix length is not a CIDR",
        ),
        pytest.param(
            "10.0.0.0/33",
            "'10.0.0.0/33' is not a valid CIDR (e.g. 192.168.1.0/24 or 2001:db8::/64)",
            id="a prefix longer than the address is rejected",
        ),
    ],
)
def test_cidr(text: str, expected: object) -> None:
    assert validate.cidr(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("10.1.2.3", ipaddress.ip_address("10.1.2.3"), id="an IPv4 address"),
        pytest.param("fd00::1", ipaddress.ip_address("fd00::1"), id="an IPv6 address"),
        pytest.param(
            "010.1.2.3",
            "'010.1.2.3' is not a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)",
            id="leading zeros are ambiguous and rejected",
        ),
    ],
)
def test_ip_address(text: str, expected: object) -> None:
    assert validate.ip_address(text) == expected
