"""IPAM: blocks per owner, addresses per pod, exhaustion errors, persistence across restarts."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from kanal.errors import IpamExhaustedError
from kanal.ipam import Ipam, IpamState, IpamStore

CLUSTER = ipaddress.IPv4Network("10.244.0.0/16")


def test_each_owner_gets_its_own_block_in_order() -> None:
    ipam = Ipam(CLUSTER, 24)
    assert str(ipam.block("node-1")) == "10.244.0.0/24"
    assert str(ipam.block("node-2")) == "10.244.1.0/24"
    assert str(ipam.block("node-1")) == "10.244.0.0/24"


def test_pods_get_distinct_addresses_skipping_network_and_broadcast() -> None:
    ipam = Ipam(CLUSTER, 30)
    assert [str(ipam.assign(p, "n")) for p in ("x/a", "x/b")] == ["10.244.0.1", "10.244.0.2"]
    with pytest.raises(IpamExhaustedError, match=r"block 10.244.0.0/30 of `n` is full \(2 pods\)"):
        ipam.assign("x/c", "n")


def test_assign_is_idempotent_and_release_frees_the_address() -> None:
    ipam = Ipam(CLUSTER, 24)
    first = ipam.assign("x/a", "n")
    assert ipam.assign("x/a", "n") == first
    ipam.release("x/a")
    assert ipam.assign("x/b", "n") == first


def test_a_full_cluster_cidr_is_a_clear_error() -> None:
    ipam = Ipam(ipaddress.IPv4Network("10.0.0.0/23"), 24)
    ipam.block("a")
    ipam.block("b")
    with pytest.raises(IpamExhaustedError, match="no free /24 block for `c`"):
        ipam.block("c")


def test_a_block_is_returned_only_when_empty() -> None:
    ipam = Ipam(CLUSTER, 24)
    ipam.assign("x/a", "ns-x")
    ipam.release_block("ns-x")
    assert "ns-x" in ipam.state.blocks
    ipam.release("x/a")
    ipam.release_block("ns-x")
    assert "ns-x" not in ipam.state.blocks


def test_state_survives_a_restart_so_no_address_is_handed_out_twice(tmp_path: Path) -> None:
    store = IpamStore(tmp_path / "ipam.json")
    ipam = Ipam(CLUSTER, 24, store.load())
    a = ipam.assign("x/a", "node-1")
    store.save(ipam.state)
    reborn = Ipam(CLUSTER, 24, store.load())
    assert reborn.state == ipam.state
    assert reborn.assign("x/b", "node-1") != a


def test_a_missing_state_file_is_an_empty_state(tmp_path: Path) -> None:
    assert IpamStore(tmp_path / "none.json").load() == IpamState()
