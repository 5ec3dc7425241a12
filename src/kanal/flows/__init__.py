"""Flow analytics: every connection the kernel judged, with pod names and the deciding rule.

```
kernel (node netns)          flows
  NFLOG group N ──────────► nflog.NflogSocket ─┐        (netlink.py: raw sockets, framing;
  ctnetlink NEW/DESTROY ──► conntrack.*       ─┤         packets.py: the five-tuple)
                                                ▼
                         pipeline.FlowPipeline ──attribute.Attributor (log table + engine,──►
                                                  steps.DecidingSteps: one walk per kind)
                         records.FlowRecord ──► store.FlowStore (SQLite: tables.py, filters.py)
                                                   │
                 kanal flows / stats / graph ◄─────┘  stats.py, graph.py (pure)
```

`collector` is the per-node process (`python -m kanal.flows.collector`) that wires it;
`source` reads the manifests it attributes with; `hubble` reads and writes Hubble's JSON flows
(`kanal flows import --format hubble`, `-o hubble`). Nothing is imported here.
"""
