"""Lab: the composition root of `kanal lab`, one method per command.

```
-f paths ──► read_documents ──► documents ∪ state ──► parse_union (validate) ──► plan_lab
                                  (state.py)                                    (plan.py: nodes,
                                                                                  pods, IPAM)
             ┌─────────────────────────────────────────────────────────────────────┘
             ▼
   store_documents(plan) ──► write_changes ──► store.db ──watch──► one `kanal agent` per node
                                                 revision R         (enforce.py: AgentFleet)
                                                     │ └─watch──► flows on: one flow collector
                                                     │            per node ──► flows.db
                                                     │            (collectors.py: CollectorFleet)
   plan_change(old plan, new plan) ──► build_fabric / add_pods / remove_pods / rewire (build.py)
                                   ──► ServerFleet.start/stop                          (build.py)
   probe: engine of the store + plan ──► run_probes (probe.py) ──► measured vs compute_matrix
```

Everything is computed and validated before the kernel is touched, so a rejected input (invalid
manifests, an unknown node, an exhausted block) changes nothing. The state is saved before the
kernel changes (addresses before they are plumbed). Order of a change: pods that go are
unplugged, the store is written, every agent reports the new revision applied, and only then are
new pods plugged in, so a pod is enforced from its first packet. A failed `up` removes what it
built; a failed `apply`/`delete` (an agent that does not apply the new revision in time, a
link that cannot be made) records phase `failed` and why in the state, which `status` shows,
and further changes are refused until the lab is rebuilt (`down` always works); a command killed
half-way leaves phase `changing`.

The store is the agents' only input: `kanal apply/label/delete` on the lab's `store.db` are
enforced like lab changes, and `probe` predicts from the store's objects (what the agents
enforce) on the pods the lab built.

Flows: `up(flows=True)` (the command's default; `--no-flows` and the API's default leave them
off, so tests and benchmarks that do not look at flows do not pay a collector per node) starts
the agents with a log group and one flow collector per node before any pod is plugged in, so
every pod's first connection is recorded in `flows.db`. A collector that died is restarted by
the next change, like an agent (a failure to restart it is a warning: flows are observation,
the change itself is enforced); `down` stops them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kanal.dataplane.netns import list_netns
from kanal.dataplane.nft import Nft, count_table
from kanal.engine import PolicyEngine
from kanal.engine.matrix import declared_probes
from kanal.errors import DataplaneError, KanalError, LabError, NotFoundError
from kanal.ipam import IpamState
from kanal.lab import build
from kanal.lab.collectors import LOG_GROUP, CollectorFleet
from kanal.lab.enforce import (
    AgentFleet,
    NodeUpdate,
    open_store,
    store_documents,
    write_changes,
)
from kanal.lab.plan import LabPlan, PlanChange, default_prefix, plan_change, plan_lab
from kanal.lab.probe import (
    DEFAULT_PARALLELISM,
    DEFAULT_TIMEOUT_S,
    PodTarget,
    ProbeReport,
    run_probes,
)
from kanal.lab.state import Document, LabState, Phase, StateStore, parse_union, read_documents
from kanal.model.lab import Backend, IpamMode, LabSpec
from kanal.model.objects import Protocol
from kanal.store.api import Doc, ObjectRef


@dataclass(frozen=True)
class LabChange:
    """What `up`, `apply` or `delete` did, for the CLI to report."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    updates: tuple[NodeUpdate, ...] = ()
    restarted: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class NodeStatus:
    name: str
    netns: str
    underlay_ip: str
    vtep_ip: str | None
    pod_cidr: str | None
    pods: int
    server_pid: int | None
    server_running: bool
    ruleset: dict[str, int] | None
    """Counted in the kernel's table (None: no table there)."""
    agent_pid: int | None = None
    agent: dict[str, Any] | None = None
    """The agent's /status (health, readiness, revisions, last sync); None: no answer."""
    collector: dict[str, Any] | None = None
    """`pid`, `running` and `records` (flow records it wrote; None: the database cannot be
    read) of the node's flow collector; None: the lab has no flows."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "netns": self.netns,
            "underlay_ip": self.underlay_ip,
            "vtep_ip": self.vtep_ip,
            "pod_cidr": self.pod_cidr,
            "pods": self.pods,
            "server": {"pid": self.server_pid, "running": self.server_running},
            "agent": {
                "pid": self.agent_pid,
                "running": self.agent is not None,
                **(self.agent or {}),
            },
            "ruleset": self.ruleset,
            "collector": self.collector,
        }


@dataclass(frozen=True)
class PodStatus:
    name: str
    ip: str
    node: str
    netns: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ip": self.ip, "node": self.node}


@dataclass(frozen=True)
class LabStatus:
    name: str
    prefix: str
    state_dir: str
    phase: str
    backend: str
    ipam: str
    cluster_cidr: str
    nodes: tuple[NodeStatus, ...]
    pods: tuple[PodStatus, ...]
    problems: tuple[str, ...] = field(default=())
    flows_db: str | None = None
    """The flow database the collectors write; None: the lab has no flows."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "state_dir": self.state_dir,
            "phase": self.phase,
            "backend": self.backend,
            "ipam": self.ipam,
            "cluster_cidr": self.cluster_cidr,
            "nodes": [n.to_json() for n in self.nodes],
            "pods": [p.to_json() for p in self.pods],
            "flows": {"enabled": self.flows_db is not None, "db": self.flows_db},
            "problems": list(self.problems),
        }


class Lab:
    """One lab, identified by its state directory (`prefix` overrides the name prefix for `up`,
    and for `down` also removes namespaces with that prefix when the state is lost)."""

    def __init__(self, state_dir: Path, *, prefix: str | None = None) -> None:
        if prefix is not None:
            _check_prefix(prefix)
        self.store = StateStore(state_dir)
        self.prefix = prefix
        self.fleet = build.ServerFleet(state_dir)
        self.agents = AgentFleet(state_dir)
        self.collectors = CollectorFleet(state_dir)

    # -- up ---------------------------------------------------------------------------------------

    def up(
        self, paths: Sequence[str], *, stdin: TextIO | None = None, flows: bool = False
    ) -> LabChange:
        """Build the lab; with `flows`, a flow collector per node records every connection."""
        with self.store.locked():
            return self._up(paths, stdin=stdin, flows=flows)

    def _up(self, paths: Sequence[str], *, stdin: TextIO | None, flows: bool) -> LabChange:
        start = time.monotonic()
        if self.store.exists():
            raise LabError(
                f"a lab is already up with its state in `{self.store.directory}`: run "
                "`kanal lab down` first, or use another --state-dir"
            )
        manifests, documents = read_documents(paths, stdin=stdin)
        spec = manifests.lab or LabSpec()
        prefix = self.prefix or default_prefix(spec.name)
        _check_prefix(prefix)
        _check_no_leftovers(prefix)
        labs = [d.raw for d in documents if d.kind == "Lab"]
        state = LabState(prefix, labs[0] if labs else None, _by_key(documents), flows=flows)
        plan = self._plan(state, IpamState())
        engine = _engine(plan)
        state.placement, state.ipam = plan.placement, plan.ipam
        self.store.save(state)  # the prefix and the addresses, before the kernel is touched
        try:
            updates = self._build(state, plan)
        except BaseException as exc:
            with contextlib.suppress(KanalError, OSError):
                self._teardown(state)
            if isinstance(exc, KanalError | OSError):
                raise LabError(
                    f"building lab `{spec.name}` failed, removed what was built: {exc}"
                ) from exc
            raise
        return LabChange(
            added=tuple(p.key for p in plan.pods),
            updates=tuple(updates),
            notes=(*manifests.notes, *plan.notes),
            warnings=(*engine.warnings(), *_problems(updates)),
            elapsed_s=time.monotonic() - start,
        )

    def _build(self, state: LabState, plan: LabPlan) -> list[NodeUpdate]:
        """Fabric, store, agents (every node's table in), flow collectors (listening), then
        pods and their servers."""
        build.build_fabric(plan)
        with open_store(self.store.directory) as store:
            write_changes(store, {}, store_documents(plan, state.documents.values()))
            revision = store.revision()
        state.agents = self.agents.start(plan, plan.spec.nodes, log_group=_log_group(state))
        self.store.save(state)
        updates = self.agents.wait(plan, state.agents, revision)
        if state.flows:
            state.collectors = self.collectors.start(plan, plan.spec.nodes)
            self.store.save(state)
        build.add_pods(plan, plan.pods, peer_routes=False)  # build_fabric routed them
        state.servers = self.fleet.start(plan, plan.spec.nodes)
        state.phase = Phase.UP
        self.store.save(state)
        return updates

    # -- apply / delete ---------------------------------------------------------------------------

    def apply(self, paths: Sequence[str], *, stdin: TextIO | None = None) -> LabChange:
        """Add or replace objects (by kind, namespace and name), as `kubectl apply`."""
        with self.store.locked():
            return self._apply(paths, stdin=stdin)

    def _apply(self, paths: Sequence[str], *, stdin: TextIO | None) -> LabChange:
        state = self._running()
        manifests, documents = read_documents(paths, stdin=stdin)
        if manifests.lab is not None and manifests.lab != state.spec():
            raise LabError(
                f"the Lab cannot change while it runs (`{manifests.lab.name}` differs from the "
                "running one): `kanal lab down`, then `up` with the new Lab"
            )
        merged = dict(state.documents)
        merged.update(_by_key(documents))
        return self._change(state, merged, notes=manifests.notes)

    def delete(self, paths: Sequence[str], *, stdin: TextIO | None = None) -> LabChange:
        """Remove the objects the documents name; a Namespace takes its pods and policies
        with it, as in Kubernetes."""
        with self.store.locked():
            return self._delete(paths, stdin=stdin)

    def _delete(self, paths: Sequence[str], *, stdin: TextIO | None) -> LabChange:
        state = self._running()
        manifests, documents = read_documents(paths, stdin=stdin)
        merged = dict(state.documents)
        notes = list(manifests.notes)
        for doc in documents:
            if doc.kind == "Lab":
                notes.append("the Lab itself is removed by `kanal lab down`, not by delete")
                continue
            gone = [doc.key] if doc.key in merged else []
            if doc.kind == "Namespace":  # also one only its pods or policies made implicit
                gone += [k for k, d in merged.items() if d.namespace == doc.name]
            if not gone:
                notes.append(f"{doc.display()} is not in the lab: nothing to delete")
            for key in gone:
                del merged[key]
        return self._change(state, merged, notes=tuple(notes))

    def _change(
        self, state: LabState, documents: dict[str, Document], *, notes: Sequence[str]
    ) -> LabChange:
        start = time.monotonic()
        spec = state.spec()
        old_plan = self._plan(state, state.ipam)
        new_plan = plan_lab(
            spec,
            state.prefix,
            parse_union(documents.values()),
            placement=state.placement,
            ipam=state.ipam,
        )
        engine = _engine(new_plan)
        change = plan_change(old_plan, new_plan)
        stored = (
            store_documents(old_plan, state.documents.values()),
            store_documents(new_plan, documents.values()),
        )
        restarted = self._restart_dead_agents(state, old_plan)  # a supervisor's job
        collectors, failed = self._restart_dead_collectors(state, old_plan)
        notes = [
            *notes,
            *(f"restarted the agent of node `{n}`: it was not running" for n in restarted),
            *(f"restarted the flow collector of node `{n}`: it was not running"
              for n in collectors),
        ]
        # Everything is validated: from here on, the kernel changes.
        state.documents = documents
        state.placement, state.ipam = new_plan.placement, new_plan.ipam
        state.phase = Phase.CHANGING
        self.store.save(state)
        try:
            updates = self._reconcile(state, (old_plan, new_plan), change, stored)
        except Exception as exc:
            failure = f"changing lab `{spec.name}` failed half-way: {exc}"
            self._record_failure(state, failure)
            if not isinstance(exc, KanalError):
                raise  # a bug: its traceback, after the state says so
            raise LabError(
                f"{failure}\nthe lab is now `failed` (`kanal lab status` says why): "
                "`kanal lab down`, then `kanal lab up` again"
            ) from exc
        return LabChange(
            added=tuple(p.key for p in change.added),
            removed=tuple(p.key for p in change.removed),
            updates=tuple(updates),
            restarted=change.servers,
            notes=(*notes, *new_plan.notes),
            warnings=(*engine.warnings(), *_problems(updates), *failed),
            elapsed_s=time.monotonic() - start,
        )

    def _reconcile(
        self,
        state: LabState,
        plans: tuple[LabPlan, LabPlan],
        change: PlanChange,
        stored: tuple[dict[ObjectRef, Doc], dict[ObjectRef, Doc]],
    ) -> list[NodeUpdate]:
        """Servers off where pods change, removed pods out, the store written and every agent
        caught up (so added pods are enforced from their first packet), added pods wired,
        servers back on."""
        old_plan, new_plan = plans
        stopping = [state.servers.pop(n) for n in change.servers if n in state.servers]
        self.fleet.stop(stopping)
        build.remove_pods(old_plan, change.removed)
        with open_store(self.store.directory) as store:
            revision = write_changes(store, *stored)
        updates = self.agents.wait(new_plan, state.agents, revision)
        namespace_ipam = new_plan.spec.ipam is IpamMode.NAMESPACE
        build.add_pods(new_plan, change.added, peer_routes=namespace_ipam)
        state.servers.update(self.fleet.start(new_plan, change.servers))
        state.phase = Phase.UP
        self.store.save(state)
        return updates

    def _record_failure(self, state: LabState, failure: str) -> None:
        """Phase `failed` and why, in the state file (best effort: the error is raised anyway,
        and a state that cannot be written stays `changing`, which is refused the same way)."""
        state.phase, state.failure = Phase.FAILED, failure
        with contextlib.suppress(OSError):
            self.store.save(state)

    def start_agents(self) -> dict[str, int]:
        """Start the agent of every node whose agent is not running (after a crash or a
        `kill`), and wait until each has replaced its node's table; node -> new PID."""
        with self.store.locked():
            state = self._loaded()
            return self._restart_dead_agents(state, self._plan(state, state.ipam))

    def _restart_dead_agents(self, state: LabState, plan: LabPlan) -> dict[str, int]:
        running = set(self.agents.strays())
        dead = [n for n in plan.spec.nodes if state.agents.get(n) not in running]
        if not dead:
            return {}
        started = self.agents.start(plan, dead, log_group=_log_group(state))
        state.agents.update(started)
        self.store.save(state)
        with open_store(self.store.directory) as store:
            revision = store.revision()
        self.agents.wait(plan, started, revision, nodes=list(started))
        return started

    def start_collectors(self) -> dict[str, int]:
        """Start the flow collector of every node whose collector is not running; node -> new
        PID (nothing for a lab without flows). LabError if one cannot start."""
        with self.store.locked():
            state = self._loaded()
            started, failed = self._restart_dead_collectors(state, self._plan(state, state.ipam))
            if failed:
                raise LabError("\n".join(failed))
            return started

    def _restart_dead_collectors(
        self, state: LabState, plan: LabPlan
    ) -> tuple[dict[str, int], list[str]]:
        """Restart dead collectors (flows on only); node -> PID, and what failed, in words."""
        if not state.flows:
            return {}, []
        running = self.collectors.running(state.collectors)
        dead = [n for n in plan.spec.nodes if not running.get(n, False)]
        started: dict[str, int] = {}
        failed = []
        for node in dead:
            try:
                started.update(self.collectors.start(plan, [node]))
            except LabError as exc:
                failed.append(f"node `{node}`: its flow collector could not be restarted: {exc}")
        state.collectors.update(started)
        if started:
            self.store.save(state)
        return started, failed

    # -- status / probe / down --------------------------------------------------------------

    def status(self) -> LabStatus:
        state = self._loaded()
        plan = self._plan(state, state.ipam)
        present = set(list_netns(state.prefix))
        found = [f"netns `{n}` is missing" for n in plan.all_netns() if n not in present]
        collectors = self._collector_status(state, [n.name for n in plan.nodes])
        nodes = tuple(self._node_status(plan, state, n.name, present, collectors.get(n.name))
                      for n in plan.nodes)
        found += [f"node `{n.name}`: no table inet kanal" for n in nodes if n.ruleset is None]
        found += [problem for n in nodes for problem in _agent_problems(n)]
        found += [
            f"node `{n.name}`: pod servers not running"
            for n in nodes
            if n.server_pid is not None and not n.server_running
        ]
        found += [
            f"node `{n.name}`: its flow collector is not running (see "
            f"`{self.collectors.log(n.name)}`): the next `kanal lab apply` restarts it"
            for n in nodes
            if n.collector is not None and not n.collector["running"]
        ]
        if state.phase is not Phase.UP:
            found.insert(0, _phase_problem(state))
        pods = tuple(PodStatus(p.key, str(p.ip), p.node, p.netns) for p in plan.pods)
        spec = plan.spec
        return LabStatus(
            name=spec.name,
            prefix=state.prefix,
            state_dir=str(self.store.directory),
            phase=state.phase.value,
            backend=spec.backend.value,
            ipam=spec.ipam.value,
            cluster_cidr=str(spec.cluster_cidr),
            nodes=nodes,
            pods=pods,
            problems=tuple(found),
            flows_db=str(self.collectors.db) if state.flows else None,
        )

    def _collector_status(
        self, state: LabState, nodes: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Node -> its collector's pid (None: none was started), whether it runs, and the
        records it wrote."""
        if not state.flows:
            return {}
        running = self.collectors.running(state.collectors)
        records = self.collectors.records()
        return {
            node: {"pid": state.collectors.get(node), "running": running.get(node, False),
                   "records": None if records is None else records.get(node, 0)}
            for node in nodes
        }

    def _node_status(
        self, plan: LabPlan, state: LabState, name: str, present: set[str],
        collector: dict[str, Any] | None,
    ) -> NodeStatus:
        node = plan.node(name)
        pid = state.servers.get(name)
        vxlan = plan.spec.backend is Backend.VXLAN
        agent = self.agents.status(plan, name) if node.netns in present else None
        return NodeStatus(
            name=name,
            netns=node.netns,
            underlay_ip=str(node.underlay_ip.ip),
            vtep_ip=str(node.vtep_ip) if vxlan else None,
            pod_cidr=str(node.block) if node.block is not None else None,
            pods=len(plan.pods_on(name)),
            server_pid=pid,
            server_running=pid is not None and pid in self.fleet.strays(),
            ruleset=_kernel_counts(node.netns) if node.netns in present else None,
            agent_pid=state.agents.get(name),
            agent=agent,
            collector=collector if state.flows else None,
        )

    def probe(
        self,
        probes: Sequence[tuple[int, Protocol]] = (),
        *,
        sources: Sequence[str] = (),
        destinations: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> ProbeReport:
        """Probe `sources` × `destinations` (default: every pod) on `probes` (default: every
        declared port and protocol)."""
        state = self._running()
        plan = self._plan(state, state.ipam)
        with open_store(self.store.directory) as store:
            engine = PolicyEngine.from_manifests(store.manifests())  # what the agents enforce
        targets = {p.key: PodTarget(p.key, p.netns, p.ip) for p in plan.pods}
        unknown = [k for k in (*sources, *destinations) if k not in targets]
        if unknown:
            raise NotFoundError(
                f"no pod {', '.join(f'`{k}`' for k in unknown)} in lab `{plan.spec.name}`: "
                "see `kanal lab status`"
            )
        chosen = list(probes) or declared_probes(engine)
        if not chosen:
            raise LabError("no pod declares a container port: choose probes with --port N")
        return run_probes(
            engine,
            targets,
            chosen,
            sources=list(sources) or sorted(targets),
            destinations=list(destinations) or sorted(targets),
            timeout_s=timeout_s,
            parallelism=parallelism,
        )

    def down(self) -> build.Teardown:
        """Remove everything; also without state (by `prefix`) and with a damaged one."""
        with self.store.locked():
            return self._down()

    def _down(self) -> build.Teardown:
        state: LabState | None = None
        with contextlib.suppress(LabError):
            state = self.store.load()
        prefixes = sorted({p for p in (self.prefix, state.prefix if state else None) if p})
        pids = list(state.servers.values()) if state else []
        collectors = self.collectors.stop(state.collectors.values() if state else (),
                                          strays=True)
        agents = self.agents.stop(state.agents.values() if state else (), strays=True)
        removed = [build.teardown(p, fleet=self.fleet, pids=pids) for p in prefixes]
        if not prefixes:
            self.fleet.stop([], strays=True)
        self.store.remove()
        stopped = {*collectors, *agents, *(p for r in removed for p in r.processes)}
        return build.Teardown(tuple(n for r in removed for n in r.netns), tuple(sorted(stopped)))

    def _teardown(self, state: LabState) -> None:
        self.collectors.stop(state.collectors.values(), strays=True)
        self.agents.stop(state.agents.values(), strays=True)
        build.teardown(state.prefix, fleet=self.fleet, pids=state.servers.values())
        self.store.remove()

    # -- helpers ----------------------------------------------------------------------------------

    def _loaded(self) -> LabState:
        state = self.store.load()
        if state is None:
            raise LabError(
                f"no lab is up (no state in `{self.store.directory}`): start one with "
                "`kanal lab up -f PATH`"
            )
        return state

    def _running(self) -> LabState:
        state = self._loaded()
        if state.phase is not Phase.UP:
            raise LabError(
                f"the lab is `{state.phase}`, so its kernel state is unknown: `kanal lab down`, "
                f"then `kanal lab up` again\n{_phase_problem(state)}"
            )
        return state

    def _plan(self, state: LabState, ipam: IpamState) -> LabPlan:
        return plan_lab(
            state.spec(), state.prefix, state.manifests(), placement=state.placement, ipam=ipam
        )


def _phase_problem(state: LabState) -> str:
    """Why a lab that is not `up` is not, in words."""
    if state.phase is Phase.FAILED:
        return f"the lab is `failed`: {state.failure or 'a command failed half-way'}"
    return f"the lab is `{state.phase}`: a command did not finish"


def _log_group(state: LabState) -> int | None:
    """The NFLOG group the agents render with: the collectors' with flows, else none."""
    return LOG_GROUP if state.flows else None


def _by_key(documents: Sequence[Document]) -> dict[str, Document]:
    return {d.key: d for d in documents if d.kind != "Lab"}


def _engine(plan: LabPlan) -> PolicyEngine:
    return PolicyEngine.from_manifests(plan.manifests)


def _problems(updates: Sequence[NodeUpdate]) -> list[str]:
    """What the agents could not render (they drop instead), per node."""
    return [f"node `{u.node}`: {p}" for u in updates for p in u.problems]


def _agent_problems(node: NodeStatus) -> list[str]:
    if node.agent is None:
        return [
            f"node `{node.name}`: its agent does not answer (not running?): the kernel "
            "keeps its last table; `kanal lab down`, then up again"
        ]
    found = [f"node `{node.name}`: {p}" for p in node.agent.get("problems", [])]
    if not node.agent.get("healthy", False):
        found.append(f"node `{node.name}`: its agent's loop is stuck")
    if not node.agent.get("ready", False):
        error = node.agent.get("last_error") or "no successful sync yet"
        found.append(f"node `{node.name}`: its agent is not ready ({error})")
    return found


def _check_prefix(prefix: str) -> None:
    if not prefix or "/" in prefix or len(prefix) > 64 or not prefix.isprintable():
        raise LabError(f"invalid name prefix `{prefix}`: 1-64 printable characters, no `/`")


def _check_no_leftovers(prefix: str) -> None:
    found = list_netns(prefix)
    if found:
        shown = ", ".join(f"`{n}`" for n in found[:3]) + (", ..." if len(found) > 3 else "")
        raise LabError(
            f"network namespaces with prefix `{prefix}` exist already ({shown}): another lab "
            f"uses it, or one crashed; remove it with `kanal lab down --prefix {prefix}`"
        )


def _kernel_counts(netns: str) -> dict[str, int] | None:
    """Chains, rules, sets and their elements of the node's `table inet kanal`, as the kernel
    lists them (None when the table is missing)."""
    try:
        with Nft(netns) as nft:
            listed = nft.run_json("list table inet kanal")
    except DataplaneError:
        return None
    return count_table(listed).to_json()


__all__ = ["Lab", "LabChange", "LabStatus", "NodeStatus", "PodStatus"]
