"""PodGroups: pods that no selector can tell apart share one group.

Two pods are indistinguishable to every policy when they have the same namespace, the same labels
and the same container ports (named ports resolve the same). Everything above this stage —
selector matching, policy selection, verdicts, the matrix — works per group, so its cost grows
with distinct groups, not with pods. Addresses are per pod and are not part of a group: ipBlock
peers are matched by address separately.

This stage only groups; it does not know selectors or policies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NewType

from kanal.model.objects import ContainerPort, Labels, Pod, PodKey

GroupId = NewType("GroupId", int)


@dataclass(frozen=True, slots=True)
class GroupKey:
    namespace: str
    labels: Labels
    ports: tuple[ContainerPort, ...]

    @classmethod
    def of(cls, pod: Pod) -> GroupKey:
        return cls(pod.namespace, pod.labels, tuple(sorted(set(pod.ports), key=_port_order)))


def _port_order(p: ContainerPort) -> tuple[int, str, str]:
    return (p.port, p.protocol, p.name or "")


GroupCallback = Callable[[GroupId, GroupKey], None]


class PodGroups:
    def __init__(self, on_group_added: GroupCallback, on_group_removed: GroupCallback) -> None:
        self._on_added = on_group_added
        self._on_removed = on_group_removed
        self._next_id = 0
        self._id_of: dict[GroupKey, GroupId] = {}
        self._key_of: dict[GroupId, GroupKey] = {}
        self._members: dict[GroupId, set[PodKey]] = {}
        self._group_of_pod: dict[PodKey, GroupId] = {}
        self._by_namespace: dict[str, set[GroupId]] = {}

    def group_of(self, pod: PodKey) -> GroupId:
        return self._group_of_pod[pod]

    def key_of(self, group: GroupId) -> GroupKey:
        return self._key_of[group]

    def members(self, group: GroupId) -> frozenset[PodKey]:
        return frozenset(self._members[group])

    def groups(self) -> list[GroupId]:
        return list(self._key_of)

    def in_namespace(self, namespace: str) -> frozenset[GroupId]:
        return frozenset(self._by_namespace.get(namespace, ()))

    def put(self, pod: Pod) -> GroupId:
        """Place (or move) a pod; returns its group."""
        key = GroupKey.of(pod)
        old = self._group_of_pod.get(pod.key)
        if old is not None and self._key_of[old] == key:
            return old
        if old is not None:
            self.remove(pod.key)
        group = self._id_of.get(key)
        if group is None:
            group = self._create(key)
        self._members[group].add(pod.key)
        self._group_of_pod[pod.key] = group
        return group

    def remove(self, pod: PodKey) -> None:
        group = self._group_of_pod.pop(pod, None)
        if group is None:
            return
        members = self._members[group]
        members.discard(pod)
        if not members:
            self._destroy(group)

    def _create(self, key: GroupKey) -> GroupId:
        group = GroupId(self._next_id)
        self._next_id += 1
        self._id_of[key] = group
        self._key_of[group] = key
        self._members[group] = set()
        self._by_namespace.setdefault(key.namespace, set()).add(group)
        self._on_added(group, key)
        return group

    def _destroy(self, group: GroupId) -> None:
        key = self._key_of.pop(group)
        del self._id_of[key]
        del self._members[group]
        ns_groups = self._by_namespace[key.namespace]
        ns_groups.discard(group)
        if not ns_groups:
            del self._by_namespace[key.namespace]
        self._on_removed(group, key)
