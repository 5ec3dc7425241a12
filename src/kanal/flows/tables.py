"""The SQLite side of the flow store: schema, connection, and records as rows.

```
flows      id INTEGER PRIMARY KEY          one row per record, in arrival order (--follow reads
           time REAL (index), node          rows by id)
           decision -> decisions.id         the rule (or default) that decided
           allowed, source (0 nflog, 1 conntrack, 2 hubble), protocol
           src_/dst_ ip, port, ns, pod, node; src_/dst_labels -> strings
           summary, src_group, dst_group -> strings   (summary with its endpoints as tokens:
           end_time, duration, bytes, packets          see `summary_pattern`)
                                           NULL until conntrack says the connection ended
decisions  id, key UNIQUE (the log id, or the decision's text for conntrack records),
           direction, outcome, tier, policy, rule_index, rule_name, isolating (JSON), fail_closed
strings    id, text UNIQUE                 interned texts repeated by many rows (labels as JSON,
                                           groups, sentences): a row stays about 100 bytes
counters   name, labels (JSON), value      cumulative since the store was created: retention
                                           never lowers them (Prometheus counters)
rules      tier, policy, direction, rule_index, rule_name, action: every rule the collectors'
           engines know (for "never hit"); node_logs: the log ids each node's table holds
meta       key, value                      e.g. `pruned`: rows dropped by retention so far
PRAGMA user_version = 2  (format 1 differs only in storing summaries literally, which format 2
                         reads the same: a format 1 file is upgraded when opened)
```

WAL journal, `synchronous=NORMAL`, a busy timeout (one collector per node writes the same file)
and incremental auto-vacuum, so retention gives pages back to the file system.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kanal.engine import Outcome, Tier
from kanal.flows.records import Completion, Decision, FlowRecord, Peer, Source
from kanal.model.objects import Direction, PolicyKey
from kanal.store.api import StoreError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

SCHEMA = """
CREATE TABLE strings (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, log_id TEXT,
    direction TEXT NOT NULL, outcome TEXT NOT NULL, tier TEXT, policy TEXT,
    rule_index INTEGER, rule_name TEXT NOT NULL, isolating TEXT NOT NULL,
    fail_closed INTEGER NOT NULL
);
CREATE TABLE flows (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, node INTEGER NOT NULL,
    decision INTEGER NOT NULL, allowed INTEGER NOT NULL, source INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    src_ip TEXT NOT NULL, src_port INTEGER, src_ns TEXT, src_pod TEXT, src_node TEXT,
    src_labels INTEGER,
    dst_ip TEXT NOT NULL, dst_port INTEGER, dst_ns TEXT, dst_pod TEXT, dst_node TEXT,
    dst_labels INTEGER,
    summary INTEGER NOT NULL, src_group INTEGER NOT NULL, dst_group INTEGER NOT NULL,
    end_time REAL, duration REAL, bytes INTEGER, packets INTEGER
);
CREATE INDEX flows_time ON flows (time);
CREATE TABLE counters (
    name TEXT NOT NULL, labels TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (name, labels)
) WITHOUT ROWID;
CREATE TABLE rules (
    tier TEXT NOT NULL, policy TEXT NOT NULL, direction TEXT NOT NULL,
    rule_index INTEGER NOT NULL, rule_name TEXT NOT NULL, action TEXT NOT NULL,
    PRIMARY KEY (tier, policy, direction, rule_index)
) WITHOUT ROWID;
CREATE TABLE node_logs (
    node TEXT NOT NULL, log_id TEXT NOT NULL, PRIMARY KEY (node, log_id)
) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('pruned', 0)
"""

FLOW_COLUMNS = (
    "id, time, node, decision, allowed, source, protocol, "
    "src_ip, src_port, src_ns, src_pod, src_node, src_labels, "
    "dst_ip, dst_port, dst_ns, dst_pod, dst_node, dst_labels, "
    "summary, src_group, dst_group, end_time, duration, bytes, packets"
)
INSERT_FLOW = f"INSERT INTO flows ({FLOW_COLUMNS}) VALUES ({', '.join('?' * 26)})"
SOURCES = (Source.NFLOG, Source.CONNTRACK, Source.HUBBLE)


class FlowStoreError(StoreError):
    """The flow database cannot be used (missing, not a flow store, locked too long)."""


def connect(path: Path, *, create: bool, busy_timeout: float = 10.0) -> sqlite3.Connection:
    if not create and not path.exists():
        raise FlowStoreError(
            f"there is no flow database at `{path}`: start the lab's flow collectors, or give "
            "its path with --db"
        )
    with translated(path):
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect in a new file
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        _initialize(db, path)
        return db


def _initialize(db: sqlite3.Connection, path: Path) -> None:
    with transaction(db, path):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        objects = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and objects == 0:
            for statement in SCHEMA.split(";\n"):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version in READABLE_VERSIONS and version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise FlowStoreError(
                f"`{path}` is not a kanal flow database of format {SCHEMA_VERSION} "
                f"(found {version}): give another path with --db"
            )


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, path: Path, *, write: bool = True) -> Iterator[None]:
    """One transaction (the write lock taken up front when `write`), failures translated."""
    with translated(path):
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    with translated(path):
        db.execute("COMMIT")


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        hint = "another process holds it: retry" if "locked" in str(exc) else "check the path"
        raise FlowStoreError(f"cannot use flow database `{path}`: {exc} ({hint})") from exc
    except sqlite3.DatabaseError as exc:
        raise FlowStoreError(f"`{path}` is not a usable flow database ({exc})") from exc
    except OSError as exc:
        raise FlowStoreError(f"cannot create flow database `{path}`: {exc}") from exc


def data_version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA data_version").fetchone()[0]
    return version


# -- decisions -------------------------------------------------------------------------------


def decision_key(decision: Decision) -> str:
    """The log id when the kernel logged it (content-derived, stable), else its content."""
    if decision.log_id is not None:
        return decision.log_id
    tier = decision.tier.value if decision.tier else ""
    return "|".join((
        decision.direction.value, decision.outcome.value, tier, decision.policy or "",
        "" if decision.rule_index is None else str(decision.rule_index),
        ",".join(decision.isolating),
    ))


def decision_row(decision: Decision) -> tuple[object, ...]:
    return (
        decision_key(decision), decision.log_id, decision.direction.value,
        decision.outcome.value, decision.tier.value if decision.tier else None,
        decision.policy, decision.rule_index, decision.rule_name,
        json.dumps(list(decision.isolating)), int(decision.fail_closed),
    )


def decision_from_row(row: Sequence[Any]) -> Decision:
    log_id, direction, outcome, tier, policy, rule_index, rule_name, isolating, closed = row
    return Decision(
        direction=Direction(direction),
        outcome=Outcome(outcome),
        tier=Tier(tier) if tier else None,
        policy=PolicyKey(policy) if policy else None,
        rule_index=rule_index,
        rule_name=rule_name,
        isolating=tuple(PolicyKey(p) for p in json.loads(isolating)),
        fail_closed=bool(closed),
        log_id=log_id,
    )


DECISION_COLUMNS = (
    "log_id, direction, outcome, tier, policy, rule_index, rule_name, isolating, fail_closed"
)


# -- flows -------------------------------------------------------------------------------------


def labels_text(labels: dict[str, str] | Any) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


_TOKENS = _SRC, _DST, _PROBE = ("\0s\1", "\0d\1", "\0p\1")
"""Source, destination, probe. No value holds a control character, so every `\0?\1` in a
pattern is a token that was placed (its only NUL is its first character)."""


def _token_values(src: Peer, dst: Peer, protocol: str) -> tuple[str, str, str]:
    probe = "" if dst.port is None else f"{dst.port}/{protocol}"
    return src.describe(), dst.describe(), probe


def summary_pattern(record: FlowRecord) -> str:
    """The record's summary with every occurrence of its source and destination (`ns/pod` or
    address) and probe (`80/TCP`) replaced by tokens: a default deny's sentence names both
    pods, so stored literally it would be a new string for every pod pair (a string per
    denied record at worst, and never pruned); as a pattern it is one per decision and port.

    `summary_text` inverts it exactly (tested): values with no control character (others are
    left alone) never overlap the tokens already placed, so each token marks exactly where its
    value was. (Control characters in a summary are stored as U+FFFD.)"""
    pattern = record.summary
    if "\0" in pattern or "\1" in pattern:
        pattern = pattern.replace("\0", "\ufffd").replace("\1", "\ufffd")
    src, dst = record.src, record.dst
    for token, value in (
        (_SRC, src.ip if src.pod is None else f"{src.namespace}/{src.pod}"),
        (_DST, dst.ip if dst.pod is None else f"{dst.namespace}/{dst.pod}"),
        (_PROBE, "" if dst.port is None else f"{dst.port}/{record.protocol}"),
    ):
        if len(value) > 1 and value in pattern and value.isprintable():
            pattern = pattern.replace(value, token)
    return pattern


def summary_text(pattern: str, src: Peer, dst: Peer, protocol: str) -> str:
    if "\0" not in pattern:
        return pattern
    values = _token_values(src, dst, protocol)
    for token, value in reversed(tuple(zip(_TOKENS, values, strict=True))):
        pattern = pattern.replace(token, value)
    return pattern


def record_from_row(
    row: Sequence[Any], *, decisions: dict[int, Decision], strings: dict[int, str]
) -> FlowRecord:
    ident, time, node, decision, _, source, protocol = row[:7]
    summary, src_group, dst_group, end_time, duration, nbytes, packets = row[19:]
    done = None
    if end_time is not None:
        done = Completion(end_time, duration, nbytes, packets)
    src, dst = _peer(row[7:13], strings), _peer(row[13:19], strings)
    return FlowRecord(
        time=time,
        node=strings[node],
        protocol=protocol,
        src=src,
        dst=dst,
        decision=decisions[decision],
        summary=summary_text(strings[summary], src, dst, protocol),
        source=SOURCES[source],
        src_group=strings[src_group],
        dst_group=strings[dst_group],
        completion=done,
        id=ident,
    )


def _peer(columns: Sequence[Any], strings: dict[int, str]) -> Peer:
    """`ip, port, ns, pod, node, labels` columns of one end."""
    ip, port, namespace, pod, node, labels = columns
    parsed = {} if labels is None else json.loads(strings[labels])
    return Peer(ip, port, namespace, pod, parsed, node)


__all__ = [
    "FLOW_COLUMNS",
    "INSERT_FLOW",
    "FlowStoreError",
    "connect",
    "decision_from_row",
    "decision_key",
    "decision_row",
    "record_from_row",
    "summary_pattern",
    "summary_text",
    "transaction",
]
