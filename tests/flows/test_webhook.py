"""WebhookSender against a real HTTP server on 127.0.0.1: delivery, retry after a 500, no retry
after a 404, an unreachable URL counted as failed, and a full queue dropping without blocking."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kanal.flows.webhook import WebhookSender
from kanal.model.alertrule import WebhookAction

ALERT = {"rule": "scan", "key": "y/scanner", "summary": "y/scanner sent ..."}


class Hook(ThreadingHTTPServer):
    """Answers POSTs with the next of `statuses` (then 200), keeping each body; while
    `hold` is clear, a request waits for it (after setting `arrived`)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses: list[int] = []
        self.bodies: list[object] = []
        self.paths: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


class _Handler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.arrived.set()
        self.server.hold.wait(10)
        self.server.bodies.append(json.loads(body))
        self.server.paths.append(f"{self.path} {self.headers['Content-Type']}")
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def reports() -> list[str]:
    return []


@pytest.fixture
def sender(reports: list[str]) -> Iterator[WebhookSender]:
    webhooks = WebhookSender(report=reports.append, queue_size=1, backoff_s=0.01)
    yield webhooks
    webhooks.close(drain_s=5)


def test_an_alert_is_posted_as_json(hook: Hook, sender: WebhookSender) -> None:
    assert sender.submit(WebhookAction(hook.url), "scan", ALERT)
    assert sender.wait_idle(10)
    assert hook.bodies == [ALERT]
    assert hook.paths == ["/alerts application/json"]
    assert sender.counts() == {("delivered", "scan"): 1}


def test_a_server_error_is_retried(hook: Hook, sender: WebhookSender, reports: list[str]) -> None:
    hook.statuses = [500, 503]
    sender.submit(WebhookAction(hook.url, retries=3), "scan", ALERT)
    assert sender.wait_idle(10)
    assert len(hook.bodies) == 3
    assert sender.counts() == {("delivered", "scan"): 1, ("retried", "scan"): 2}
    assert reports == []


def test_retries_run_out(hook: Hook, sender: WebhookSender, reports: list[str]) -> None:
    hook.statuses = [500, 500]
    sender.submit(WebhookAction(hook.url, retries=1), "scan", ALERT)
    assert sender.wait_idle(10)
    assert sender.counts() == {("failed", "scan"): 1, ("retried", "scan"): 1}
    assert reports == [f"alert `scan`: webhook {hook.url} failed: HTTP 500 Internal Server Error"]


def test_a_client_error_is_not_retried(hook: Hook, sender: WebhookSender) -> None:
    hook.statuses = [404]
    sender.submit(WebhookAction(hook.url, retries=3), "scan", ALERT)
    assert sender.wait_idle(10)
    assert len(hook.bodies) == 1
    assert sender.counts() == {("failed", "scan"): 1}


def test_an_unreachable_url_is_counted_as_failed(
    sender: WebhookSender, reports: list[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender.submit(WebhookAction(f"http://127.0.0.1:{port}/", retries=2), "scan", ALERT)
    assert sender.wait_idle(10)
    assert sender.counts() == {("failed", "scan"): 1, ("retried", "scan"): 2}
    assert len(reports) == 1 and "Connection refused" in reports[0]


def test_a_full_queue_drops_instead_of_blocking(hook: Hook, sender: WebhookSender) -> None:
    hook.hold.clear()
    assert sender.submit(WebhookAction(hook.url), "scan", ALERT)  # taken by the worker...
    assert hook.arrived.wait(10)  # ...which now waits for the server
    assert sender.submit(WebhookAction(hook.url), "scan", ALERT)  # fills the queue (size 1)
    assert not sender.submit(WebhookAction(hook.url), "scan", ALERT)
    assert not sender.submit(WebhookAction(hook.url), "other", ALERT)
    assert sender.counts() == {("dropped", "scan"): 1, ("dropped", "other"): 1}
    hook.hold.set()
    assert sender.wait_idle(10)
    assert sender.counts() == {("delivered", "scan"): 2}


def test_close_drops_what_is_still_queued(hook: Hook, reports: list[str]) -> None:
    sender = WebhookSender(report=reports.append, queue_size=5, backoff_s=0.01)
    hook.hold.clear()
    sender.submit(WebhookAction(hook.url), "scan", ALERT)
    assert hook.arrived.wait(10)
    sender.submit(WebhookAction(hook.url), "scan", ALERT)
    sender.close(drain_s=0.0)  # the first is still in flight: only the second is dropped
    assert sender.counts() == {("dropped", "scan"): 1}
    hook.hold.set()
