"""Named network namespaces, compatible with `ip netns` (bind mounts in /run/netns).

A namespace created here can be inspected with `ip netns exec NAME ...` while the lab runs.
`entered(name)` moves only the *calling thread* into a namespace (setns is per thread) and always
moves it back; sockets and libnftables contexts created inside stay bound to that namespace after
the thread leaves, which is how one process serves or probes many pods.

This module does not wire anything (see `links`) and does not kill processes still running in a
namespace: deleting the name only removes the bind mount, the kernel frees the namespace when its
last process, socket or open file is gone. `netns_pids` tells the caller who still holds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

from pyroute2 import netns as _pyroute2_netns

from kanal.errors import DataplaneError

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
# /proc/thread-self, not /proc/self: /proc/self/ns/net is the namespace of the process's main
# thread, which is wrong for a worker thread (or a nested `entered`) that must come back to its own.
_THREAD_NETNS = "/proc/thread-self/ns/net"

_libc: ctypes.CDLL | None = None


def _libc_handle() -> ctypes.CDLL:
    global _libc  # noqa: PLW0603 - loaded once, on first use
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc


def _check_name(name: str) -> None:
    """Reject names that are not a single path component: pyroute2 treats `a/b` as a path."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"invalid netns name {name!r}")


def netns_path(name: str) -> str:
    """The bind-mount path of `name`, what `ip netns` uses too."""
    _check_name(name)
    return f"{NETNS_RUN_DIR}/{name}"


def create_netns(name: str) -> None:
    """Create the named namespace; DataplaneError if it exists already or cannot be created.

    pyroute2 forks a short-lived child to unshare and bind-mount, so the caller's threads never
    change namespace.
    """
    _check_name(name)
    if name in list_netns(name):
        raise DataplaneError(f"netns `{name}` already exists: delete it first")
    try:
        _pyroute2_netns.create(name)
    except OSError as exc:
        raise DataplaneError(f"cannot create netns `{name}`: {exc}") from exc


def delete_netns(name: str, *, missing_ok: bool = False) -> None:
    """Remove the name (unmount + unlink). The kernel frees the namespace once nothing holds it."""
    path = netns_path(name)
    if missing_ok and not os.path.exists(path):
        return
    try:
        _pyroute2_netns.remove(name)
    except OSError as exc:
        raise DataplaneError(f"cannot delete netns `{name}`: {exc}") from exc


def list_netns(prefix: str = "") -> list[str]:
    """Sorted names of the named namespaces that start with `prefix`."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def netns_pids(name: str) -> list[int]:
    """Processes whose main thread is in namespace `name` (to find leftovers before deleting)."""
    try:
        target = os.stat(netns_path(name))
    except OSError as exc:
        raise DataplaneError(f"cannot stat netns `{name}`: {exc}") from exc
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue  # exited meanwhile, or a kernel thread we may not inspect
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry))
    return sorted(pids)


def _open_netns(name: str) -> int:
    try:
        return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DataplaneError(f"cannot open netns `{name}`: {exc}") from exc


def _setns(fd: int) -> None:
    if _libc_handle().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace `name`, then restore its namespace.

    Threads started inside the body inherit the namespace. Nesting works (each level restores the
    namespace it found). Failing to restore is a broken invariant (the thread would keep running
    in the wrong namespace), so it raises RuntimeError rather than a DataplaneError.
    """
    target = _open_netns(name)
    try:
        original = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                _setns(target)
            except OSError as exc:
                raise DataplaneError(f"cannot enter netns `{name}`: {exc}") from exc
            try:
                yield
            finally:
                _restore(original, name)
        finally:
            os.close(original)
    finally:
        os.close(target)


def _restore(original: int, name: str) -> None:
    try:
        _setns(original)
    except OSError as exc:  # pragma: no cover - cannot happen with a valid namespace fd
        raise RuntimeError(f"thread stuck in netns `{name}`: {exc}") from exc


def current_netns_inode() -> int:
    """Inode of the calling thread's namespace (tests use it to prove `entered` restores)."""
    return os.stat(_THREAD_NETNS).st_ino


__all__ = [
    "NETNS_RUN_DIR",
    "create_netns",
    "current_netns_inode",
    "delete_netns",
    "entered",
    "list_netns",
    "netns_path",
    "netns_pids",
]
