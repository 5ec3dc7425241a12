"""Incremental updates give exactly what a from-scratch build gives (Calico's states_for_test idea):
walk the engine through random intermediate clusters, applying each transition's deletes and
upserts in a random order, and compare the derived state and the verdicts with a fresh engine
built from the final cluster alone."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kanal.engine import PolicyEngine
from kanal.engine.matrix import compute_matrix
from kanal.model.objects import Manifests, PodKey, PolicyKey

from .strategies import PROBE_PORTS, clusters

CASES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _transition(engine: PolicyEngine, old: Manifests, new: Manifests, rng: random.Random) -> None:
    ops = []
    new_pods = {p.key for p in new.pods}
    new_pols = {p.key for p in new.policies}
    new_ns = {n.name for n in new.namespaces if n.declared}
    new_anps = {a.name for a in new.admin_policies}
    ops += [lambda k=p.key: engine.delete_pod(PodKey(k)) for p in old.pods if p.key not in new_pods]
    ops += [
        lambda k=p.key: engine.delete_policy(PolicyKey(k))
        for p in old.policies
        if p.key not in new_pols
    ]
    ops += [
        lambda n=n.name: engine.delete_namespace(n) for n in old.namespaces if n.name not in new_ns
    ]
    ops += [
        lambda a=a.name: engine.delete_admin_policy(a)
        for a in old.admin_policies
        if a.name not in new_anps
    ]
    if old.baseline_policy is not None and new.baseline_policy is None:
        ops.append(lambda: engine.delete_admin_policy("default", baseline=True))
    ops += [lambda p=p: engine.upsert_pod(p) for p in new.pods]
    ops += [lambda p=p: engine.upsert_policy(p) for p in new.policies]
    ops += [lambda n=n: engine.upsert_namespace(n) for n in new.namespaces if n.declared]
    ops += [lambda a=a: engine.upsert_admin_policy(a) for a in new.admin_policies]
    if new.baseline_policy is not None:
        ops.append(lambda b=new.baseline_policy: engine.upsert_admin_policy(b))
    ops += [lambda n=n: engine.upsert_node(n) for n in new.nodes]
    rng.shuffle(ops)
    for op in ops:
        op()


def _ask_every_pair(engine: PolicyEngine) -> None:
    keys = sorted(engine.pods())
    for port, proto in PROBE_PORTS:
        for src in keys:
            for dst in keys:
                engine.allowed(engine.connection(src, dst, port, proto))


@CASES
@given(st.lists(clusters(), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_any_path_to_a_cluster_gives_the_from_scratch_state(
    path: list[Manifests], rng: random.Random
) -> None:
    final = path[-1]
    engine = PolicyEngine()
    previous = Manifests()
    for state in path:
        _transition(engine, previous, state, rng)
        previous = state
        _ask_every_pair(engine)  # fills the verdict rows, which the next change must drop
    scratch = PolicyEngine.from_manifests(final)
    assert engine.snapshot() == scratch.snapshot()
    for port, proto in PROBE_PORTS:
        a = compute_matrix(engine, port=port, protocol=proto)
        b = compute_matrix(scratch, port=port, protocol=proto)
        assert a.pods == b.pods
        assert (a.allowed == b.allowed).all()
        for src in a.pods:  # the verdict rows are rebuilt after changes, never stale
            for dst in a.pods:
                fast = engine.allowed(engine.connection(src, dst, port, proto))
                assert fast == scratch.allowed(scratch.connection(src, dst, port, proto))


@settings(max_examples=50, deadline=None)
@given(clusters())
def test_removing_everything_leaves_no_selectors_or_groups(m: Manifests) -> None:
    engine = PolicyEngine.from_manifests(m)
    _transition(engine, m, Manifests(), random.Random(1))
    assert engine.snapshot() == {"groups": {}, "selectors": {}, "selected_by": {}}
