"""Policy into the kernel, the way a cluster does it: the lab writes the datastore, one
`kanal agent` per node enforces it.

```
state documents + placement + addresses ──► store_documents ──► diff old/new ──► one store write
                                            (Pods with spec.nodeName         (apply, or delete)
                                             and status.podIP, lab Nodes)          │ revision R
AgentFleet: one `kanal agent --node N --netns <node netns>` per node  ◄──watch─────┘
  wait(R): every agent's /status says applied_revision >= R ──► NodeUpdate per node
```

The store holds what the engine must see (`LabPlan.manifests`): every pod with its node and lab
address, the lab's nodes with their underlay address and labels, namespaces and policies as
written. `Lab` documents stay in the lab's state (they describe the machine, not the cluster).
The lab writes only the difference between its previous and its new documents, so objects put
into the store with `kanal apply` directly are enforced too and left alone.

Agents run detached (their own session), listen on 127.0.0.1:9099 in their node's netns, log
to `agent-<node>.log` in the state directory and are found again by their `--store` (the
lab's `store.db`) when their PIDs are lost. There is no other enforcement path: the previous
direct loader (render in the lab process, load per command) is gone, because two writers of one
table would fight, and the agent does everything it did (whole loads, deltas, a refused delta
reloaded whole) plus what it could not (restarts without a gap, drift repair).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanal.agent import process
from kanal.agent.client import AgentUnreachable
from kanal.agent.client import status as agent_status
from kanal.agent.http import DEFAULT_PORT
from kanal.agent.process import AgentSpec, AgentStartError
from kanal.errors import DataplaneError, LabError
from kanal.lab.plan import HOST_IFNAME_PREFIX, LabPlan
from kanal.lab.state import Document
from kanal.model.lab import Backend
from kanal.model.objects import Node
from kanal.store.api import Datastore, ObjectRef, Revision
from kanal.store.documents import identify
from kanal.store.sqlite import STORE_FILE, SqliteStore

READY_TIMEOUT_S = 60.0
"""How long `up` waits for agents, and `apply` for the kernel to follow (a busy machine and a
whole-table load at thousands of pods stay well inside)."""

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NodeUpdate:
    """What reached one node's kernel for a change: `kind` is `load` (whole table), `delta`
    (elements) or `unchanged`, as the node's agent reported its sync."""

    node: str
    kind: str
    text: str = ""
    reason: str = ""
    problems: tuple[str, ...] = ()
    """What the node's agent could not render (it drops instead), for the change's warnings."""


# -- what the store holds -------------------------------------------------------------------------


def store_documents(plan: LabPlan, documents: Iterable[Document]) -> dict[ObjectRef, Doc]:
    """The store's objects for `plan`: raw namespaces and policies, pods with their node and
    address, and one Node per lab node (declared Node documents lend their labels)."""
    by_key = {p.key: p for p in plan.pods}
    found: dict[ObjectRef, Doc] = {}
    for document in documents:
        if document.kind in ("Lab", "Node"):
            continue
        raw = copy.deepcopy(document.raw)
        if document.kind == "Pod":
            placed = by_key[f"{document.namespace}/{document.name}"]
            raw.setdefault("spec", {})["nodeName"] = placed.node
            raw["status"] = {"podIP": str(placed.ip)}
        ref = identify(raw)
        assert ref is not None, f"{document.display()} was validated, so it has a key"
        found[ref] = raw
    for node in plan.manifests.nodes:
        found[ObjectRef("Node", "", node.name)] = node_document(node)
    return found


def node_document(node: Node) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": dict(node.labels)},
        "status": {"addresses": [{"type": "InternalIP", "address": str(ip)} for ip in node.ips]},
    }


def write_changes(
    store: Datastore, old: Mapping[ObjectRef, Doc], new: Mapping[ObjectRef, Doc]
) -> Revision | None:
    """Store what differs from `old` to `new` (objects of both that are equal stay untouched);
    the revision to wait for, None when nothing changed."""
    puts = [(f"lab: {ref}", doc) for ref, doc in new.items() if old.get(ref) != doc]
    gone = [ref for ref in old if ref not in new]
    revision: Revision | None = None
    if puts:
        result = store.apply(puts)
        if any(w.outcome.changes for w in result.objects):
            revision = result.revision
    if gone:
        result = store.delete(gone, missing_ok=True)
        if result.objects:
            revision = result.revision
    return revision


def open_store(directory: Path) -> SqliteStore:
    return SqliteStore(directory / STORE_FILE)


# -- the agents -----------------------------------------------------------------------------------


class AgentFleet:
    """The agents of one lab, one per node (see the module docstring)."""

    def __init__(self, directory: Path, *, port: int = DEFAULT_PORT) -> None:
        self.directory = directory
        self.port = port

    @property
    def store_path(self) -> Path:
        return self.directory / STORE_FILE

    def log(self, node: str) -> Path:
        return self.directory / f"agent-{node}.log"

    def spec(self, plan: LabPlan, node: str, *, log_group: int | None = None) -> AgentSpec:
        """`log_group`: the NFLOG group the node's table logs verdicts to (flow collectors
        listen on it); None: no logging."""
        vxlan = "4789" if plan.spec.backend is Backend.VXLAN else "0"
        logging = ("--log-group", str(log_group)) if log_group is not None else ()
        return AgentSpec(node, self.store_path, plan.node(node).netns, self.port,
                         extra=("--vxlan-port", vxlan, "--pod-interfaces", HOST_IFNAME_PREFIX,
                                *logging))

    def start(
        self, plan: LabPlan, nodes: Sequence[str], *, log_group: int | None = None
    ) -> dict[str, int]:
        """Spawn the agents of `nodes` (not waiting: see `wait`); node -> PID."""
        started = {}
        for node in nodes:
            try:
                spec = self.spec(plan, node, log_group=log_group)
                started[node] = process.spawn(spec, self.log(node))
            except OSError as exc:
                self.stop(started.values())
                raise LabError(f"cannot start the agent of node `{node}`: {exc}") from exc
        return started

    def wait(
        self, plan: LabPlan, pids: Mapping[str, int], revision: int | None,
        *, nodes: Sequence[str] | None = None, timeout: float | None = None,
    ) -> list[NodeUpdate]:
        """Until the agent of every node (of `nodes`, default all) is ready and (with
        `revision`) has applied it, for at most `timeout` (default `READY_TIMEOUT_S`, read
        at the call); what each did."""
        deadline = time.monotonic() + (READY_TIMEOUT_S if timeout is None else timeout)
        updates = []
        for node in plan.spec.nodes if nodes is None else nodes:
            pid = pids.get(node)
            if pid is None:
                raise LabError(f"node `{node}` has no agent: `kanal lab down`, then up again")
            spec = self.spec(plan, node)
            try:
                found = process.wait_ready(spec, pid, self.log(node), revision=revision,
                                           timeout=max(1.0, deadline - time.monotonic()))
            except AgentStartError as exc:
                raise LabError(f"{exc}\nthe store holds the change; the kernel of node "
                               f"`{node}` follows once its agent runs") from exc
            updates.append(_update(node, found, revision))
        return updates

    def status(self, plan: LabPlan, node: str) -> dict[str, Any] | None:
        """The agent's /status, or None when it does not answer."""
        try:
            found: dict[str, Any] = agent_status(netns=plan.node(node).netns, port=self.port,
                                                 timeout=1.0)
        except (AgentUnreachable, DataplaneError, ValueError):
            return None
        return found

    def stop(self, pids: Iterable[int], *, strays: bool = False) -> list[int]:
        """SIGTERM (then SIGKILL) `pids` that are this lab's agents, and with `strays` every
        agent of this lab's store; the PIDs signalled."""
        mine = process.owned_by(self.store_path, list(pids))
        if strays:
            mine = sorted({*mine, *self.strays()})
        return process.stop(mine)

    def strays(self) -> list[int]:
        return process.owned_by(self.store_path)


def _update(node: str, status: Mapping[str, Any], revision: int | None) -> NodeUpdate:
    """The first sync in the agent's recent history that reached `revision`."""
    problems = tuple(str(p) for p in status.get("problems", []))
    if revision is None:
        return NodeUpdate(node, "unchanged", problems=problems)
    history = status.get("history") or []
    reached = [s for s in history if s.get("revision", 0) >= revision]
    sync = reached[0] if reached else status.get("last_sync") or {}
    return NodeUpdate(node, str(sync.get("kind", "unchanged")), "", str(sync.get("reason", "")),
                      problems)


__all__ = [
    "AgentFleet",
    "NodeUpdate",
    "node_document",
    "open_store",
    "store_documents",
    "write_changes",
]
