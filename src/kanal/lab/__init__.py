"""`kanal lab`: the cluster network built for real on one machine from network namespaces.

`kanal.lab.lab.Lab` is the composition root (one method per command); `plan` (pure topology and
addresses), `state` (what a running lab remembers), `build` (netns, links, server processes),
`enforce` (rulesets into each node), `probe` (real connections against the engine's matrix);
`servers`, `prober` and `sctp` are the traffic ends.

Nothing is imported here: `python -m kanal.lab.servers` starts one process per node, and must not
pay for the engine and the renderer.
"""
