"""The policy engine: pure, incremental, exact. See `kanal.engine.engine` for the graph."""

from kanal.engine.compiled import Tier
from kanal.engine.engine import PolicyEngine
from kanal.engine.evaluate import Connection
from kanal.engine.verdict import DirectionDecision, Endpoint, Outcome, Step, Verdict

__all__ = [
    "Connection",
    "DirectionDecision",
    "Endpoint",
    "Outcome",
    "PolicyEngine",
    "Step",
    "Tier",
    "Verdict",
]
