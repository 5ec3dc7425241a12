"""AlertEvaluator: flow records in, `Alert`s out, per AlertRule (`kanal.model.alertrule`). Pure:
no clock (time is the records'), no I/O; the collector's `AlertActions` carries alerts out.

```
FlowRecord ──scope──► key (source, destination or scope) ──► window of the key ──► value
  (on_records: flows and distinct values; on_completions: bytes of ended connections)
value > threshold ──throttle (rule, key)──► Alert(rule, key, value, threshold, time, summary)
```

What each type measures, at the time of the record that arrives:
- `Breach`: the metric summed over the sliding `period`;
- `RollingAverage`: the metric summed over the sliding `window`, divided by the number of
  periods in it (window / period): the average per period. The window counts from the
  evaluator's start as if it had been running, so a fresh collector under-reports, never
  over-reports;
- `UniqueCount`: distinct destination ports (with their protocol) or destination addresses
  within `period`.

Counting: `DeniedFlows`, `AllowedFlows` and `Bytes` count a connection (its five-tuple) once
while it keeps showing up less than `SAME_CONNECTION_S` apart: a connection between two pods of
one node is recorded once per direction, and a denied one once per retransmitted SYN. Each
node's collector evaluates what its node recorded: a source's egress is judged at its own node,
so `groupBy: Source` sees everything a pod sends (as its egress verdict); ingress denials are
seen at the destination's node.

Time: records may arrive slightly out of order (conntrack-only records wait for the grace), so
the evaluator's `now` is the latest record time seen, and a record counts at `now`.

Memory is bounded: per rule at most `max_keys` keys (the least recently active give way,
counted in `evicted`), keys and throttles idle beyond their horizon are dropped, windows are
bucketed (`kanal.flows.windows`), distinct values kept up to threshold + 1.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kanal.flows.alertscope import (
    AlertKey,
    NamespaceLabels,
    ScopeMatch,
    describe_scope,
    key_of,
    scope_match,
)
from kanal.flows.records import Completion, FlowRecord, Verdict, iso_time
from kanal.flows.windows import DistinctWindow, SlidingSum
from kanal.model.alertrule import (
    AlertMetric,
    AlertRule,
    AlertType,
    GroupBy,
    duration_text,
)
from kanal.model.objects import Namespace

MAX_KEYS = 10_000
SAME_CONNECTION_S = 5.0
MAX_CONNECTIONS = 100_000
SWEEP_S = 10.0

Window = SlidingSum | DistinctWindow


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: `rule` crossed its threshold for `key` at `time`. `actions` says what was
    done about it (filled in by the collector's actions); `id` once stored."""

    rule: str
    metric: AlertMetric
    type: AlertType
    key: AlertKey
    value: float
    threshold: float
    period_s: float
    window_s: float | None
    time: float
    node: str
    scope: str
    summary: str
    actions: tuple[str, ...] = ()
    id: int | None = None

    def with_actions(self, actions: Sequence[str]) -> Alert:
        return replace(self, actions=tuple(actions))

    def to_json(self) -> dict[str, Any]:
        """The webhook body and `kanal alerts -o json` line."""
        key = self.key
        pod = None if key.pod is None else {"namespace": key.namespace, "name": key.pod}
        return {
            "time": iso_time(self.time), "node": self.node, "rule": self.rule,
            "metric": self.metric.value, "type": self.type.value, "key": key.text,
            "pod": pod, "ip": key.ip, "value": self.value, "threshold": self.threshold,
            "period_s": self.period_s, "window_s": self.window_s, "scope": self.scope,
            "summary": self.summary, "actions": list(self.actions),
        }


@dataclass(slots=True)
class _RuleState:
    rule: AlertRule
    match: ScopeMatch
    scope_key: AlertKey
    bit: int
    """The rule's bit in the connection memory's masks."""
    windows: OrderedDict[str, Window] = field(default_factory=OrderedDict)
    """key text -> its window, least recently active first."""
    fired: dict[str, float] = field(default_factory=dict)
    """key text -> when it last fired (the throttle)."""


class AlertEvaluator:
    """The alert rules of one collector. `update` on every manifest reload keeps the windows of
    rules that did not change. `throttled` and `evicted` count, per rule, alerts held back by
    the throttle and keys forgotten for lack of room."""

    def __init__(
        self, rules: Sequence[AlertRule] = (), *, node: str = "",
        namespaces: NamespaceLabels | None = None, max_keys: int = MAX_KEYS,
    ) -> None:
        self.node = node
        self.max_keys = max_keys
        self.now = -math.inf
        self.throttled: Counter[str] = Counter()
        self.evicted: Counter[str] = Counter()
        self._states: dict[str, _RuleState] = {}
        self._seen: OrderedDict[int, tuple[float, int]] = OrderedDict()
        """hash of a connection -> (last seen, bits of the rules that counted it): one entry
        per connection for all rules, least recently seen first."""
        self._next_sweep = -math.inf
        self.update(rules, namespaces=namespaces or {})

    @property
    def rules(self) -> list[AlertRule]:
        return [state.rule for state in self._states.values()]

    def tracked(self, rule: str) -> int:
        """How many keys the rule holds a window for."""
        state = self._states.get(rule)
        return 0 if state is None else len(state.windows)

    def update(self, rules: Sequence[AlertRule], *, namespaces: NamespaceLabels) -> None:
        """Use `rules` from now on; a rule unchanged keeps its windows and throttles."""
        states: dict[str, _RuleState] = {}
        for rule in rules:
            match = scope_match(rule.scope, namespaces)
            old = self._states.get(rule.name)
            if old is not None and old.rule == rule:
                old.match = match
                states[rule.name] = old
            else:
                scope = describe_scope(rule.scope)
                states[rule.name] = _RuleState(rule, match, AlertKey(scope), bit=0)
        self._states = states
        self._assign_bits({state.bit for state in states.values() if state.bit})

    def _assign_bits(self, taken: set[int]) -> None:
        """Give each new rule a bit no kept rule uses (a new rule may reuse a deleted one's:
        its connections could then count once less, for `SAME_CONNECTION_S`)."""
        free = (1 << n for n in range(len(self._states) + len(taken) + 1))
        available = (bit for bit in free if bit not in taken)
        for state in self._states.values():
            if not state.bit:
                state.bit = next(available)

    # -- input -----------------------------------------------------------------------------------

    def on_records(self, records: Iterable[FlowRecord]) -> list[Alert]:
        """Flows, distinct destinations: every rule but `Bytes` ones."""
        alerts: list[Alert] = []
        states = list(self._states.values())
        for record in records:
            self._advance(record.time)
            connection = 0
            verdict = record.verdict
            for state in states:
                amount = _amount(state.rule, record, verdict)
                if amount is None or not state.match(record):
                    continue
                if not state.rule.metric.distinct:
                    connection = connection or _connection(record)
                    if self._repeated(connection, state.bit):
                        continue
                self._count(state, record, amount, alerts)
        return alerts

    def on_completions(self, finished: Iterable[tuple[FlowRecord, Completion]]) -> list[Alert]:
        """Bytes of ended connections: `Bytes` rules only."""
        alerts: list[Alert] = []
        for record, done in finished:
            self._advance(done.end)
            for state in self._states.values():
                if state.rule.metric is AlertMetric.BYTES and state.match(record) \
                        and not self._repeated(_connection(record), state.bit):
                    self._count(state, record, done.bytes, alerts)
        return alerts

    def _advance(self, time: float) -> None:
        self.now = max(self.now, time)
        if self.now >= self._next_sweep:
            self._next_sweep = self.now + SWEEP_S
            for state in self._states.values():
                self._sweep(state)
            while self._seen:
                connection, (seen, _) = next(iter(self._seen.items()))
                if self.now - seen < SAME_CONNECTION_S:
                    break
                del self._seen[connection]

    # -- counting --------------------------------------------------------------------------------

    def _count(
        self, state: _RuleState, record: FlowRecord, amount: object, alerts: list[Alert]
    ) -> None:
        rule, now = state.rule, self.now
        peer = key_of(record, rule.group_by)
        text = state.scope_key.text if peer is None else peer.describe()
        window = self._window(state, text)
        if isinstance(window, DistinctWindow):
            window.add(now, amount)
            value = float(window.count(now))
        else:
            assert isinstance(amount, int | float)
            window.add(now, amount)
            value = window.total(now)
            if rule.type is AlertType.ROLLING_AVERAGE:
                value /= rule.horizon_s / rule.period_s
        if value <= rule.threshold:
            return
        last = state.fired.get(text)
        if last is not None and now - last < rule.throttle_s:
            self.throttled[rule.name] += 1
            return
        state.fired[text] = now
        key = state.scope_key if peer is None else AlertKey.of(peer)
        alerts.append(self._alert(rule, key, value))

    def _repeated(self, connection: int, bit: int) -> bool:
        """Whether the rule of `bit` counted this connection already (see the module doc);
        remembers that it has now."""
        last = self._seen.pop(connection, None)
        counted = 0 if last is None or self.now - last[0] >= SAME_CONNECTION_S else last[1]
        self._seen[connection] = (self.now, counted | bit)
        if len(self._seen) > MAX_CONNECTIONS:
            self._seen.popitem(last=False)
        return bool(counted & bit)

    def _window(self, state: _RuleState, key: str) -> Window:
        window = state.windows.pop(key, None)
        if window is None:
            rule = state.rule
            window = (DistinctWindow(rule.period_s, int(rule.threshold) + 1)
                      if rule.metric.distinct else SlidingSum(rule.horizon_s))
            if len(state.windows) >= self.max_keys:
                state.windows.popitem(last=False)
                self.evicted[rule.name] += 1
        state.windows[key] = window
        return window

    def _sweep(self, state: _RuleState) -> None:
        """Forget what can no longer matter: windows idle beyond the horizon (they are empty)
        and throttles that expired."""
        now, rule = self.now, state.rule
        for key in [k for k, w in state.windows.items() if _empty(w, now)]:
            del state.windows[key]
        state.fired = {k: t for k, t in state.fired.items() if now - t < rule.throttle_s}

    def _alert(self, rule: AlertRule, key: AlertKey, value: float) -> Alert:
        scope = describe_scope(rule.scope)
        return Alert(rule.name, rule.metric, rule.type, key, value, rule.threshold,
                     rule.period_s, rule.window_s, self.now, self.node, scope,
                     summary(rule, key, value))


def _connection(record: FlowRecord) -> int:
    """A connection's identity: its five-tuple as the first packet carried it, hashed (0 is
    reserved for "not computed yet")."""
    src, dst = record.src, record.dst
    return hash((record.protocol, src.ip, src.port, dst.ip, dst.port)) or 1


def _amount(rule: AlertRule, record: FlowRecord, verdict: Verdict) -> object | None:
    """What `record` (whose verdict is `verdict`) adds to the rule's window (1 flow, a port,
    an address), or None."""
    metric = rule.metric
    if metric is AlertMetric.DENIED_FLOWS:
        return 1 if verdict is Verdict.DENIED else None
    if metric is AlertMetric.ALLOWED_FLOWS:
        return 1 if verdict is Verdict.ALLOWED else None
    if metric is AlertMetric.BYTES:
        return None
    if rule.verdict is not None and verdict.value != rule.verdict.value.lower():
        return None
    if metric is AlertMetric.DESTINATION_ADDRESSES:
        return record.dst.ip
    return None if record.dst.port is None else (record.protocol, record.dst.port)


def _empty(window: Window, now: float) -> bool:
    if isinstance(window, DistinctWindow):
        return window.count(now) == 0
    return window.total(now) == 0


# -- wording ---------------------------------------------------------------------------------

_WHAT = {
    AlertMetric.DENIED_FLOWS: "{n} denied flows",
    AlertMetric.ALLOWED_FLOWS: "{n} allowed flows",
    AlertMetric.BYTES: "{n} bytes in ended connections",
    AlertMetric.DESTINATION_PORTS: "{verdict}flows to {n} distinct destination ports",
    AlertMetric.DESTINATION_ADDRESSES: "{verdict}flows to {n} distinct destination addresses",
}


def summary(rule: AlertRule, key: AlertKey, value: float) -> str:
    """One sentence: `y/scanner sent denied flows to 11 distinct destination ports within 1m
    (scope: namespace x): more than 10`."""
    verdict = "" if rule.verdict is None else f"{rule.verdict.value.lower()} "
    what = _WHAT[rule.metric].format(n=number_text(value), verdict=verdict)
    if rule.type is AlertType.ROLLING_AVERAGE:
        span = f"per {duration_text(rule.period_s)} on average over " \
               f"{duration_text(rule.horizon_s)}"
    else:
        span = f"within {duration_text(rule.period_s)}"
    if rule.group_by is GroupBy.SCOPE:
        subject = f"{key.text} saw"
    else:
        subject = f"{key.text} {'sent' if rule.group_by is GroupBy.SOURCE else 'received'}"
    scope = "" if rule.scope is None or rule.group_by is GroupBy.SCOPE else \
        f" (scope: {describe_scope(rule.scope)})"
    return f"{subject} {what} {span}{scope}: more than {number_text(rule.threshold)}"


def number_text(value: float) -> str:
    """12.0 -> `12`, 12.3456 -> `12.35`."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def namespace_labels(namespaces: Iterable[Namespace]) -> dict[str, Mapping[str, str]]:
    """`Manifests.namespaces` as `scope_match` wants them."""
    return {ns.name: ns.labels for ns in namespaces}


__all__ = [
    "Alert",
    "AlertEvaluator",
    "AlertKey",
    "namespace_labels",
    "number_text",
    "summary",
]
