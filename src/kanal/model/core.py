"""The core (`v1`) kinds kanal reads: Namespace, Pod and Node.

Only the fields kanal uses are read and validated (as `ValidatePod`/`ValidateNode` would);
everything else in a pod (images, env, volumes...) is accepted unchecked, and a pod without
`spec.containers` is accepted too, because analysis fixtures often declare only labels and IPs.
"""

from __future__ import annotations

from kanal.model.fields import At, Raw, get_int, get_mapping, get_str, items_of
from kanal.model.meta import ObjectMeta, get_protocol, parse_ip
from kanal.model.objects import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    IPAddress,
    Namespace,
    Node,
    Pod,
)
from kanal.model.validate import dns1123_subdomain, port_name, port_number

MAX_POD_IPS = 2


def parse_namespace(raw: Raw, meta: ObjectMeta, at: At) -> Namespace:
    """The API server always sets the name label, overriding any value the user gave."""
    del raw, at
    labels = meta.labels.with_changes({NAMESPACE_NAME_LABEL: meta.name})
    return Namespace(meta.name, labels, declared=True)


def parse_pod(raw: Raw, meta: ObjectMeta, at: At) -> Pod:
    spec_at = at.field("spec")
    spec = get_mapping(raw, "spec", at) or {}
    node_name = get_str(spec, "nodeName", spec_at) or None
    if node_name is not None:
        spec_at.field("nodeName").problems(
            dns1123_subdomain(node_name), prefix=f"invalid node name {node_name!r}: "
        )
    return Pod(
        meta.namespace,
        meta.name,
        meta.labels,
        ports=_container_ports(spec, spec_at),
        node_name=node_name,
        ips=_pod_ips(raw, at),
    )


def _container_ports(spec: Raw, at: At) -> tuple[ContainerPort, ...]:
    """Every container's ports; a port name must be unique in the whole pod, because a named
    policy port resolves to one number per pod."""
    ports: list[ContainerPort] = []
    first_use: dict[str, str] = {}
    for container, c_at in items_of(spec, "containers", at):
        for entry, p_at in items_of(container, "ports", c_at):
            port = _container_port(entry, p_at)
            if port is None:
                continue
            if port.name is not None and port.name in first_use:
                p_at.field("name").problem(
                    f"duplicate port name {port.name!r} (also at {first_use[port.name]}): "
                    "port names must be unique in a pod, rename one"
                )
            elif port.name is not None:
                first_use[port.name] = p_at.path
            ports.append(port)
    return tuple(ports)


def _container_port(raw: Raw, at: At) -> ContainerPort | None:
    number = get_int(raw, "containerPort", at, required=True)
    if number is not None:
        at.field("containerPort").problems(port_number(number), prefix=f"port {number} ")
    host_port = get_int(raw, "hostPort", at)
    if host_port is not None:
        at.field("hostPort").problems(port_number(host_port), prefix=f"port {host_port} ")
    protocol = get_protocol(raw, at)
    name = get_str(raw, "name", at) or None
    if name is not None:
        at.field("name").problems(port_name(name), prefix=f"invalid port name {name!r}: ")
    if number is None or protocol is None:
        return None
    return ContainerPort(number, protocol, name)


def _pod_ips(raw: Raw, at: At) -> tuple[IPAddress, ...]:
    """`status.podIPs`, else `status.podIP`; when both are given, podIP must be podIPs[0]."""
    status_at = at.field("status")
    status = get_mapping(raw, "status", at) or {}
    value = status.get("podIP")
    pod_ip = None if value is None else parse_ip(value, status_at.field("podIP"))
    pod_ips = _pod_ip_list(status, status_at)
    if not pod_ips:
        return () if pod_ip is None else (pod_ip,)
    if pod_ip is not None and pod_ip != pod_ips[0]:
        status_at.field("podIP").problem(
            f"{pod_ip} must equal status.podIPs[0] ({pod_ips[0]}): the first podIPs entry is "
            "the primary address"
        )
    return tuple(pod_ips)


def _pod_ip_list(status: Raw, at: At) -> list[IPAddress]:
    ips: list[IPAddress] = []
    for entry, e_at in items_of(status, "podIPs", at):
        value = get_str(entry, "ip", e_at, required=True)
        ip = None if value is None else parse_ip(value, e_at.field("ip"))
        if ip is not None:
            ips.append(ip)
    families = [ip.version for ip in ips]
    if len(ips) > MAX_POD_IPS or len(set(families)) != len(families):
        at.field("podIPs").problem("may hold at most one IPv4 and one IPv6 address (dual-stack)")
    return ips


def parse_node(raw: Raw, meta: ObjectMeta, at: At) -> Node:
    """A node's InternalIP addresses are its `ips` (what `nodes` admin peers match)."""
    status_at = at.field("status")
    status = get_mapping(raw, "status", at) or {}
    ips: list[IPAddress] = []
    for entry, e_at in items_of(status, "addresses", status_at):
        kind = get_str(entry, "type", e_at, required=True)
        value = get_str(entry, "address", e_at, required=True)
        if kind == "InternalIP" and value is not None:
            ip = parse_ip(value, e_at.field("address"))
            if ip is not None and ip not in ips:
                ips.append(ip)
    return Node(meta.name, meta.labels, tuple(ips))
