"""Shared fixtures. Kernel tests (marked `kernel`) need root: they are skipped, with the reason
shown by `-ra`, when not run as root."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="kernel test: needs root (network namespaces, nftables)")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


def _unique_netns_prefix() -> Iterator[str]:
    from kanal.dataplane.netns import delete_netns, list_netns

    prefix = f"kt{secrets.token_hex(2)}-"
    yield prefix
    leftovers = list_netns(prefix)
    for name in leftovers:
        delete_netns(name, missing_ok=True)
    assert not leftovers, f"namespaces left behind: {leftovers}"


@pytest.fixture
def netns_prefix() -> Iterator[str]:
    """A unique prefix (`kt<4 hex>-`) for every netns this test creates.

    Teardown runs after the fixtures that built namespaces with it have cleaned up; it fails
    the test if any namespace with the prefix is left, after removing them so nothing leaks.
    """
    yield from _unique_netns_prefix()


@pytest.fixture(scope="module")
def module_netns_prefix() -> Iterator[str]:
    """`netns_prefix` for a topology shared by the tests of one module (built once)."""
    yield from _unique_netns_prefix()
