"""Ipam: which block each node or namespace owns, and which address each pod holds.

The cluster CIDR is cut into blocks of one prefix length. A block's owner is a node (`ipam:
node`, Flannel's per-node subnet: a pod's address says where it runs) or a namespace (`ipam:
namespace`, Nuage's zone subnets: a pod's address says what it belongs to, wherever it runs).
Inside a block the first and the last address are never given to pods (network and broadcast;
the first is the node's VXLAN endpoint in node mode).

This class only decides; `IpamStore` persists. The caller saves the state after every change and
before the address is used, so an address is never handed out twice, also across a crash.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kanal.errors import IpamExhaustedError

IPv4 = ipaddress.IPv4Address
Block = ipaddress.IPv4Network


@dataclass
class IpamState:
    """What is allocated: block per owner, address per pod (JSON-friendly)."""

    blocks: dict[str, Block] = field(default_factory=dict)
    addresses: dict[str, IPv4] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "blocks": {k: str(v) for k, v in sorted(self.blocks.items())},
            "addresses": {k: str(v) for k, v in sorted(self.addresses.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IpamState:
        return cls(
            blocks={k: Block(v) for k, v in data.get("blocks", {}).items()},
            addresses={k: IPv4(v) for k, v in data.get("addresses", {}).items()},
        )


class Ipam:
    def __init__(self, cluster: Block, block_prefix: int, state: IpamState | None = None) -> None:
        if not cluster.prefixlen < block_prefix <= 30:
            raise ValueError(f"block /{block_prefix} does not fit cluster {cluster}")
        self.cluster = cluster
        self.block_prefix = block_prefix
        self.state = state or IpamState()
        self._taken = set(self.state.addresses.values())

    def block(self, owner: str) -> Block:
        """The owner's block, allocating the lowest free one on first use."""
        found = self.state.blocks.get(owner)
        if found is not None:
            return found
        used = set(self.state.blocks.values())
        for candidate in self.cluster.subnets(new_prefix=self.block_prefix):
            if candidate not in used:
                self.state.blocks[owner] = candidate
                return candidate
        raise IpamExhaustedError(
            f"cluster CIDR {self.cluster} has no free /{self.block_prefix} block for `{owner}`: "
            "use a larger clusterCIDR or a longer blockPrefix in the Lab"
        )

    def assign(self, pod: str, owner: str) -> IPv4:
        """The pod's address (the same one again if it has one), from the owner's block."""
        held = self.state.addresses.get(pod)
        if held is not None:
            return held
        block = self.block(owner)
        for ip in _usable(block):
            if ip not in self._taken:
                self.state.addresses[pod] = ip
                self._taken.add(ip)
                return ip
        raise IpamExhaustedError(
            f"block {block} of `{owner}` is full ({block.num_addresses - 2} pods): cannot place "
            f"`{pod}`; use a shorter blockPrefix in the Lab"
        )

    def release(self, pod: str) -> None:
        ip = self.state.addresses.pop(pod, None)
        if ip is not None:
            self._taken.discard(ip)

    def release_block(self, owner: str) -> None:
        """Give the owner's block back (its pods must be released first)."""
        block = self.state.blocks.get(owner)
        if block is not None and not any(ip in block for ip in self._taken):
            del self.state.blocks[owner]


def _usable(block: Block) -> Iterator[IPv4]:
    first, last = int(block.network_address) + 1, int(block.broadcast_address) - 1
    for value in range(first, last + 1):
        yield IPv4(value)


def gateway_of(block: Block) -> IPv4:
    """The block's network address, which a node uses as its VXLAN endpoint (Flannel style)."""
    return block.network_address
