"""Prometheus `/metrics` for the flow database: every scrape reads the cumulative counters
(`FlowStore.totals`) and answers `stats.prometheus_text`. One endpoint serves all nodes (the
database is shared), so collectors do not each expose the same counters.

The server owns no state besides the path; each request opens its own read connection (SQLite
connections are per thread), so scrapes never block the collectors' writes (WAL).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kanal.errors import KanalError
from kanal.flows.stats import prometheus_text
from kanal.flows.store import FlowStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_text(db: Path) -> str:
    store = FlowStore(db, create=False)
    try:
        return prometheus_text(store.totals())
    finally:
        store.close()


class MetricsServer(ThreadingHTTPServer):
    """`GET /metrics` (200, exposition text), anything else 404; a database that cannot be
    read answers 503 with the reason."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], db: Path) -> None:
        self.db = db
        super().__init__(address, _Handler)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="kanal-flow-metrics",
                                  daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, "not found: try /metrics\n")
            return
        try:
            body = metrics_text(self.server.db)
        except KanalError as exc:
            self._answer(503, f"{exc}\n")
            return
        self._answer(200, body)

    def _answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a scrape every few seconds is not news."""


__all__ = ["MetricsServer", "metrics_text"]
