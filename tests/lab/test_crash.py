"""An agent killed with SIGKILL while probes run: what may and may not get through.

The cluster: x/client and x/other on node-1, x/server on node-2 behind `x/guard`, which admits
only x/client. Probes run continuously from a thread, client -> server and other -> server.
Then node-2's agent (the one enforcing the server's ingress) is killed with `kill -9`, the guard
is changed in the store to deny everything, and the agent is started again.

What the kernel can promise, and what is asserted:

- **No gap, ever.** other -> server is denied by the old and by the new policy: not one of its
  probes may succeed, not while the agent is dead and not while the new agent replaces the
  table. A restart that flushed the table first, or a crash that took it along, would let one
  through.
- **The new policy holds once applied.** Probes of client -> server that start after the
  restarted agent reports the new revision applied must all fail.
- **In between, the old policy holds.** While no agent runs, nothing can apply the change: the
  kernel keeps the last table it was given, so client -> server is still admitted by the old
  rule. The test checks that this is what happens (the old table is in force, not none), rather
  than pretending a dead agent could enforce a policy it never saw. This is the same contract as
  Calico's Felix: the dataplane keeps its last programmed state while the agent is down.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from kanal.agent.process import alive
from kanal.lab.enforce import open_store
from kanal.lab.prober import Probe, probe
from kanal.model.objects import Protocol

from .docs import lab, namespace, pod, policy
from .running import running_lab

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

DOCS = [
    namespace("x", ns="x"),
    pod("x/client", node="node-1", ports=((80, "TCP"),), role="client"),
    pod("x/other", node="node-1", ports=((80, "TCP"),), role="other"),
    pod("x/server", node="node-2", ports=((80, "TCP"),), role="server"),
    policy("x/guard", {
        "podSelector": {"matchLabels": {"role": "server"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
    }),
    lab(backend="vxlan"),
]
DENY_ALL = policy("x/guard", {"podSelector": {"matchLabels": {"role": "server"}}, "ingress": []})
PROBE_TIMEOUT_S = 0.2
PROBES = 5
"""Client probes in each phase (before, while dead, after), at least."""


@dataclass(frozen=True)
class Attempt:
    source: str
    started: float
    connected: bool


class Prober:
    """Probes `sources` (name -> netns) -> `ip`:80/TCP round-robin from a thread until
    stopped, recording when each attempt started and whether it connected."""

    def __init__(self, sources: dict[str, str], ip: IPv4Address) -> None:
        self.sources = sources
        self.ip = ip
        self.attempts: list[Attempt] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for name, netns in self.sources.items():
                started = time.monotonic()
                target = Probe(netns, self.ip, 80, Protocol.TCP)
                result = probe(target, timeout_s=PROBE_TIMEOUT_S)
                self.attempts.append(Attempt(name, started, result.connected))

    def wait_for(self, source: str, start: float, count: int) -> None:
        """Until `count` probes from `source` started after `start` (generous deadline)."""
        deadline = time.monotonic() + 60
        while len(self.between(source, start)) < count:
            assert time.monotonic() < deadline, f"fewer than {count} probes from {source}"
            time.sleep(0.05)

    def between(self, source: str, start: float, end: float = float("inf")) -> list[bool]:
        return [
            a.connected for a in self.attempts if a.source == source and start <= a.started < end
        ]


def test_kill_9_then_a_policy_change_then_a_restart_never_opens_the_table(
    netns_prefix: str, tmp_path: Path
) -> None:
    with running_lab(netns_prefix, tmp_path, DOCS) as running:
        server = running.pod("x/server")
        prober = Prober(
            {"client": running.pod("x/client").netns, "other": running.pod("x/other").netns},
            IPv4Address(server.ip),
        )
        prober.thread.start()
        try:
            prober.wait_for("client", 0.0, PROBES)
            node = next(n for n in running.lab.status().nodes if n.name == "node-2")
            assert node.agent_pid is not None
            killed = time.monotonic()
            _kill_9(node.agent_pid)
            with open_store(running.state_dir) as store:
                store.apply([("guard.yaml", DENY_ALL)])
            changed = time.monotonic()
            prober.wait_for("client", changed, PROBES)  # no agent: the change is only stored
            restarting = time.monotonic()
            started = running.lab.start_agents()
            ready = time.monotonic()
            running.server_pids |= set(started.values())
            prober.wait_for("client", ready, PROBES)
        finally:
            prober.stop.set()
            prober.thread.join(10)
        assert list(started) == ["node-2"]

        assert not any(prober.between("other", 0.0)), "a probe the policy denies got through"
        before = prober.between("client", 0.0, killed)
        dead = prober.between("client", changed, restarting)
        after = prober.between("client", ready)
        assert before and all(before), "the old policy admitted the client before the crash"
        assert dead and all(dead), "while the agent is dead, the old table stays in force"
        assert len(after) >= PROBES and not any(after), "the new policy holds once applied"
        status = running.lab.status().nodes[1].agent
        assert status is not None
        assert status["history"][0]["reason"].startswith("first load, replacing the table found")


def _kill_9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, "the killed agent did not go away"
        time.sleep(0.01)
