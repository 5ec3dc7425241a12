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
import threading
from collections.abc import Callable, Iterator

from kanal.errors import DataplaneError

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
# /proc/thread-self, not /proc/self: /proc/self/ns/net is the namespace of the process's main
# thread, which is wrong for a worker thread (or a nested `entered`) that must come back to its own.
_THREAD_NETNS = "/proc/thread-self/ns/net"

_libc: ctypes.CDLL | None = None


def _libc_handle() -> ctypes.CDLL:
    global _libc  # noqa: PLW0603 - loaded once, on first use
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.mount.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p
        ]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.unshare.argtypes = [ctypes.c_int]
        _libc = libc
    return _libc


def _check_name(name: str) -> None:
    """Reject names that are not one path component (they would escape /run/netns)."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"invalid netns name {name!r}")


def netns_path(name: str) -> str:
    """The bind-mount path of `name`, what `ip netns` uses too."""
    _check_name(name)
    return f"{NETNS_RUN_DIR}/{name}"


def create_netns(name: str) -> None:
    """Create the named namespace; DataplaneError if it exists already or cannot be created.

    Done as `ip netns add` does it (shared /run/netns, an empty file, unshare, bind mount) but
    in a throwaway *thread*: unshare changes only that thread, so the caller never changes
    namespace and nothing forks (pyroute2's `netns.create` forks a child: 13 ms per namespace
    here against 1.7 ms, and forking a process that runs prober threads is best avoided).
    """
    path = netns_path(name)
    try:
        _prepare_run_dir()
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError as exc:
        raise DataplaneError(f"netns `{name}` already exists: delete it first") from exc
    except OSError as exc:
        raise DataplaneError(f"cannot create netns `{name}`: {exc}") from exc
    try:
        _in_throwaway_thread(lambda: _unshare_and_bind(path))
    except OSError as exc:
        os.unlink(path)
        raise DataplaneError(f"cannot create netns `{name}`: {exc}") from exc


def delete_netns(name: str, *, missing_ok: bool = False) -> None:
    """Remove the name (lazy unmount + unlink), as `ip netns delete` does. The kernel frees the
    namespace once nothing (process, socket, open fd) holds it any more."""
    path = netns_path(name)
    if missing_ok and not os.path.exists(path):
        return
    try:
        _check(_libc_handle().umount2(path.encode(), _MNT_DETACH), "umount")
        os.unlink(path)
    except OSError as exc:
        raise DataplaneError(f"cannot delete netns `{name}`: {exc}") from exc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


_run_dir_ready = False
_run_dir_lock = threading.Lock()


def _prepare_run_dir() -> None:
    """Make /run/netns a shared mount (bind-mounting it on itself first if it is not a mount
    point), as iproute2 does, so namespace mounts propagate to other mount namespaces."""
    global _run_dir_ready  # noqa: PLW0603 - once per process
    with _run_dir_lock:
        if _run_dir_ready:
            return
        os.makedirs(NETNS_RUN_DIR, exist_ok=True)
        libc, run_dir = _libc_handle(), NETNS_RUN_DIR.encode()
        if libc.mount(b"none", run_dir, b"none", _MS_SHARED | _MS_REC, None) != 0:
            _check(libc.mount(run_dir, run_dir, b"none", _MS_BIND | _MS_REC, None), "bind rundir")
            _check(libc.mount(b"none", run_dir, b"none", _MS_SHARED | _MS_REC, None), "share")
        _run_dir_ready = True


def _unshare_and_bind(path: str) -> None:
    libc = _libc_handle()
    _check(libc.unshare(CLONE_NEWNET), "unshare")
    _check(libc.mount(_THREAD_NETNS.encode(), path.encode(), b"none", _MS_BIND, None), "mount")


def _in_throwaway_thread(work: Callable[[], None]) -> None:
    """Run `work` in a new thread that then exits, re-raising its exception here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the caller, not swallowed
            failure.append(exc)

    thread = threading.Thread(target=run, name="kanal-netns-create")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


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
    _check(_libc_handle().setns(fd, CLONE_NEWNET), "setns")


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
