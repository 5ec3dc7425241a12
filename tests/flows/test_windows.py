"""Sliding windows: what a 60 s window still holds, to the step, and bounded memory."""

from __future__ import annotations

import pytest

from kanal.flows.windows import DistinctWindow, SlidingSum


@pytest.mark.parametrize(("added", "later", "total"), [
    (0.0, 59.9, 1.0), (0.0, 60.0, 0.0), (2.9, 59.9, 1.0), (2.9, 60.0, 0.0)],
    ids=["kept for the period", "gone after the period",
         "late in a step: kept to the step's end", "late in a step: a step short of the period"])
def test_a_sum_holds_an_amount_between_period_minus_a_step_and_the_period(
    added: float, later: float, total: float
) -> None:
    window = SlidingSum(60.0)  # 20 steps of 3 s
    window.add(added, 1.0)
    assert window.total(later) == total


def test_a_sum_keeps_at_most_one_number_per_step() -> None:
    window = SlidingSum(60.0)
    for i in range(10_000):  # 100 s, one every 10 ms
        window.add(i * 0.01, 2.0)
    assert len(window._buckets) == 20
    assert window.total(99.99) == pytest.approx(2.0 * 5_800)  # steps from 42 s on


def test_distinct_values_expire_and_are_bounded() -> None:
    window = DistinctWindow(10.0, limit=3)
    for i, value in enumerate(["a", "b", "a", "c", "d"]):
        window.add(float(i), value)
    assert window.count(4.0) == 3  # a, c, d: b gave way
    assert window.count(12.5) == 2  # a was last seen at 2.0
    assert window.count(14.0) == 0
