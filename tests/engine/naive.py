"""A deliberately naive evaluator: upstream's semantics read straight off the objects, with loops,
no index, no groups, no caches. It is the oracle the optimized engine is compared against; it
shares no code with `kanal.engine` beyond the model types."""

from __future__ import annotations

from dataclasses import dataclass

from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    Direction,
    IPAddress,
    Labels,
    Manifests,
    NetworkPolicy,
    Node,
    Pod,
    PolicyPeer,
    PolicyPort,
    Protocol,
)


@dataclass(frozen=True)
class End:
    pod: Pod | None
    ip: IPAddress | None
    node: Node | None = None


class Naive:
    def __init__(self, m: Manifests) -> None:
        self.m = m
        self.ns_labels = {n.name: n.labels for n in m.namespaces if n.declared}

    def labels_of_ns(self, name: str) -> Labels:
        return self.ns_labels.get(name, Labels({NAMESPACE_NAME_LABEL: name}))

    # -- NetworkPolicy ------------------------------------------------------------------------

    def np_peer(self, policy: NetworkPolicy, peer: PolicyPeer, end: End) -> bool:
        if peer.ip_block is not None:
            return end.ip is not None and peer.ip_block.contains(end.ip)
        if end.pod is None:
            return False
        if peer.namespace_selector is None:
            if end.pod.namespace != policy.namespace:
                return False
        elif not peer.namespace_selector.matches(self.labels_of_ns(end.pod.namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(end.pod.labels)

    @staticmethod
    def np_port(pp: PolicyPort, port: int, proto: Protocol, dst: Pod | None) -> bool:
        if pp.protocol != proto:
            return False
        if pp.port is None:
            return True
        if isinstance(pp.port, str):
            if dst is None:
                return False
            return any(
                c.name == pp.port and c.protocol == proto and c.port == port for c in dst.ports
            )
        hi = pp.end_port if pp.end_port is not None else pp.port
        return pp.port <= port <= hi

    def np_selects(self, policy: NetworkPolicy, pod: Pod, direction: Direction) -> bool:
        return (
            pod.namespace == policy.namespace
            and direction in policy.policy_types
            and policy.pod_selector.matches(pod.labels)
        )

    def np_admits(
        self,
        policy: NetworkPolicy,
        direction: Direction,
        peer: End,
        port: int,
        proto: Protocol,
        dst: Pod | None,
    ) -> bool:
        for rule in policy.rules(direction):
            peer_ok = not rule.peers or any(self.np_peer(policy, p, peer) for p in rule.peers)
            port_ok = not rule.ports or any(self.np_port(p, port, proto, dst) for p in rule.ports)
            if peer_ok and port_ok:
                return True
        return False

    # -- admin tiers ----------------------------------------------------------------------------

    def admin_selects(self, policy: AdminNetworkPolicy, pod: Pod) -> bool:
        s = policy.subject
        if not s.namespace_selector.matches(self.labels_of_ns(pod.namespace)):
            return False
        return s.pod_selector is None or s.pod_selector.matches(pod.labels)

    def admin_peer(self, peer: AdminPeer, end: End) -> bool:
        if peer.networks:
            return end.ip is not None and any(
                end.ip.version == n.version and end.ip in n for n in peer.networks
            )
        if peer.node_selector is not None:
            return end.node is not None and peer.node_selector.matches(end.node.labels)
        if end.pod is None:
            return False
        ns_sel = peer.namespace_selector
        if ns_sel is not None and not ns_sel.matches(self.labels_of_ns(end.pod.namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(end.pod.labels)

    @staticmethod
    def admin_port(ap: AdminPort, port: int, proto: Protocol, dst: Pod | None) -> bool:
        if isinstance(ap.port, str):
            return dst is not None and any(
                c.name == ap.port and c.protocol == proto and c.port == port for c in dst.ports
            )
        if ap.protocol != proto:
            return False
        hi = ap.end_port if ap.end_port is not None else ap.port
        return ap.port <= port <= hi

    def admin_action(
        self,
        policy: AdminNetworkPolicy,
        direction: Direction,
        peer: End,
        port: int,
        proto: Protocol,
        dst: Pod | None,
    ) -> AdminAction | None:
        for rule in policy.rules(direction):
            if not any(self.admin_peer(p, peer) for p in rule.peers):
                continue
            if rule.ports is not None and not any(
                self.admin_port(p, port, proto, dst) for p in rule.ports
            ):
                continue
            return rule.action
        return None

    # -- one direction --------------------------------------------------------------------------

    def direction_allows(
        self,
        direction: Direction,
        subject: End,
        peer: End,
        port: int,
        proto: Protocol,
        dst: Pod | None,
    ) -> bool:
        pod = subject.pod
        if pod is None:
            return True
        if peer.pod is not None and peer.pod.key == pod.key:
            return True  # a pod cannot block access to itself
        if peer.node is not None and peer.node.name == pod.node_name:
            return True  # nor traffic to and from the node it runs on
        for anp in sorted(self.m.admin_policies, key=lambda a: (a.priority or 0, a.name)):
            if not self.admin_selects(anp, pod):
                continue
            action = self.admin_action(anp, direction, peer, port, proto, dst)
            if action is AdminAction.ALLOW:
                return True
            if action is AdminAction.DENY:
                return False
            if action is AdminAction.PASS:
                break
        selecting = [p for p in self.m.policies if self.np_selects(p, pod, direction)]
        if selecting:
            return any(self.np_admits(p, direction, peer, port, proto, dst) for p in selecting)
        banp = self.m.baseline_policy
        if banp is not None and self.admin_selects(banp, pod):
            action = self.admin_action(banp, direction, peer, port, proto, dst)
            if action is not None:
                return action is AdminAction.ALLOW
        return True

    def allowed(self, src: End, dst: End, port: int, proto: Protocol) -> bool:
        return self.direction_allows(
            Direction.EGRESS, src, dst, port, proto, dst.pod
        ) and self.direction_allows(Direction.INGRESS, dst, src, port, proto, dst.pod)
