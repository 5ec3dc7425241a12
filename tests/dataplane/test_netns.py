"""Named namespaces: create/list/delete like `ip netns`, and `entered` switching one thread."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest

from kanal.dataplane.netns import (
    create_netns,
    current_netns_inode,
    delete_netns,
    entered,
    list_netns,
    netns_pids,
)
from kanal.errors import DataplaneError

pytestmark = pytest.mark.kernel


@pytest.fixture
def make_netns(netns_prefix: str) -> Iterator[Callable[[str], str]]:
    created: list[str] = []

    def make(suffix: str) -> str:
        name = netns_prefix + suffix
        create_netns(name)
        created.append(name)
        return name

    yield make
    for name in created:
        delete_netns(name, missing_ok=True)


def test_created_netns_is_listed_and_visible_to_ip_netns(
    make_netns: Callable[[str], str], netns_prefix: str
) -> None:
    a, b = make_netns("a"), make_netns("b")
    assert list_netns(netns_prefix) == [a, b]
    out = subprocess.run(
        ["ip", "netns", "exec", a, "ip", "-o", "link"], check=True, capture_output=True, text=True
    ).stdout
    assert out.count("\n") == 1 and "lo" in out


def test_deleted_netns_is_gone(make_netns: Callable[[str], str], netns_prefix: str) -> None:
    name = make_netns("a")
    delete_netns(name)
    assert list_netns(netns_prefix) == []
    delete_netns(name, missing_ok=True)


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(delete_netns, id="deleting a missing netns"),
        pytest.param(lambda n: entered(n).__enter__(), id="entering a missing netns"),
        pytest.param(netns_pids, id="listing processes of a missing netns"),
    ],
)
def test_missing_netns_raises_dataplane_error_naming_it(
    netns_prefix: str, action: Callable[[str], object]
) -> None:
    name = netns_prefix + "missing"
    with pytest.raises(DataplaneError, match=f"`{name}`") as info:
        action(name)
    assert isinstance(info.value.__cause__, OSError)


def test_creating_an_existing_netns_raises(make_netns: Callable[[str], str]) -> None:
    name = make_netns("a")
    with pytest.raises(DataplaneError, match="already exists"):
        create_netns(name)


@pytest.mark.parametrize("name", ["", "a/b", "..", "."], ids=repr)
def test_a_name_that_is_not_one_path_component_is_a_bug(name: str) -> None:
    with pytest.raises(ValueError, match="invalid netns name"):
        create_netns(name)


def test_entered_switches_only_this_thread_and_restores_it(
    make_netns: Callable[[str], str],
) -> None:
    a, b = make_netns("a"), make_netns("b")
    home = current_netns_inode()
    seen_by_other_thread: list[int] = []
    with entered(a):
        inode_a = current_netns_inode()
        other = threading.Thread(target=lambda: seen_by_other_thread.append(current_netns_inode()))
        other.start()
        other.join()
        with entered(b):
            assert current_netns_inode() not in (home, inode_a)
        assert current_netns_inode() == inode_a
    assert current_netns_inode() == home
    assert inode_a != home
    assert seen_by_other_thread == [inode_a], "a thread started inside inherits the netns"


def test_entered_restores_after_an_exception(make_netns: Callable[[str], str]) -> None:
    home = current_netns_inode()
    with pytest.raises(KeyError), entered(make_netns("a")):
        raise KeyError("boom")
    assert current_netns_inode() == home


SO_NETNS_COOKIE = 71  # Linux 5.14+: a per-netns 64-bit id of the socket's namespace


def _cookie(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)


def test_a_socket_created_inside_stays_in_that_netns(make_netns: Callable[[str], str]) -> None:
    name = make_netns("a")
    with entered(name):
        inside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with inside, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outside:
        with entered(name), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            assert _cookie(again) == _cookie(inside)
        assert _cookie(inside) != _cookie(outside)


def test_netns_pids_finds_a_process_running_inside(make_netns: Callable[[str], str]) -> None:
    name = make_netns("a")
    proc = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "30"])
    try:
        for _ in range(100):
            if proc.pid in netns_pids(name):
                break
            threading.Event().wait(0.01)
        assert proc.pid in netns_pids(name)
    finally:
        proc.kill()
        proc.wait()
    assert netns_pids(name) == []
