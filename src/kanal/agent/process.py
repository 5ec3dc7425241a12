"""Agent processes: start `kanal agent` detached, wait until it is ready, stop it.

For whoever runs agents on one machine (the lab, the kernel tests, the benchmark). A process is
started with `posix_spawn` in its own session (it outlives the command that started it, like
the lab's pod servers), its output appended to a log file, and found again by its command line
(`owned_by`), so a lost PID does not leave an agent running.

This module does not decide which agents should run; it only starts, finds and stops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanal.errors import DataplaneError

from .client import AgentUnreachable
from .client import status as fetch_status
from .http import DEFAULT_PORT

LAUNCHER = "import sys; from kanal.cli.main import main; sys.exit(main())"
"""`python -c LAUNCHER agent ...` runs the CLI from this interpreter's environment, whatever
PATH says (the `kanal` script may not be on it under sudo or in tests)."""
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent's command line: `extra` are further `kanal agent` options."""

    node: str
    store: Path
    netns: str | None = None
    port: int = DEFAULT_PORT
    extra: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        argv = [sys.executable, "-c", LAUNCHER, "agent", "--node", self.node,
                "--store", str(self.store), "--port", str(self.port)]
        if self.netns is not None:
            argv += ["--netns", self.netns]
        return [*argv, *self.extra]


class AgentStartError(Exception):
    """An agent exited or did not become ready in time; the message ends with its log."""


def spawn(spec: AgentSpec, log: Path) -> int:
    """Start the agent detached, stdout and stderr appended to `log`; its PID."""
    return spawn_detached(spec.argv(), log)


def spawn_detached(argv: Sequence[str], log: Path, *, truncate: bool = False) -> int:
    """Start `argv` in its own session, stdin from /dev/null, stdout and stderr appended to
    `log` (`truncate`: written afresh); its PID (also for the lab's other long-running
    processes: pod servers, flow collectors)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    mode = os.O_TRUNC if truncate else os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | mode, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], list(argv), os.environ, file_actions=actions, setsid=True)


@dataclass(frozen=True, slots=True)
class NotReady:
    """Why `wait_ready_files` gave up: a process that exited first, or those still not ready."""

    exited: str | None = None
    late: tuple[str, ...] = ()


def wait_ready_files(
    started: Mapping[str, int], ready_file: Callable[[str], Path], *, timeout: float
) -> NotReady | None:
    """Wait until every started process (name -> PID) has written its ready file; None when
    all did, else why not (the caller words the error: it knows what the processes are)."""
    deadline = time.monotonic() + timeout
    waiting = dict(started)
    while waiting:
        for name, pid in list(waiting.items()):
            if ready_file(name).exists():
                del waiting[name]
            elif not alive(pid):
                return NotReady(exited=name)
        if waiting and time.monotonic() > deadline:
            return NotReady(late=tuple(waiting))
        time.sleep(0.01)
    return None


def wait_ready(
    spec: AgentSpec, pid: int, log: Path, *, timeout: float = 30.0, revision: int | None = None
) -> dict[str, Any]:
    """Poll the agent's /status until it is ready (and, with `revision`, has applied at least
    that revision); its status. AgentStartError if it exits or the time is up."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        if not alive(pid):
            raise AgentStartError(f"the agent of node `{spec.node}` exited: {tail(log)}")
        try:
            found = fetch_status(netns=spec.netns, port=spec.port, timeout=1.0)
        except (AgentUnreachable, DataplaneError, ValueError) as exc:
            last = str(exc)
        else:
            applied = found.get("applied_revision")
            if found.get("ready") and (revision is None or (applied or 0) >= revision):
                return dict(found)
            last = found.get("last_error") or f"applied revision {applied}"
        if time.monotonic() > deadline:
            raise AgentStartError(
                f"the agent of node `{spec.node}` is not ready after {timeout:.0f} s "
                f"({last}): {tail(log)}"
            )
        time.sleep(0.01)


def stop(pids: Iterable[int], *, timeout: float = STOP_TIMEOUT_S) -> list[int]:
    """SIGTERM, wait, SIGKILL what is left; the PIDs signalled."""
    targets = [pid for pid in pids if alive(pid)]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in targets) and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in targets:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap_blocking(pid)
    return targets


def owned_by(store: Path, pids: Sequence[int] | None = None) -> list[int]:
    """Running agents whose `--store` is `store` (by their command line)."""
    candidates = pids if pids is not None else all_pids()
    return [pid for pid in candidates if _store_of(pid) == str(store) and alive(pid)]


def all_pids() -> list[int]:
    """Every process of the machine's PID namespace."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] once it is gone): how the lab finds what it started."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _store_of(pid: int) -> str | None:
    argv = cmdline(pid)
    if LAUNCHER not in argv or "agent" not in argv or "--store" not in argv:
        return None
    index = argv.index("--store") + 1
    return argv[index] if index < len(argv) else None


def alive(pid: int) -> bool:
    """Running (our own exited child is reaped and counts as gone; so does a zombie)."""
    if reap(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        # Dead. If it is our child, collect it: a killed multi-threaded process shows `Z`
        # before waitpid may report it (its other threads are still exiting), so wait.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return False
    return True


def reap(pid: int) -> bool:
    """Collect `pid` if it is our exited child; True if it was."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _reap_blocking(pid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return " | ".join(text.splitlines()[-lines:]) if text else "(empty log)"


__all__ = [
    "LAUNCHER",
    "AgentSpec",
    "AgentStartError",
    "NotReady",
    "alive",
    "owned_by",
    "reap",
    "spawn",
    "spawn_detached",
    "stop",
    "tail",
    "wait_ready",
]
