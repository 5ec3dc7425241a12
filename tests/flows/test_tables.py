"""The SQLite side of the flow store: summaries stored as patterns come back exactly, one
pattern serves every pod pair a sentence names, and a format 1 file is upgraded in place."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kanal.flows.filters import FlowFilter
from kanal.flows.records import FlowRecord, Peer
from kanal.flows.store import FlowStore
from kanal.flows.tables import summary_pattern, summary_text

from .builders import DEFAULT_DENY_WEB, OTHER, WEB, record

NAMES = st.text(alphabet="ab/-.:1", min_size=0, max_size=6)
PIECES = st.lists(st.one_of(NAMES, st.sampled_from(["\0", "\1", "\0s\1", " on ", "80/TCP"])),
                  max_size=8)


@given(NAMES, NAMES, st.none() | st.integers(1, 99), PIECES, st.data())
def test_a_summary_comes_back_exactly_from_its_pattern(
    src: str, dst: str, port: int | None, pieces: list[str], data: st.DataObject
) -> None:
    values = [src, dst, f"{port}/TCP"]
    words = [data.draw(st.sampled_from([*values, p])) for p in pieces]
    written = record(src=Peer(src, 1), dst=Peer(dst, port), summary="".join(words))
    pattern = summary_pattern(written)
    expected = written.summary.replace("\0", "\ufffd").replace("\1", "\ufffd")
    assert summary_text(pattern, written.src, written.dst, "TCP") == expected


def _denied(client: int, port: int) -> FlowRecord:
    src = replace(OTHER, ip=f"10.244.3.{client}", pod=f"client-{client}")
    dst = replace(WEB, port=port)
    return record(src=src, dst=dst, decision=DEFAULT_DENY_WEB, summary=(
        f"x/web is isolated for ingress by policy `x/default-deny`; no rule admits "
        f"z/client-{client} on {port}/TCP"))


def test_one_pattern_serves_every_pod_pair_and_port(tmp_path: Path) -> None:
    store = FlowStore(tmp_path / "flows.db")
    written = [_denied(client, port) for client in range(1, 51) for port in (80, 443)]
    store.insert(written)
    assert [r.summary for r in store.query(FlowFilter())] == [r.summary for r in written]
    store.close()
    db = sqlite3.connect(tmp_path / "flows.db")
    [(count,)] = db.execute("SELECT count(DISTINCT summary) FROM flows")
    db.close()
    assert count == 1


def test_a_format_1_file_is_read_the_same_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "flows.db"
    store = FlowStore(path)
    store.insert([_denied(7, 80)])
    store.close()
    db = sqlite3.connect(path)  # as format 1 wrote it: the sentence itself
    db.execute("UPDATE strings SET text = ? WHERE id = (SELECT summary FROM flows)",
               (_denied(7, 80).summary,))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = FlowStore(path, create=False)
    store.insert([_denied(8, 80)])
    assert [r.summary for r in store.query(FlowFilter())] == [
        _denied(7, 80).summary, _denied(8, 80).summary]
    store.close()
    db = sqlite3.connect(path)
    [(version,)] = db.execute("PRAGMA user_version")
    db.close()
    assert version == 2
