"""AlertStore: the alerts the collectors fired, in the flow database (`alerts` table beside
`flows`), written by every node's collector and read by `kanal alerts`.

```
alerts  id INTEGER PRIMARY KEY   arrival order (--follow reads rows by id)
        time REAL (index)        when the threshold was crossed (record time)
        rule, node TEXT
        body TEXT                the alert as JSON (`Alert.to_json`), what the webhook posts
```

The table is created when missing (`IF NOT EXISTS`), so a flow database written before alerts
existed gains it at the first open, without a new format. Retention (`prune`) drops the
oldest alerts by age and count, as `FlowStore.prune` does for flows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kanal.flows import tables
from kanal.flows.alerts import Alert
from kanal.flows.alertscope import AlertKey
from kanal.model.alertrule import AlertMetric, AlertType

DEFAULT_MAX_ALERTS = 100_000

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, time REAL NOT NULL, "
    "rule TEXT NOT NULL, node TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time)",
)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    since: float | None = None
    """Epoch seconds: alerts at or after."""
    rule: str | None = None
    after_id: int = 0

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = ["id > ?"]
        params: list[object] = [self.after_id]
        if self.since is not None:
            clauses.append("time >= ?")
            params.append(self.since)
        if self.rule is not None:
            clauses.append("rule = ?")
            params.append(self.rule)
        return " AND ".join(clauses), params


class AlertStore:
    """One connection to the flow database's alerts, for one thread."""

    def __init__(
        self, path: Path, *, create: bool = True, busy_timeout: float = 10.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._db = tables.connect(path, create=create, busy_timeout=busy_timeout)
        with tables.transaction(self._db, path):
            for statement in SCHEMA:
                self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def insert(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store `alerts` in one transaction; returns them with their ids."""
        stored: list[Alert] = []
        with tables.transaction(self._db, self.path):
            for alert in alerts:
                cursor = self._db.execute(
                    "INSERT INTO alerts (time, rule, node, body) VALUES (?, ?, ?, ?)",
                    (alert.time, alert.rule, alert.node, json.dumps(alert.to_json())))
                stored.append(replace(alert, id=cursor.lastrowid))
        return stored

    def query(self, alert_filter: AlertFilter, *, last: int | None = None) -> list[Alert]:
        """Matching alerts in time order; with `last`, only the last `last` to arrive."""
        where, params = alert_filter.where()
        with tables.transaction(self._db, self.path, write=False):
            if last is None:
                rows = self._db.execute(
                    f"SELECT id, time, body FROM alerts WHERE {where} ORDER BY id", params
                ).fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT id, time, body FROM alerts WHERE {where} ORDER BY id DESC LIMIT ?",
                    [*params, last]).fetchall()
        alerts = [alert_from_json(json.loads(body), time=t, ident=i) for i, t, body in rows]
        alerts.sort(key=lambda a: (a.time, a.id or 0))
        return alerts

    def follow(
        self, alert_filter: AlertFilter, *, stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[Alert]:
        """Alerts stored after `alert_filter.after_id`, as they are committed, until `stop()`;
        queries only when `PRAGMA data_version` moved."""
        after, version = alert_filter.after_id, -1
        while not stop():
            current = tables.data_version(self._db)
            if current != version:
                version = current
                for alert in sorted(self.query(replace(alert_filter, after_id=after)),
                                    key=lambda a: a.id or 0):
                    after = alert.id or after
                    yield alert
            sleep(self.poll_interval)

    def last_id(self) -> int:
        found = self._db.execute("SELECT max(id) FROM alerts").fetchone()[0]
        return int(found or 0)

    def prune(self, *, now: float, max_age: float | None, max_rows: int | None) -> int:
        """Drop alerts older than `max_age` seconds and beyond the newest `max_rows`."""
        dropped = 0
        with tables.transaction(self._db, self.path):
            if max_age is not None:
                dropped += self._db.execute(
                    "DELETE FROM alerts WHERE time < ?", (now - max_age,)).rowcount
            if max_rows is not None:
                dropped += self._db.execute(
                    "DELETE FROM alerts WHERE id <= (SELECT id FROM alerts ORDER BY id DESC "
                    "LIMIT 1 OFFSET ?)", (max_rows,)).rowcount
        return dropped


def alert_from_json(body: dict[str, Any], *, time: float, ident: int | None) -> Alert:
    """The inverse of `Alert.to_json` (whose time is rounded to microseconds: the row keeps
    the exact one)."""
    pod = body.get("pod") or {}
    key = AlertKey(body["key"], pod.get("namespace"), pod.get("name"), body.get("ip"))
    return Alert(
        rule=body["rule"], metric=AlertMetric(body["metric"]), type=AlertType(body["type"]),
        key=key, value=body["value"], threshold=body["threshold"],
        period_s=body["period_s"], window_s=body["window_s"], time=time, node=body["node"],
        scope=body["scope"], summary=body["summary"], actions=tuple(body["actions"]),
        id=ident,
    )


__all__ = ["DEFAULT_MAX_ALERTS", "AlertFilter", "AlertStore", "alert_from_json"]
