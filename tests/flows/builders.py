"""Flow records for store, stats and CLI tests: a default record and tweaks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kanal.engine import Outcome, Tier
from kanal.flows.records import Completion, Decision, FlowRecord, Peer, Source
from kanal.model.objects import Direction, PolicyKey

T0 = 1_700_000_000.0

ALLOW_WEB = Decision(Direction.INGRESS, Outcome.ALLOW, Tier.NETWORK, PolicyKey("x/allow-clients"),
                     0, "", log_id="k:aaaaaaaaaaaa")
DEFAULT_DENY_WEB = Decision(Direction.INGRESS, Outcome.DEFAULT_DENY, Tier.NETWORK,
                            isolating=(PolicyKey("x/allow-clients"), PolicyKey("x/default-deny")),
                            log_id="k:bbbbbbbbbbbb")
EGRESS_DENY_OTHER = Decision(Direction.EGRESS, Outcome.DEFAULT_DENY, Tier.NETWORK,
                             isolating=(PolicyKey("z/egress-only"),), log_id="k:cccccccccccc")
NOT_ISOLATED_EGRESS = Decision(Direction.EGRESS, Outcome.NOT_ISOLATED)
ANP_DENY = Decision(Direction.EGRESS, Outcome.DENY, Tier.ADMIN, PolicyKey("guard"), 1,
                    "no-db", log_id="k:dddddddddddd")

CLIENT_A = Peer("10.244.1.3", 40000, "y", "client-a", {"app": "client"})
CLIENT_B = Peer("10.244.2.2", 40001, "y", "client-b", {"app": "client"})
OTHER = Peer("10.244.2.3", 40002, "z", "other", {"app": "other"})
WEB = Peer("10.244.1.2", 80, "x", "web", {"app": "web"})


def record(*tweaks: Callable[[FlowRecord], FlowRecord], **fields: Any) -> FlowRecord:
    """client-a -> web:80/TCP admitted by x/allow-clients rule 0 at node-0, at T0."""
    base = FlowRecord(
        time=T0, node="node-0", protocol="TCP", src=CLIENT_A, dst=WEB, decision=ALLOW_WEB,
        summary="[NetworkPolicy x/allow-clients] rule #0 allows from y on http/TCP",
        source=Source.NFLOG, src_group="y", dst_group="x (x/allow-clients, x/default-deny)",
    )
    base = replace(base, **fields)
    for tweak in tweaks:
        base = tweak(base)
    return base


def denied(r: FlowRecord) -> FlowRecord:
    return replace(r, src=OTHER, decision=DEFAULT_DENY_WEB, src_group="z (z/egress-only)",
                   summary="x/web is isolated ...")


def to_port(port: int) -> Callable[[FlowRecord], FlowRecord]:
    return lambda r: replace(r, dst=replace(r.dst, port=port))


def at(seconds: float) -> Callable[[FlowRecord], FlowRecord]:
    return lambda r: replace(r, time=T0 + seconds)


def finished(nbytes: int, packets: int, duration: float = 1.0) -> Completion:
    return Completion(T0 + duration, duration, nbytes, packets)
