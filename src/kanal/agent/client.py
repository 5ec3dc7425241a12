"""Reading an agent's HTTP endpoints from outside its network namespace (the lab, tests, the
benchmark): the socket is created inside the netns, so 127.0.0.1 is the node's loopback.

This module does not start or stop agents; it only asks them.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from typing import Any

from kanal.dataplane.netns import entered
from kanal.errors import DataplaneError

from .http import DEFAULT_PORT, LOOPBACK


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str


class AgentUnreachable(Exception):  # noqa: N818 - a condition the caller handles, like OSError
    """Nobody answers on the agent's port (not started yet, or dead)."""


def fetch(
    path: str, *, netns: str | None = None, port: int = DEFAULT_PORT, timeout: float = 2.0
) -> Reply:
    """GET `path` from the agent on 127.0.0.1:`port` in `netns`."""
    try:
        sock = _connect(netns, port, timeout)
    except (OSError, DataplaneError) as exc:
        raise AgentUnreachable(f"no agent answers on {_where(netns, port)}: {exc}") from exc
    connection = HTTPConnection(LOOPBACK, port, timeout=timeout)
    connection.sock = sock
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return Reply(response.status, response.read().decode(errors="replace"))
    except (OSError, HTTPException) as exc:
        raise AgentUnreachable(f"the agent on {_where(netns, port)} did not answer: {exc}") from exc
    finally:
        connection.close()


def status(*, netns: str | None = None, port: int = DEFAULT_PORT, timeout: float = 2.0) -> Any:
    """The agent's `/status` document (see `kanal.agent.http`)."""
    reply = fetch("/status", netns=netns, port=port, timeout=timeout)
    if reply.status != 200:
        raise AgentUnreachable(f"/status answered {reply.status} on {_where(netns, port)}")
    return json.loads(reply.body)


def _connect(netns: str | None, port: int, timeout: float) -> socket.socket:
    if netns is None:
        return socket.create_connection((LOOPBACK, port), timeout=timeout)
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((LOOPBACK, port))
    except OSError:
        sock.close()
        raise
    return sock


def _where(netns: str | None, port: int) -> str:
    return f"{LOOPBACK}:{port}" + (f" in netns `{netns}`" if netns else "")


__all__ = ["AgentUnreachable", "Reply", "fetch", "status"]
