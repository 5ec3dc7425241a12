"""Hubble-style flow filters, as one value the store turns into SQL. Pure.

Every given filter must hold (AND). `--port` matches either end's port, as Hubble's does;
`--policy NS/NAME` (or `NAME` for a cluster-scoped admin policy) matches flows decided by one of
its rules or by a default deny it takes part in (it isolates the pod).
"""

from __future__ import annotations

from dataclasses import dataclass

from kanal.errors import KanalError
from kanal.flows.records import Decision, Verdict
from kanal.model.validate import duration


class FilterError(KanalError):
    """A filter the user gave cannot be understood."""


def parse_duration(text: str) -> float:
    """`90s`, `5m`, `1h30m`, `2d`, `250ms` -> seconds (the grammar AlertRule periods use)."""
    seconds = duration(text)
    if isinstance(seconds, str):
        raise FilterError(
            f"`{text}` is not a duration: a number and a unit (ms, s, m, h, d), like 5m or 1h30m"
        )
    return seconds


def split_pod(text: str) -> tuple[str, str]:
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise FilterError(f"`{text}` is not a pod: write NAMESPACE/NAME")
    return namespace, name


@dataclass(frozen=True, slots=True)
class FlowFilter:
    since: float | None = None
    """Epoch seconds: flows at or after."""
    from_pod: tuple[str, str] | None = None
    to_pod: tuple[str, str] | None = None
    from_namespace: str | None = None
    to_namespace: str | None = None
    verdict: Verdict | None = None
    policy: str | None = None
    port: int | None = None
    protocol: str | None = None
    node: str | None = None
    after_id: int = 0
    """Only rows after this id (what `--follow` has already shown)."""

    def matches_decision(self, decision: Decision) -> bool:
        """The decision-level filters (policy), applied to the small decisions table."""
        if self.policy is None:
            return True
        return decision.policy == self.policy or self.policy in decision.isolating

    def where(self) -> tuple[str, list[object]]:
        """The SQL condition on `flows` (columns unqualified) and its parameters; the caller
        adds the decision ids allowed by `matches_decision` and the node's string id."""
        clauses: list[str] = ["id > ?"]
        params: list[object] = [self.after_id]
        if self.since is not None:
            clauses.append("time >= ?")
            params.append(self.since)
        for prefix, pod in (("src", self.from_pod), ("dst", self.to_pod)):
            if pod is not None:
                clauses.append(f"{prefix}_ns = ? AND {prefix}_pod = ?")
                params.extend(pod)
        for prefix, namespace in (("src", self.from_namespace), ("dst", self.to_namespace)):
            if namespace is not None:
                clauses.append(f"{prefix}_ns = ?")
                params.append(namespace)
        if self.verdict is not None:
            clauses.append("allowed = ?")
            params.append(int(self.verdict is Verdict.ALLOWED))
        if self.port is not None:
            clauses.append("(src_port = ? OR dst_port = ?)")
            params.extend((self.port, self.port))
        if self.protocol is not None:
            clauses.append("protocol = ? COLLATE NOCASE")
            params.append(self.protocol)
        return " AND ".join(clauses), params


__all__ = ["FilterError", "FlowFilter", "parse_duration", "split_pod"]
