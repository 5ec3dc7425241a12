"""AlertDispatcher: the collector's alert stage. Records in (as `FlowPipeline` stores them),
alerts carried out: quarantine, a log line, a webhook, an entry for `kanal alerts`.

```
FlowPipeline ──on_records / on_completions──► AlertEvaluator ──► Alert
   (stored records, ended connections)          │
                                                ├─ quarantine: label the pod (Quarantiner, sync)
                                                ├─ log line: `kanal-flows NODE: alert RULE: ...`
                                                ├─ webhook: WebhookSender.submit (never blocks)
                                                └─ AlertStore.insert (alerts table, flow DB)
manifests reload ──load──► rules (AlertRule objects) and namespace labels
```

An alert is never lost silently: it is logged before it is stored, and alerts that could not
be stored (flow database locked) are kept and stored with the next batch. `counters()` gives
the collector what its metrics gain (`kanal_alerts_*`, see `kanal.flows.stats`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from kanal.flows.alerts import Alert, AlertEvaluator, namespace_labels
from kanal.flows.alertstore import AlertStore
from kanal.flows.quarantine import Quarantiner
from kanal.flows.records import Completion, FlowRecord
from kanal.flows.store import CounterKey, labels_key
from kanal.flows.tables import FlowStoreError
from kanal.flows.webhook import WebhookSender
from kanal.model.alertrule import AlertRule, QuarantineAction, WebhookAction
from kanal.model.objects import Manifests


class AlertDispatcher:
    """One node's alerts: `load` on every manifest (re)load, fed by the pipeline."""

    def __init__(
        self, *, node: str, db: Path, datastore: Path | None, say: Callable[[str], None],
        webhook_queue: int = 1000, webhook_backoff_s: float = 0.5,
    ) -> None:
        self.node = node
        self.evaluator = AlertEvaluator(node=node)
        self.quarantiner = Quarantiner(datastore)
        self._db = db
        self._say = say
        self._webhook_queue = webhook_queue
        self._webhook_backoff_s = webhook_backoff_s
        self._store: AlertStore | None = None
        self._webhooks: WebhookSender | None = None
        self._unstored: list[Alert] = []
        self._counts: Counter[tuple[str, str, str]] = Counter()
        """(counter, rule, outcome) since the last `counters()`."""

    def load(self, manifests: Manifests) -> None:
        before = [r.name for r in self.evaluator.rules]
        self.evaluator.update(manifests.alert_rules,
                              namespaces=namespace_labels(manifests.namespaces))
        after = [r.name for r in self.evaluator.rules]
        if after != before:
            self._say(f"alert rules: {', '.join(after) or 'none'}")

    # -- from the pipeline -----------------------------------------------------------------------

    def on_records(self, records: Sequence[FlowRecord]) -> None:
        if self.evaluator.rules:
            self._dispatch(self.evaluator.on_records(records))

    def on_completions(self, finished: Sequence[tuple[FlowRecord, Completion]]) -> None:
        if self.evaluator.rules:
            self._dispatch(self.evaluator.on_completions(finished))

    def _dispatch(self, alerts: list[Alert]) -> None:
        rules = {r.name: r for r in self.evaluator.rules}
        for alert in alerts:
            acted = alert.with_actions(self._act(rules[alert.rule], alert))
            self._counts["alerts_fired", alert.rule, ""] += 1
            self._say(f"alert `{alert.rule}`: {alert.summary}"
                      + "".join(f"; {outcome}" for outcome in acted.actions))
            for action in rules[alert.rule].actions:
                if isinstance(action, WebhookAction):
                    self._post(action, acted)
            self._unstored.append(acted)
        self.flush()

    def _act(self, rule: AlertRule, alert: Alert) -> list[str]:
        """Quarantine now (its outcome belongs in the alert); say where webhooks go."""
        outcomes = []
        for action in rule.actions:
            if isinstance(action, QuarantineAction):
                done, outcome = self.quarantiner.quarantine(alert.key, action)
                self._counts["alert_quarantines", rule.name, "labelled" if done else "failed"] += 1
                outcomes.append(outcome)
            else:
                outcomes.append(f"webhook POST {action.url}")
        return outcomes

    def _post(self, action: WebhookAction, alert: Alert) -> None:
        if self._webhooks is None:
            self._webhooks = WebhookSender(report=self._say, queue_size=self._webhook_queue,
                                           backoff_s=self._webhook_backoff_s)
        if not self._webhooks.submit(action, alert.rule, alert.to_json()):
            self._say(f"warning: alert `{alert.rule}`: webhook queue full, not sent to "
                      f"{action.url}")

    def flush(self) -> None:
        """Store the alerts not stored yet; a database that fails keeps them for next time."""
        if not self._unstored:
            return
        try:
            if self._store is None:
                self._store = AlertStore(self._db)
            self._store.insert(self._unstored)
        except FlowStoreError as exc:
            self._say(f"warning: {len(self._unstored)} alert(s) not stored yet: {exc}")
            return
        self._unstored = []

    # -- housekeeping ----------------------------------------------------------------------------

    def prune(self, *, now: float, max_age: float | None, max_rows: int | None) -> None:
        self.flush()
        if self._store is not None:
            self._store.prune(now=now, max_age=max_age, max_rows=max_rows)

    def counters(self) -> Counter[CounterKey]:
        """What the collector's cumulative counters gain since the last call."""
        counts, self._counts = self._counts, Counter()
        for rule, held in self.evaluator.throttled.items():
            counts["alerts_throttled", rule, ""] += held
        for rule, evicted in self.evaluator.evicted.items():
            counts["alert_keys_evicted", rule, ""] += evicted
        self.evaluator.throttled.clear()
        self.evaluator.evicted.clear()
        if self._webhooks is not None:
            for (outcome, rule), value in self._webhooks.counts().items():
                name = "alert_webhook_retries" if outcome == "retried" else "alert_webhooks"
                counts[name, rule, "" if outcome == "retried" else outcome] += value
        found: Counter[CounterKey] = Counter()
        for (name, rule, outcome), value in counts.items():
            labels = {"node": self.node, "rule": rule} | ({"outcome": outcome} if outcome else {})
            found[name, labels_key(labels)] += value
        return found

    def wait_webhooks(self, timeout: float) -> bool:
        """Whether every webhook POST submitted so far finished within `timeout` (tests)."""
        return self._webhooks is None or self._webhooks.wait_idle(timeout)

    def close(self) -> None:
        if self._webhooks is not None:
            self._webhooks.close()
        self.flush()
        self.quarantiner.close()
        if self._store is not None:
            self._store.close()


__all__ = ["AlertDispatcher"]
