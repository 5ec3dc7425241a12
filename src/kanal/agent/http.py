"""The agent's HTTP endpoints: health, readiness, Prometheus metrics and a JSON status.

```
GET /healthz   200 "ok" while the agent's loop runs; 503 when it has not turned for
               `liveness_timeout` seconds (a sync stuck in the kernel, a dead loop)
GET /readyz    200 "ok" once a sync succeeded and while the last one did; 503 with the reason
GET /metrics   Prometheus text format (kanal.agent.metrics)
GET /status    JSON: node, ready, healthy, store and applied revision, last sync, last error,
               problems (what `kanal lab status` and the lab's wait read)
```

Where it listens: `127.0.0.1:PORT` inside the node's network namespace when one is given
(the socket is created in that netns, the serving threads can run anywhere), else in the
agent's own. In the lab every agent uses the same port without clashing, each on its own
node's loopback, as a real node agent listens on its host's loopback (Felix's health port
is 9099 too). The netns's `lo` must be up (the lab's nodes have it up; a fresh `ip netns add`
does not): binding works without it, connecting does not. Reaching the port from outside the
netns needs a socket made inside it: `kanal.agent.client.fetch` does that.

It only reads the agent's immutable status snapshot and the metrics under their lock.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from kanal.dataplane.netns import entered

from .agent import NodeAgent
from .metrics import CONTENT_TYPE

DEFAULT_PORT = 9099
LOOPBACK = "127.0.0.1"


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], agent: NodeAgent, *, liveness_timeout: float
    ) -> None:
        self.agent = agent
        self.liveness_timeout = liveness_timeout
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def healthy(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self.agent.heartbeat
        if stalled > self.liveness_timeout:
            return False, f"the agent's loop has not run for {stalled:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        status = self.agent.status()
        if status.ready:
            return True, "ok"
        return False, status.last_error or "no successful sync yet"

    def status_json(self) -> dict[str, Any]:
        healthy, _ = self.healthy()
        return {**self.agent.status().to_json(), "healthy": healthy}


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._verdict(*self.server.healthy())
        elif path == "/readyz":
            self._verdict(*self.server.ready())
        elif path == "/metrics":
            self._send(200, self.server.agent.metrics.exposition(), CONTENT_TYPE)
        elif path == "/status":
            body = json.dumps(self.server.status_json(), indent=1) + "\n"
            self._send(200, body, "application/json")
        else:
            self._send(404, "not found: try /healthz, /readyz, /metrics or /status\n")

    def _verdict(self, ok: bool, reason: str) -> None:
        self._send(200 if ok else 503, reason + "\n")

    def _send(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line."""


@contextlib.contextmanager
def serving(
    agent: NodeAgent,
    *,
    port: int = DEFAULT_PORT,
    netns: str | None = None,
    liveness_timeout: float = 60.0,
) -> Iterator[AgentServer]:
    """Listen on 127.0.0.1:`port` (in `netns` if given) and serve from a thread until exit."""
    if netns is None:
        server = AgentServer((LOOPBACK, port), agent, liveness_timeout=liveness_timeout)
    else:
        with entered(netns):
            server = AgentServer((LOOPBACK, port), agent, liveness_timeout=liveness_timeout)
    thread = threading.Thread(target=server.serve_forever, name="agent-http", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


__all__ = ["DEFAULT_PORT", "AgentServer", "serving"]
