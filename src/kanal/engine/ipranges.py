"""Address ranges for ipBlock and network peers: intervals and binary search, never per-address
loops.

An `ipBlock` (cidr minus excepts) becomes a sorted tuple of disjoint closed integer intervals per
address family. `RangeSet.contains` is a bisect; `SortedAddresses.mask` marks which of many
addresses fall in a range set by slicing a sorted order, so the matrix handles thousands of pods
per block in a few array operations.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kanal.model.objects import IPAddress, IPBlock, IPNetwork

Interval = tuple[int, int]


def _interval(net: IPNetwork) -> Interval:
    return int(net.network_address), int(net.broadcast_address)


def _subtract(intervals: list[Interval], cut: Interval) -> list[Interval]:
    out: list[Interval] = []
    for lo, hi in intervals:
        if cut[1] < lo or cut[0] > hi:
            out.append((lo, hi))
            continue
        if lo < cut[0]:
            out.append((lo, cut[0] - 1))
        if cut[1] < hi:
            out.append((cut[1] + 1, hi))
    return out


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@dataclass(frozen=True, slots=True)
class RangeSet:
    """Disjoint, sorted, closed intervals of addresses of one family (4 or 6)."""

    version: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def of(cls, version: int, intervals: Iterable[Interval]) -> RangeSet:
        merged = _merge(intervals)
        return cls(version, tuple(lo for lo, _ in merged), tuple(hi for _, hi in merged))

    def contains(self, ip: IPAddress) -> bool:
        if ip.version != self.version:
            return False
        value = int(ip)
        i = bisect.bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]

    def intervals(self) -> list[Interval]:
        return list(zip(self.starts, self.ends, strict=True))


def block_ranges(block: IPBlock) -> RangeSet:
    """cidr minus every except, as intervals."""
    intervals = [_interval(block.cidr)]
    for cut in block.excepts:
        intervals = _subtract(intervals, _interval(cut))
    return RangeSet.of(block.cidr.version, intervals)


def networks_ranges(networks: Sequence[IPNetwork]) -> tuple[RangeSet, ...]:
    """The union of CIDRs, one RangeSet per family present."""
    by_version: dict[int, list[Interval]] = {}
    for net in networks:
        by_version.setdefault(net.version, []).append(_interval(net))
    return tuple(RangeSet.of(v, iv) for v, iv in sorted(by_version.items()))


class SortedAddresses:
    """Many addresses (None = no address), sorted once, for masking by RangeSets."""

    def __init__(self, addresses: Sequence[IPAddress | None]) -> None:
        self._n = len(addresses)
        self._keys: dict[int, list[int]] = {}
        self._order: dict[int, npt.NDArray[np.intp]] = {}
        for version in (4, 6):
            present = sorted(
                (int(a), i)
                for i, a in enumerate(addresses)
                if a is not None and a.version == version
            )
            self._keys[version] = [k for k, _ in present]
            self._order[version] = np.fromiter((i for _, i in present), dtype=np.intp)

    def mask(self, ranges: Iterable[RangeSet]) -> npt.NDArray[np.bool_]:
        out = np.zeros(self._n, dtype=np.bool_)
        for rs in ranges:
            keys, order = self._keys[rs.version], self._order[rs.version]
            for lo, hi in rs.intervals():
                a = bisect.bisect_left(keys, lo)
                b = bisect.bisect_right(keys, hi)
                out[order[a:b]] = True
        return out
