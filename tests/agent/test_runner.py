"""BoundedFrequencyRunner with an injected clock: coalescing, minimum interval, backoff, and the
periodic resync, without sleeping."""

from __future__ import annotations

import itertools

import pytest

from kanal.agent.runner import BoundedFrequencyRunner, RunnerConfig, SyncKind


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sync:
    """Records calls; raises the queued errors first."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, SyncKind]] = []
        self.errors: list[Exception] = []
        self.clock: Clock | None = None

    def __call__(self, kind: SyncKind) -> None:
        assert self.clock is not None
        self.calls.append((self.clock.now, kind))
        if self.errors:
            raise self.errors.pop(0)


CONFIG = RunnerConfig(min_interval=1.0, max_interval=60.0, backoff_initial=0.5, backoff_max=4.0)


def make(config: RunnerConfig = CONFIG) -> tuple[BoundedFrequencyRunner, Sync, Clock]:
    clock, sync = Clock(), Sync()
    sync.clock = clock
    runner = BoundedFrequencyRunner(sync, config, retryable=(RuntimeError,), clock=clock)
    return runner, sync, clock


def drive(runner: BoundedFrequencyRunner, clock: Clock, until: float) -> None:
    """Advance time to `until`, running every sync when it falls due."""
    while True:
        wait = runner.due_in()
        if clock.now + wait > until:
            clock.now = until
            return
        clock.now += wait
        runner.run_if_due()


def test_the_first_sync_is_a_resync_and_runs_at_once() -> None:
    runner, sync, _clock = make()
    assert runner.due_in() == 0
    outcome = runner.run_if_due()
    assert outcome is not None and outcome.ok and outcome.kind is SyncKind.RESYNC
    assert sync.calls == [(100.0, SyncKind.RESYNC)]


def test_nothing_runs_while_nothing_is_requested_until_the_periodic_resync() -> None:
    runner, sync, clock = make()
    runner.run_if_due()
    assert runner.due_in() == 60.0
    assert runner.run_if_due() is None
    drive(runner, clock, until=100.0 + 59.0)
    assert len(sync.calls) == 1
    drive(runner, clock, until=100.0 + 60.0)
    assert sync.calls[-1] == (160.0, SyncKind.RESYNC)


def test_a_burst_of_requests_is_one_sync_per_min_interval() -> None:
    runner, sync, clock = make()
    runner.run_if_due()
    clock.now += 5
    runner.request()  # the first request after a quiet period runs at once
    assert runner.due_in() == 0
    runner.run_if_due()
    for step in range(10):  # ten requests within the next 0.9 s
        clock.now += 0.09
        runner.request()
        assert runner.run_if_due() is None, f"request {step} ran before min_interval"
    drive(runner, clock, until=clock.now + 5)
    assert [t - 100 for t, _ in sync.calls] == [0.0, 5.0, pytest.approx(6.0)]
    assert [k for _, k in sync.calls] == [SyncKind.RESYNC, SyncKind.CHANGES, SyncKind.CHANGES]


def test_failures_are_retried_with_doubling_backoff_up_to_the_maximum() -> None:
    runner, sync, clock = make()
    runner.run_if_due()
    sync.errors = [RuntimeError("kernel said no")] * 5
    clock.now += 10
    runner.request()
    drive(runner, clock, until=clock.now + 30)
    times = [t for t, _ in sync.calls[1:]]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 1.0, 2.0, 4.0, 4.0]  # backoff 0.5, 1 (both below min_interval), 2, 4, 4
    assert runner.failures == 0  # the sixth attempt succeeded
    assert len(sync.calls) == 7


def test_a_failed_resync_is_retried_as_a_resync() -> None:
    runner, sync, clock = make()
    sync.errors = [RuntimeError("no")]
    outcome = runner.run_if_due()
    assert outcome is not None and not outcome.ok and outcome.retry_in == 0.5
    drive(runner, clock, until=clock.now + 2)
    assert [k for _, k in sync.calls] == [SyncKind.RESYNC, SyncKind.RESYNC]


def test_a_requested_resync_replaces_the_next_changes_sync() -> None:
    runner, sync, clock = make()
    runner.run_if_due()
    clock.now += 3
    runner.request()
    runner.request_resync()
    runner.run_if_due()
    assert sync.calls[-1] == (103.0, SyncKind.RESYNC)
    assert runner.due_in() == 60.0  # the periodic clock restarted


def test_errors_that_are_not_retryable_propagate() -> None:
    runner, sync, _ = make()
    sync.errors = [KeyError("a bug")]
    with pytest.raises(KeyError):
        runner.run_if_due()


@pytest.mark.parametrize(
    "options",
    [
        {"min_interval": -1},
        {"backoff_initial": 0},
        {"min_interval": 5, "max_interval": 5},
        {"backoff_initial": 2, "backoff_max": 1},
    ],
    ids=["negative min interval", "zero backoff", "resync not above min", "max below initial"],
)
def test_inconsistent_configurations_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RunnerConfig(**options)
