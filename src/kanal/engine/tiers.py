"""The tier order on vectors: one chain judged against many peers at once.

Shared by the truth table (`kanal.engine.matrix`, peers = pods) and the verdict rows
(`kanal.engine.rows`, peers = pod groups); both are property-tested against the rule walk of
`kanal.engine.evaluate`, which stays the one definition of the semantics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from kanal.engine.compiled import Action, CompiledRule
from kanal.engine.evaluate import Chain
from kanal.model.objects import Direction

Mask = npt.NDArray[np.bool_]


def evaluate_tiers(
    chain: Chain, direction: Direction, rule_mask: Callable[[CompiledRule], Mask], n: int
) -> Mask:
    """The tier order of `kanal.engine.evaluate`, on vectors: element i says whether peer i is
    allowed for this chain. After the admin tier, a peer that an admin rule passed and one that
    no admin rule matched go on alike; Pass only stops later admin rules from deciding."""
    allowed = np.zeros(n, dtype=np.bool_)
    matched = np.zeros(n, dtype=np.bool_)
    settled = np.zeros(n, dtype=np.bool_)
    for policy in chain.admin:
        for rule in policy.rules(direction):
            hit = rule_mask(rule) & ~matched
            matched |= hit
            if rule.action is Action.ALLOW:
                allowed |= hit
            if rule.action is not Action.PASS:
                settled |= hit
    open_ = ~settled
    if chain.network:
        admitted = np.zeros(n, dtype=np.bool_)
        for policy in chain.network:
            for rule in policy.rules(direction):
                admitted |= rule_mask(rule)
        return allowed | (open_ & admitted)
    if chain.baseline is not None:
        for rule in chain.baseline.rules(direction):
            hit = rule_mask(rule) & ~settled
            if rule.action is Action.ALLOW:
                allowed |= hit
            settled |= hit
    return allowed | ~settled
