"""The agent process: store, kernel, HTTP and the loop, wired once (what `kanal agent` runs).

```
SqliteStore(path, create=False) ─┐
NftDataplane(netns) ─────────────┼─► NodeAgent ◄── loop (this thread) ──► BoundedFrequencyRunner
AgentMetrics ────────────────────┘      ▲
                                        └── HTTP thread (/healthz /readyz /metrics /status)
loop: wait for store events up to `due_in()` (at most `MAX_WAIT`) ─► feed ─► run_if_due()
SIGTERM / SIGINT ─► stop ─► the loop ends after its current step; the kernel keeps the table
```

Stopping never touches the kernel: the table stays in force with no agent (as after a crash),
and the next agent replaces it atomically. A store that cannot be read (missing file, locked)
is retried every `MAX_WAIT`; nothing is written meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kanal.errors import KanalError
from kanal.render import RenderOptions
from kanal.store.sqlite import SqliteStore

from .agent import NodeAgent, SyncError
from .dataplane import NftDataplane
from .http import DEFAULT_PORT, serving
from .runner import BoundedFrequencyRunner, RunnerConfig

log = logging.getLogger("kanal.agent")

MAX_WAIT = 1.0
"""The loop turns at least this often (for stop requests and the liveness heartbeat)."""


@dataclass(frozen=True)
class AgentConfig:
    node: str
    store_path: Path
    netns: str | None = None
    port: int = DEFAULT_PORT
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    options: RenderOptions = field(default_factory=RenderOptions)
    liveness_timeout: float = 60.0


def run_loop(
    agent: NodeAgent, runner: BoundedFrequencyRunner, stop: threading.Event,
    *, max_wait: float = MAX_WAIT,
) -> None:
    """Wait for changes, sync when due, until `stop` is set."""
    while not stop.is_set():
        agent.heartbeat = time.monotonic()
        try:
            if agent.catch_up(timeout=min(runner.due_in(), max_wait)):
                runner.request()
        except (KanalError, sqlite3.Error) as exc:
            agent.note_store_error(exc)
            stop.wait(max_wait)
            continue
        outcome = runner.run_if_due()
        if outcome is not None and outcome.error is not None:
            log.error("node `%s`: sync failed (%s); the kernel keeps its table, retrying in "
                      "%.2f s", agent.node, outcome.error, outcome.retry_in)


def run(config: AgentConfig, stop: threading.Event) -> None:
    """Run one agent until `stop` is set, or SIGTERM/SIGINT (StoreError at once when the store
    cannot be opened)."""
    store = SqliteStore(config.store_path, create=False)
    try:
        dataplane = NftDataplane(config.netns)
    except BaseException:
        store.close()
        raise
    agent = NodeAgent(config.node, store, dataplane, options=config.options)
    runner = BoundedFrequencyRunner(agent.sync, config.runner, retryable=(SyncError,))
    try:
        with stopped_by_signals(stop), serving(
            agent, port=config.port, netns=config.netns,
            liveness_timeout=config.liveness_timeout,
        ) as server:
            log.info("agent for node `%s` (netns %s) watching %s, serving on 127.0.0.1:%s",
                     config.node, config.netns or "-", config.store_path, server.port)
            run_loop(agent, runner, stop)
    finally:
        dataplane.close()
        store.close()
    log.info("agent for node `%s` stopped; the kernel keeps its table", config.node)


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set `stop` (the previous handlers come back after;
    call from the main thread)."""

    def handler(signum: int, frame: object) -> None:
        del frame
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


__all__ = ["MAX_WAIT", "AgentConfig", "run", "run_loop", "stopped_by_signals"]
