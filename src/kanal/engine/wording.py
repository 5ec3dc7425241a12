"""Verdicts in words: the sentences `kanal check` and `kanal explain` print, and that flow
attribution and the web UI show, so that every consumer of a verdict words it the same way.

Every `Outcome` has a sentence (tested); wording is all this module does. `step_sentence` words
one step without a whole `Verdict` (flow attribution words one step per new pod pair).
"""

from __future__ import annotations

from collections.abc import Sequence

from kanal.engine.verdict import DirectionDecision, Outcome, Step, Verdict
from kanal.model.objects import Direction

_VERBS = {Outcome.ALLOW: "allows", Outcome.DENY: "denies", Outcome.PASS: "passes"}
_EXEMPT = {
    Outcome.NOT_ISOLATED: "not isolated for {direction}: allowed",
    Outcome.NOT_A_POD: "{subject} is not a pod, so no policy applies on this side: allowed",
    Outcome.SELF: "a pod's traffic to itself is always allowed (a pod cannot block itself)",
    Outcome.OWN_NODE: "traffic between a pod and the node it runs on is always allowed",
}


def check_line(verdict: Verdict) -> str:
    """`allowed: x/a -> y/b 80/TCP`, or `denied: ... (DIRECTION: why; ...)`."""
    what = f"{verdict.source} -> {verdict.destination} {_probe_text(verdict)}"
    if verdict.allowed:
        return f"allowed: {what}"
    denied = [d for d in _directions(verdict) if not d.allowed]
    reasons = "; ".join(f"{d.direction.lower()}: {_denial(d, verdict)}" for d in denied)
    return f"denied: {what} ({reasons})"


def explain_lines(verdict: Verdict) -> list[str]:
    """A header with the verdict, then every step of each direction's chain, one per line."""
    outcome = "ALLOWED" if verdict.allowed else "DENIED"
    lines = [f"{verdict.source} -> {verdict.destination} on {_probe_text(verdict)}: {outcome}"]
    for decision in _directions(verdict):
        lines.append(f"{decision.direction.lower()} at {decision.subject}:")
        lines.extend(
            f"  {_step_sentence(step, decision, verdict=verdict)}" for step in decision.steps
        )
    return lines


def _directions(verdict: Verdict) -> tuple[DirectionDecision, DirectionDecision]:
    return verdict.egress, verdict.ingress


def _probe_text(verdict: Verdict) -> str:
    return f"{verdict.port}/{verdict.protocol}"


def _denial(decision: DirectionDecision, verdict: Verdict) -> str:
    step = decision.deciding
    if step.outcome is Outcome.DEFAULT_DENY:
        return (
            f"{decision.subject} is isolated by {_backticked(step.isolating)}; "
            f"{_no_rule_admits(decision, verdict)}"
        )
    return _rule_sentence(step, decision.direction)


def _step_sentence(step: Step, decision: DirectionDecision, *, verdict: Verdict) -> str:
    peer = verdict.destination if decision.direction is Direction.EGRESS else verdict.source
    return step_sentence(
        step, decision.direction, subject=decision.subject, peer=peer, probe=_probe_text(verdict)
    )


def step_sentence(
    step: Step, direction: Direction, *, subject: str, peer: str, probe: str
) -> str:
    """The line `kanal explain` prints (unindented) for `step` of `direction`, judged at
    `subject` for a connection with `peer` on `probe` (`80/TCP`)."""
    exempt = _EXEMPT.get(step.outcome)
    if exempt is not None:
        return exempt.format(direction=direction.lower(), subject=subject)
    if step.outcome is Outcome.DEFAULT_DENY:
        noun = "policy" if len(step.isolating) == 1 else "policies"
        return (
            f"{subject} is isolated for {direction.lower()} by {noun} "
            f"{_backticked(step.isolating)}; {_admits_none(peer, probe)}"
        )
    return _rule_sentence(step, direction)


def _rule_sentence(step: Step, direction: Direction) -> str:
    """`[NetworkPolicy ns/name] rule #0 allows from PEER on PORT` (`to PEER` for egress)."""
    tier = step.tier.short if step.tier is not None else "policy"
    toward = "to" if direction is Direction.EGRESS else "from"
    text = (
        f"[{tier} {step.policy}] rule {step.rule_label()} {_VERBS[step.outcome]} "
        f"{toward} {step.peer} on {step.port}"
    )
    return text + "; the next tiers decide" if step.outcome is Outcome.PASS else text


def _no_rule_admits(decision: DirectionDecision, verdict: Verdict) -> str:
    peer = verdict.destination if decision.direction is Direction.EGRESS else verdict.source
    return _admits_none(peer, _probe_text(verdict))


def _admits_none(peer: str, probe: str) -> str:
    return f"no rule admits {peer} on {probe}"


def _backticked(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)
