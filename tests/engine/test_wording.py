"""Every outcome a verdict can carry has a sentence, so no consumer meets an unworded step."""

from __future__ import annotations

import pytest

from kanal.engine.compiled import Tier
from kanal.engine.verdict import DirectionDecision, Outcome, Step, Verdict
from kanal.engine.wording import check_line, explain_lines
from kanal.model.objects import Direction, PolicyKey, Protocol


def _verdict(step: Step) -> Verdict:
    ok = DirectionDecision(Direction.EGRESS, "x/a", (Step(None, Outcome.NOT_ISOLATED),))
    return Verdict(
        "x/a", "x/b", 80, Protocol.TCP, ok, DirectionDecision(Direction.INGRESS, "x/b", (step,))
    )


def _step(outcome: Outcome) -> Step:
    if outcome in (Outcome.ALLOW, Outcome.DENY, Outcome.PASS):
        return Step(Tier.ADMIN, outcome, PolicyKey("p"), 0, "r", "namespaces {}", "80/TCP")
    if outcome is Outcome.DEFAULT_DENY:
        return Step(Tier.NETWORK, outcome, isolating=(PolicyKey("x/deny"),))
    return Step(None, outcome)


@pytest.mark.parametrize("outcome", list(Outcome), ids=lambda o: f"{o.value} has a sentence")
def test_every_outcome_is_worded(outcome: Outcome) -> None:
    lines = explain_lines(_verdict(_step(outcome)))
    assert len(lines) == 5 and all(lines)
    assert check_line(_verdict(_step(outcome)))


def test_self_and_own_node_say_why_they_are_allowed() -> None:
    assert explain_lines(_verdict(_step(Outcome.SELF)))[-1] == (
        "  a pod's traffic to itself is always allowed (a pod cannot block itself)"
    )
    assert explain_lines(_verdict(_step(Outcome.OWN_NODE)))[-1] == (
        "  traffic between a pod and the node it runs on is always allowed"
    )
