"""BoundedFrequencyRunner: when the agent syncs (kube-proxy's `BoundedFrequencyRunner`,
pkg/util/async, with Felix's retry and refresh ideas).

```
request() ─────► pending ─┐
                          ├─► due at max(last run + min_interval, retry at) ──► sync(CHANGES)
request_resync() ─► resync┘                                                    or sync(RESYNC)
sync raised a retryable error ──► retry at now + backoff (doubling up to backoff_max); what
                                  was pending stays pending
no full sync for max_interval ──► a RESYNC is due (repairs drift: the kernel is rewritten whole)
```

So a burst of requests is one sync (the first request after a quiet period runs at once, the
rest wait for `min_interval` and are coalesced), a failing sync is retried ever more slowly
instead of in a hot loop, and a periodic resync bounds how long a rule deleted by hand can
stay missing.

The runner owns no thread and never sleeps: its owner asks `due_in()` how long it may wait (the
agent spends that time waiting for store events) and then calls `run_if_due()`. Time is an
injected monotonic clock, so the tests drive it without sleeping. It does not know what a sync
does; which errors are worth a retry is the owner's choice (`retryable`): anything else
propagates, because it is a bug.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
"""A monotonic clock in seconds (`time.monotonic` in production)."""


class SyncKind(enum.StrEnum):
    CHANGES = "changes"
    """Apply what changed since the last sync (element deltas where possible)."""
    RESYNC = "resync"
    """Recompute everything and rewrite the kernel's table whole, atomically."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """`min_interval`: least time between two syncs; `max_interval`: most time between two
    resyncs; `backoff_initial`/`backoff_max`: the first and the longest retry delay."""

    min_interval: float = 0.05
    max_interval: float = 300.0
    backoff_initial: float = 0.1
    backoff_max: float = 10.0

    def __post_init__(self) -> None:
        if self.min_interval < 0 or self.backoff_initial <= 0:
            raise ValueError("min_interval must be >= 0 and backoff_initial > 0")
        if self.max_interval <= self.min_interval or self.backoff_max < self.backoff_initial:
            raise ValueError("max_interval must exceed min_interval, backoff_max backoff_initial")


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What `run_if_due` did: the kind of sync, and the error if it failed (retry scheduled
    `retry_in` seconds later)."""

    kind: SyncKind
    error: BaseException | None = None
    retry_in: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class BoundedFrequencyRunner:
    """Calls `sync(kind)` no more often than `min_interval`, at least every `max_interval`
    (as a resync), and retries failures (errors of the `retryable` types) with backoff."""

    def __init__(
        self,
        sync: Callable[[SyncKind], object],
        config: RunnerConfig | None = None,
        *,
        retryable: tuple[type[BaseException], ...] = (Exception,),
        clock: Clock = time.monotonic,
    ) -> None:
        self._sync = sync
        self.config = config or RunnerConfig()
        self._retryable = retryable
        self._clock = clock
        now = clock()
        self._pending = False
        self._resync = True  # the first sync is a full one
        self._last_run = now - self.config.min_interval  # the first request runs at once
        self._last_resync = now
        self._retry_at: float | None = None
        self._backoff = self.config.backoff_initial
        self.failures = 0
        """Consecutive failed syncs (0 after a success)."""

    # -- requests --------------------------------------------------------------------------------

    def request(self) -> None:
        """Something changed: sync soon (coalesced with every other request until then)."""
        self._pending = True

    def request_resync(self) -> None:
        """Rewrite everything at the next sync (after a failure that leaves the kernel unknown)."""
        self._resync = True

    # -- scheduling ------------------------------------------------------------------------------

    def due_in(self) -> float:
        """Seconds until the next sync is due (0: now); at most until the next periodic resync."""
        now = self._clock()
        resync_at = self._last_resync + self.config.max_interval
        if not (self._pending or self._resync):
            return max(0.0, resync_at - now)
        earliest = self._last_run + self.config.min_interval
        if self._retry_at is not None:
            earliest = max(earliest, self._retry_at)
        return max(0.0, earliest - now)

    def run_if_due(self) -> RunOutcome | None:
        """Run one sync if one is due; None if not."""
        if self.due_in() > 0:
            return None
        now = self._clock()
        periodic = now >= self._last_resync + self.config.max_interval
        kind = SyncKind.RESYNC if (self._resync or periodic) else SyncKind.CHANGES
        if not (self._pending or self._resync or periodic):
            return None
        self._last_run = now
        self._pending = False
        try:
            self._sync(kind)
        except self._retryable as exc:
            return self._failed(kind, exc)
        self._succeeded(kind)
        return RunOutcome(kind)

    def _failed(self, kind: SyncKind, exc: BaseException) -> RunOutcome:
        self._pending = True
        if kind is SyncKind.RESYNC:
            self._resync = True
        delay = self._backoff
        self._retry_at = self._clock() + delay
        self._backoff = min(self._backoff * 2, self.config.backoff_max)
        self.failures += 1
        return RunOutcome(kind, exc, delay)

    def _succeeded(self, kind: SyncKind) -> None:
        self._retry_at = None
        self._backoff = self.config.backoff_initial
        self.failures = 0
        if kind is SyncKind.RESYNC:
            self._resync = False
            self._last_resync = self._clock()


__all__ = ["BoundedFrequencyRunner", "Clock", "RunOutcome", "RunnerConfig", "SyncKind"]
