"""Sliding windows over record time, with bounded memory: what an alert rule counts. Pure.

`SlidingSum` adds amounts (flows, bytes) over the last `horizon` seconds in `STEPS` buckets, so
it holds at most `STEPS` numbers however many flows arrive: a flow counts for between
`horizon - horizon/STEPS` and `horizon` seconds after its time (a 60 s period is counted in
3 s steps). `DistinctWindow` keeps the distinct values seen in the last `horizon` seconds, at
most `limit` of them (the oldest give way): a threshold of N needs N + 1 to be crossed.

Time only moves forward here: callers pass the latest record time they saw (`now`), never the
wall clock. Neither knows what it counts; `kanal.flows.alerts` does.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Hashable

STEPS = 20


class SlidingSum:
    """The sum of amounts added within the last `horizon` seconds, in `STEPS` buckets."""

    __slots__ = ("_buckets", "_step")

    def __init__(self, horizon: float) -> None:
        self._step = horizon / STEPS
        self._buckets: deque[list[float]] = deque()
        """[bucket index, total], oldest first."""

    def add(self, now: float, amount: float) -> None:
        index = math.floor(now / self._step)
        if self._buckets and self._buckets[-1][0] == index:
            self._buckets[-1][1] += amount
        else:
            self._buckets.append([index, amount])
        self._expire(index)

    def total(self, now: float) -> float:
        self._expire(math.floor(now / self._step))
        return sum(amount for _, amount in self._buckets)

    def _expire(self, index: int) -> None:
        while self._buckets and self._buckets[0][0] <= index - STEPS:
            self._buckets.popleft()


class DistinctWindow:
    """Distinct values seen within the last `horizon` seconds, at most `limit` kept."""

    __slots__ = ("_horizon", "_limit", "_seen")

    def __init__(self, horizon: float, limit: int) -> None:
        self._horizon = horizon
        self._limit = limit
        self._seen: OrderedDict[Hashable, float] = OrderedDict()
        """value -> last seen, least recently seen first."""

    def add(self, now: float, value: Hashable) -> None:
        self._seen.pop(value, None)
        self._seen[value] = now
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        self._expire(now)

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            value, seen = next(iter(self._seen.items()))
            if seen > now - self._horizon:
                break
            del self._seen[value]


__all__ = ["STEPS", "DistinctWindow", "SlidingSum"]
