"""WebhookSender: alerts POSTed as JSON from a background thread, retried, never blocking the
collector.

```
collector thread ──submit (put_nowait)──► bounded queue ──► worker thread ──POST──► URL
                    full: dropped, counted                    2xx: delivered
                                                              error: retried after 0.5, 1, 2 s...
                                                              (up to `retries` more), then failed
```

A 4xx answer other than 408 and 429 is not retried (the request itself is wrong; the same body
will not fix it). The worker runs in the namespace of the thread that started it (the
collector's main thread is in the host's), so `http://127.0.0.1:PORT/` is the host's
loopback. `counts()` hands what happened since the last call to the collector's counters;
`report` gets one line per final failure (the collector's stderr). On `close`, what is still
queued after `drain_s` is dropped and counted.
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kanal.model.alertrule import WebhookAction

DEFAULT_QUEUE_SIZE = 1000
NOT_RETRIED = frozenset(range(400, 500)) - {408, 429}


@dataclass(frozen=True, slots=True)
class _Job:
    action: WebhookAction
    rule: str
    body: bytes


class WebhookSender:
    """One worker thread and its queue. Counts, per rule: `delivered`, `retried` (attempts
    after the first), `failed` (every attempt failed), `dropped` (queue full, or closing)."""

    def __init__(
        self, *, report: Callable[[str], None], queue_size: int = DEFAULT_QUEUE_SIZE,
        backoff_s: float = 0.5, max_backoff_s: float = 10.0,
    ) -> None:
        self._report = report
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="kanal-alert-webhook",
                                        daemon=True)
        self._thread.start()

    def submit(self, action: WebhookAction, rule: str, alert: dict[str, Any]) -> bool:
        """Queue one POST; False (and counted as dropped) when the queue is full. Never
        blocks."""
        job = _Job(action, rule, json.dumps(alert).encode())
        with self._lock:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self._counts["dropped", rule] += 1
                return False
            self._busy += 1
        return True

    def counts(self) -> Counter[tuple[str, str]]:
        """(outcome, rule) -> how many since the last call."""
        with self._lock:
            found, self._counts = self._counts, Counter()
        return found

    def wait_idle(self, timeout: float) -> bool:
        """Whether every submitted POST was finished (delivered or failed) within `timeout`;
        for tests and `close`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self, *, drain_s: float = 2.0) -> None:
        """Give queued POSTs `drain_s` to finish, then stop; what is left is dropped."""
        self.wait_idle(drain_s)
        self._stopping.set()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._finish(job, "dropped")
        self._queue.put(None)
        self._thread.join(timeout=drain_s)

    # -- worker ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._stopping.is_set():
                self._finish(job, "dropped")
                continue
            self._finish(job, self._deliver(job))

    def _deliver(self, job: _Job) -> str:
        action = job.action
        reason = ""
        for attempt in range(action.retries + 1):
            if attempt:
                self._count("retried", job.rule)
                delay = min(self._backoff_s * 2 ** (attempt - 1), self._max_backoff_s)
                if self._stopping.wait(delay):
                    return "dropped"
            reason, final = _post(action.url, job.body, timeout=action.timeout_s)
            if not reason:
                return "delivered"
            if final:
                break
        self._report(f"alert `{job.rule}`: webhook {action.url} failed: {reason}")
        return "failed"

    def _count(self, outcome: str, rule: str) -> None:
        with self._lock:
            self._counts[outcome, rule] += 1

    def _finish(self, job: _Job, outcome: str) -> None:
        with self._idle:
            self._counts[outcome, job.rule] += 1
            self._busy -= 1
            self._idle.notify_all()


def _post(url: str, body: bytes, *, timeout: float) -> tuple[str, bool]:
    """POST `body`; ("", _) on a 2xx answer, else (why, whether retrying is pointless)."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "kanal-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return "", False
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}", exc.code in NOT_RETRIED
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason), False


__all__ = ["DEFAULT_QUEUE_SIZE", "WebhookSender"]
