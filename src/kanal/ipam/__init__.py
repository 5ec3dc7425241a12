"""Address allocation for pods: blocks per node (Flannel) or per namespace (Nuage), persisted."""

from kanal.ipam.allocator import Ipam, IpamState
from kanal.ipam.store import IpamStore

__all__ = ["Ipam", "IpamState", "IpamStore"]
