"""FlowStore: flow records in one SQLite file (schema in `kanal.flows.tables`), written by
the collectors of every node, read by `kanal flows / stats / graph`.

Writes are batches (one transaction per batch of records, with the counters they move).
Reads are Hubble-style filtered queries, a `follow` stream (new rows by id, polling
`PRAGMA data_version` so an idle follower does not query), JSON-lines export, and the counters
and rule catalog the statistics are made of. Retention (`prune`) drops the oldest rows by age,
row count and size; the counters are cumulative and never go down with it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from kanal.flows import tables
from kanal.flows.filters import FlowFilter
from kanal.flows.graph import Edge
from kanal.flows.records import (
    Completion,
    CounterValue,
    Decision,
    FlowRecord,
    Peer,
    RuleRef,
)
from kanal.flows.stats import FlowTotals
from kanal.flows.tables import FlowStoreError

FLOWS_FILE = "flows.db"
STRING_CACHE_LIMIT = 200_000

CounterKey = tuple[str, str]
"""(name, labels as canonical JSON)."""


def labels_key(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def record_counters(records: Iterable[FlowRecord]) -> Counter[CounterKey]:
    """What new records add: a flow per (node, direction, verdict), a hit per decision (and a
    deny when it denied). Counted per decision object first (attribution shares them): labels
    are encoded once per key."""
    counts: Counter[tuple[str, int]] = Counter()  # (node, id of a decision object)
    by_id: dict[int, Decision] = {}  # keeps each counted decision alive, so its id holds
    for record in records:
        decision = record.decision
        by_id[id(decision)] = decision
        counts[record.node, id(decision)] += 1
    flows: Counter[tuple[str, str, str]] = Counter()
    decisions: Counter[tuple[str, bool]] = Counter()
    for (node, ident), count in counts.items():
        decision = by_id[ident]
        flows[node, decision.direction.value.lower(), decision.verdict.value] += count
        decisions[tables.decision_key(decision), not decision.allowed] += count
    found: Counter[CounterKey] = Counter()
    for (node, direction, outcome), count in flows.items():
        labels = labels_key({"node": node, "direction": direction, "verdict": outcome})
        found["flows", labels] += count
    for (key, denied), count in decisions.items():
        labels = labels_key({"decision": key})
        found["decision_hits", labels] += count
        if denied:
            found["decision_denies", labels] += count
    return found


def completion_counters(
    record: FlowRecord, done: Completion, decision_key: str
) -> Counter[CounterKey]:
    flow = labels_key({"node": record.node, "direction": record.direction.value.lower(),
                       "verdict": record.verdict.value})
    decision = labels_key({"decision": decision_key})
    return Counter({
        ("flow_bytes", flow): done.bytes, ("flow_packets", flow): done.packets,
        ("decision_bytes", decision): done.bytes, ("decision_packets", decision): done.packets,
    })


class FlowStore:
    """One connection to the flow database, for one thread."""

    def __init__(
        self, path: Path, *, create: bool = True, busy_timeout: float = 10.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._db = tables.connect(path, create=create, busy_timeout=busy_timeout)
        self._string_ids: dict[str, int] = {}
        self._strings: dict[int, str] = {}
        self._decision_ids: dict[str, int] = {}
        self._labels_texts: dict[int, tuple[Mapping[str, str], str]] = {}
        self._decisions: dict[int, Decision] = {}

    def close(self) -> None:
        self._db.close()

    # -- writes ----------------------------------------------------------------------------------

    def insert(self, records: Sequence[FlowRecord]) -> list[int]:
        """Store `records` in one transaction; returns their row ids, in order (consecutive:
        the transaction holds the write lock and each new rowid is the largest plus one)."""
        if not records:
            return []
        with tables.transaction(self._db, self.path):
            summaries = [tables.summary_pattern(r) for r in records]
            self._intern(records, summaries)
            rows = [self._row(r, self._decision_id(r.decision), summary)
                    for r, summary in zip(records, summaries, strict=True)]
            self._db.executemany(tables.INSERT_FLOW, rows)
            last = self._db.execute("SELECT max(id) FROM flows").fetchone()[0]
            self._add(record_counters(records))
        return list(range(last - len(records) + 1, last + 1))

    def _row(self, record: FlowRecord, decision: int, summary: str) -> tuple[object, ...]:
        src, dst, done = record.src, record.dst, record.completion
        return (
            None, record.time, self._string_id(record.node), decision,
            int(record.decision.allowed), tables.SOURCES.index(record.source),
            record.protocol,
            src.ip, src.port, src.namespace, src.pod, src.node, self._labels_id(src),
            dst.ip, dst.port, dst.namespace, dst.pod, dst.node, self._labels_id(dst),
            self._string_id(summary), self._string_id(record.src_group),
            self._string_id(record.dst_group),
            None if done is None else done.end, None if done is None else done.duration,
            None if done is None else done.bytes, None if done is None else done.packets,
        )

    def _labels_id(self, peer: Peer) -> int | None:
        return None if peer.pod is None else self._string_id(self._labels_text(peer.labels))

    def _labels_text(self, labels: Mapping[str, str]) -> str:
        """A pod's labels as stored: attribution shares one labels object among the records
        of a pod, so it is encoded once per object (kept alive by the cache)."""
        cached = self._labels_texts.get(id(labels))
        if cached is not None and cached[0] is labels:
            return cached[1]
        text = tables.labels_text(labels)
        if len(self._labels_texts) >= 100_000:
            self._labels_texts.clear()
        self._labels_texts[id(labels)] = (labels, text)
        return text

    def complete(self, finished: Sequence[tuple[FlowRecord, Completion]]) -> None:
        """Record how stored flows (`record.id` set) ended, and count their bytes."""
        if not finished:
            return
        moved: Counter[CounterKey] = Counter()
        with tables.transaction(self._db, self.path):
            self._db.executemany(
                "UPDATE flows SET end_time = ?, duration = ?, bytes = ?, packets = ? "
                "WHERE id = ?",
                [(d.end, d.duration, d.bytes, d.packets, r.id) for r, d in finished],
            )
            for record, done in finished:
                moved.update(completion_counters(record, done,
                                                 tables.decision_key(record.decision)))
            self._add(moved)

    def add_counters(self, deltas: Mapping[CounterKey, int]) -> None:
        """Add to cumulative counters (the collector's health: lost events, reloads...)."""
        if any(deltas.values()):
            with tables.transaction(self._db, self.path):
                self._add(deltas)

    def _add(self, deltas: Mapping[CounterKey, int]) -> None:
        self._db.executemany(
            "INSERT INTO counters VALUES (?, ?, ?) ON CONFLICT (name, labels) "
            "DO UPDATE SET value = value + excluded.value",
            [(name, labels, value) for (name, labels), value in deltas.items() if value],
        )

    def write_catalog(
        self, node: str, rules: Iterable[RuleRef], logged: Iterable[Decision]
    ) -> None:
        """What `kanal stats` needs to report rules never hit: every rule the node's engine
        knows (the table is replaced: all collectors load the same manifests, the last reload
        wins) and the decisions the node's table logs (replaced for this node)."""
        logged = list(logged)
        with tables.transaction(self._db, self.path):
            self._db.execute("DELETE FROM rules")
            self._db.executemany(
                "INSERT OR REPLACE INTO rules VALUES (?, ?, ?, ?, ?, ?)",
                [(r.tier, r.policy, r.direction, r.rule_index, r.rule_name, r.action)
                 for r in rules],
            )
            for decision in logged:
                self._decision_id(decision)
            self._db.execute("DELETE FROM node_logs WHERE node = ?", (node,))
            self._db.executemany(
                "INSERT OR IGNORE INTO node_logs VALUES (?, ?)",
                [(node, tables.decision_key(d)) for d in logged],
            )

    # -- interning (inside a write transaction) ----------------------------------------------------

    def _intern(self, records: Sequence[FlowRecord], summaries: Iterable[str]) -> None:
        """Intern every text of `records` with a few statements, not two per new text (every
        pod pair a default deny names is a new sentence): read the ones another writer
        stored, then insert the rest with ids from the table's largest (this transaction holds
        the write lock, so nobody else takes them)."""
        known = self._string_ids
        if len(known) >= STRING_CACHE_LIMIT:  # a writer's memory stays bounded; the table
            known.clear()                     # still has them all
            self._strings.clear()
        texts = {text for r in records for text in (r.node, r.src_group, r.dst_group)
                 if text not in known}
        texts.update(summaries)
        texts.update(self._labels_text(peer.labels) for r in records for peer in (r.src, r.dst)
                     if peer.pod is not None)
        missing = sorted(texts - known.keys())
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = self._db.execute(
                f"SELECT id, text FROM strings WHERE text IN ({', '.join('?' * len(chunk))})",
                chunk)
            for ident, text in rows:
                known[text] = ident
                self._strings[ident] = text
        new = [text for text in missing if text not in known]
        if new:
            last = self._db.execute("SELECT coalesce(max(id), 0) FROM strings").fetchone()[0]
            self._db.executemany("INSERT INTO strings (id, text) VALUES (?, ?)",
                                 enumerate(new, start=last + 1))
            for ident, text in enumerate(new, start=last + 1):
                known[text] = ident
                self._strings[ident] = text

    def _string_id(self, text: str) -> int:
        found = self._string_ids.get(text)
        if found is None:
            self._db.execute("INSERT OR IGNORE INTO strings (text) VALUES (?)", (text,))
            found = self._db.execute("SELECT id FROM strings WHERE text = ?", (text,)).fetchone()[0]
            assert isinstance(found, int)
            self._string_ids[text] = found
            self._strings[found] = text
        return found

    def _decision_id(self, decision: Decision) -> int:
        key = tables.decision_key(decision)
        found = self._decision_ids.get(key)
        if found is None:
            self._db.execute(
                f"INSERT OR IGNORE INTO decisions (key, {tables.DECISION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tables.decision_row(decision),
            )
            found = self._db.execute("SELECT id FROM decisions WHERE key = ?", (key,)).fetchone()[0]
            assert isinstance(found, int)
            self._decision_ids[key] = found
        return found

    # -- retention -------------------------------------------------------------------------------

    def prune(
        self, *, now: float, max_age: float | None = None, max_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> int:
        """Drop the oldest rows: older than `max_age` seconds, beyond `max_rows`, and beyond
        what fits in `max_bytes` of database pages (estimated from the current bytes per row).
        Returns the number of rows dropped; freed pages go back to the file system."""
        with tables.transaction(self._db, self.path):
            dropped = 0
            if max_age is not None:
                dropped += self._db.execute(
                    "DELETE FROM flows WHERE time < ?", (now - max_age,)).rowcount
            limit = self._row_limit(max_rows, max_bytes)
            if limit is not None:
                dropped += self._db.execute(
                    "DELETE FROM flows WHERE id <= (SELECT id FROM flows ORDER BY id DESC "
                    "LIMIT 1 OFFSET ?)", (limit,)).rowcount
            if dropped:
                self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'pruned'",
                                 (dropped,))
        if dropped:
            with tables.translated(self.path):
                self._db.execute("PRAGMA incremental_vacuum")
        return dropped

    def _row_limit(self, max_rows: int | None, max_bytes: int | None) -> int | None:
        limits = [] if max_rows is None else [max_rows]
        if max_bytes is not None:
            rows = self._count()
            used = self.size_bytes()
            if rows and used > max_bytes:
                limits.append(int(rows * max_bytes / used))
        return min(limits) if limits else None

    def _count(self) -> int:
        found: int = self._db.execute("SELECT count(*) FROM flows").fetchone()[0]
        return found

    def size_bytes(self) -> int:
        """Bytes of database pages in use (the file minus its free pages; WAL not counted)."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def stats(self) -> dict[str, int]:
        with tables.transaction(self._db, self.path, write=False):
            pruned = self._db.execute("SELECT value FROM meta WHERE key = 'pruned'").fetchone()[0]
            return {"rows": self._count(), "bytes": self.size_bytes(), "pruned": int(pruned)}

    # -- reads -----------------------------------------------------------------------------------

    def query(self, flow_filter: FlowFilter, *, last: int | None = None) -> list[FlowRecord]:
        """Matching records in time order; with `last`, only the last `last` to arrive. (A
        record from conntrack arrives up to the grace after its time, so arrival and time
        orders differ slightly; `follow` streams in arrival order.)"""
        with tables.transaction(self._db, self.path, write=False):
            condition = self._condition(flow_filter)
            if condition is None:
                return []
            where, params = condition
            if last is None:
                rows = self._db.execute(
                    f"SELECT {tables.FLOW_COLUMNS} FROM flows WHERE {where} ORDER BY id",
                    params).fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT {tables.FLOW_COLUMNS} FROM flows WHERE {where} "
                    "ORDER BY id DESC LIMIT ?", [*params, last]).fetchall()
            records = self._records(rows)
            records.sort(key=lambda r: (r.time, r.id or 0))
            return records

    def _condition(self, flow_filter: FlowFilter) -> tuple[str, list[object]] | None:
        """The SQL condition, or None when nothing can match (unknown node, no decision)."""
        where, params = flow_filter.where()
        if flow_filter.node is not None:
            node = self._db.execute("SELECT id FROM strings WHERE text = ?",
                                    (flow_filter.node,)).fetchone()
            if node is None:
                return None
            where += " AND node = ?"
            params.append(node[0])
        if flow_filter.policy is not None:
            ids = [i for i, d in self._all_decisions().items() if flow_filter.matches_decision(d)]
            if not ids:
                return None
            where += f" AND decision IN ({', '.join('?' * len(ids))})"
            params.extend(ids)
        return where, params

    def _records(self, rows: Sequence[tuple[Any, ...]]) -> list[FlowRecord]:
        decisions = self._all_decisions()
        wanted = {int(row[i]) for row in rows for i in _STRING_COLUMNS if row[i] is not None}
        self._load_strings(wanted - self._strings.keys())
        return [tables.record_from_row(row, decisions=decisions, strings=self._strings)
                for row in rows]

    def _all_decisions(self) -> dict[int, Decision]:
        newest = self._db.execute("SELECT max(id) FROM decisions").fetchone()[0] or 0
        if newest and newest not in self._decisions:
            rows = self._db.execute(f"SELECT id, {tables.DECISION_COLUMNS} FROM decisions")
            self._decisions = {row[0]: tables.decision_from_row(row[1:]) for row in rows}
        return self._decisions

    def _load_strings(self, ids: set[int]) -> None:
        missing = sorted(ids)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            rows = self._db.execute(
                f"SELECT id, text FROM strings WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk)
            self._strings.update(rows)

    def follow(
        self, flow_filter: FlowFilter, *, stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[FlowRecord]:
        """Records arriving after `flow_filter.after_id`, as they are committed, until `stop()`.
        Polls `PRAGMA data_version` every `poll_interval` and queries only when it moved."""
        after = flow_filter.after_id
        version = -1
        while not stop():
            current = tables.data_version(self._db)
            if current != version:
                version = current
                for record in sorted(self.query(_after(flow_filter, after)),
                                     key=lambda r: r.id or 0):
                    assert record.id is not None
                    after = record.id
                    yield record
            sleep(self.poll_interval)

    def last_id(self) -> int:
        found = self._db.execute("SELECT max(id) FROM flows").fetchone()[0]
        return int(found or 0)

    def export_jsonl(self, flow_filter: FlowFilter, out: TextIO) -> int:
        """Matching records as JSON lines; returns how many."""
        records = self.query(flow_filter)
        for record in records:
            out.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
        return len(records)

    def counters(self) -> list[CounterValue]:
        rows = self._db.execute("SELECT name, labels, value FROM counters ORDER BY name, labels")
        return [CounterValue(n, json.loads(labels), v) for n, labels, v in rows]

    def decisions(self) -> dict[str, Decision]:
        """Every decision ever recorded, by its key (log id, or content for conntrack ones)."""
        with tables.transaction(self._db, self.path, write=False):
            return {tables.decision_key(d): d for d in self._all_decisions().values()}

    def rules(self) -> list[RuleRef]:
        rows = self._db.execute("SELECT * FROM rules ORDER BY tier, policy, direction, rule_index")
        return [RuleRef(*row) for row in rows]

    def totals(self) -> FlowTotals:
        """Counters, decisions and the rule catalog, in one read transaction."""
        with tables.transaction(self._db, self.path, write=False):
            decisions = {tables.decision_key(d): d for d in self._all_decisions().values()}
            return FlowTotals(self.counters(), decisions, self.rules(), self.node_logs())

    def edges(self, flow_filter: FlowFilter) -> list[Edge]:
        """Matching flows grouped by (source group, destination group, decision)."""
        with tables.transaction(self._db, self.path, write=False):
            condition = self._condition(flow_filter)
            if condition is None:
                return []
            where, params = condition
            rows = self._db.execute(
                "SELECT src_group, dst_group, decision, count(*), coalesce(sum(bytes), 0) "
                f"FROM flows WHERE {where} GROUP BY src_group, dst_group, decision", params
            ).fetchall()
            decisions = self._all_decisions()
            self._load_strings({r[0] for r in rows} | {r[1] for r in rows})
            return [Edge(self._strings[s], self._strings[d], decisions[k], n, b)
                    for s, d, k, n, b in rows]

    def node_logs(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for node, log_id in self._db.execute("SELECT node, log_id FROM node_logs"):
            found.setdefault(node, set()).add(log_id)
        return found


def _after(flow_filter: FlowFilter, after: int) -> FlowFilter:
    return replace(flow_filter, after_id=after)


_STRING_COLUMNS = (2, 12, 18, 19, 20, 21)
"""node, src_labels, dst_labels, summary, src_group, dst_group in FLOW_COLUMNS."""

__all__ = ["FLOWS_FILE", "FlowStore", "FlowStoreError"]
