"""The node agent: watch the datastore, feed the engine incrementally, render this node's table,
and apply the difference to its kernel in one transaction per batch (see `kanal.agent.agent`).

```
runner.py       BoundedFrequencyRunner: min interval, coalescing, backoff, periodic resync
feed.py         EngineFeed: store events -> PolicyEngine updates, unreadable documents kept aside
incremental.py  SetPatcher: a remote pod's change patched into the sets without a re-render
local.py        LocalPatcher: a local pod's change patched (sets + verdict maps) while the
                node's structure stays (its chains come from kanal.render.partial)
agent.py        NodeAgent: the pipeline, fail-closed rules, status
dataplane.py    Dataplane protocol and the libnftables implementation
metrics.py      Prometheus text exposition (kanal_agent_*)
http.py         /healthz /readyz /metrics /status on 127.0.0.1 in the node's netns
client.py       reading those endpoints from another netns (lab, tests, benchmark)
main.py         the process: wiring, loop, signals (`kanal agent`)
```
"""

from kanal.agent.agent import AgentStatus, NodeAgent, SyncError, SyncReport
from kanal.agent.dataplane import Dataplane, KernelTable, NftDataplane
from kanal.agent.runner import BoundedFrequencyRunner, RunnerConfig, SyncKind

__all__ = [
    "AgentStatus",
    "BoundedFrequencyRunner",
    "Dataplane",
    "KernelTable",
    "NftDataplane",
    "NodeAgent",
    "RunnerConfig",
    "SyncError",
    "SyncKind",
    "SyncReport",
]
