"""The /metrics endpoint: the store's counters as Prometheus text, 404 elsewhere, 503 when the
database cannot be read."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanal.flows.metrics import CONTENT_TYPE, MetricsServer
from kanal.flows.store import FlowStore

from .builders import record


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = MetricsServer(("127.0.0.1", 0), tmp_path / "flows.db")
    server.serve_in_thread()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}", tmp_path / "flows.db"
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_are_the_stores_counters(served: tuple[str, Path]) -> None:
    url, db = served
    store = FlowStore(db)
    store.insert([record(), record()])
    store.close()
    status, kind, body = _get(f"{url}/metrics")
    assert (status, kind) == (200, CONTENT_TYPE)
    assert 'kanal_flows_total{direction="ingress",node="node-0",verdict="allowed"} 2' in body


def test_other_paths_are_not_found_and_a_missing_database_is_unavailable(
    served: tuple[str, Path]
) -> None:
    url, _ = served
    assert _get(f"{url}/")[0] == 404
    status, _, body = _get(f"{url}/metrics")
    assert status == 503 and "no flow database" in body
