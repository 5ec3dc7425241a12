"""nftables through libnftables (`libnftables.so.1`, Debian package `nftables`), via ctypes.

One `Nft` is one libnftables context bound to one network namespace: libnftables opens its
netlink socket when the context is created, so `Nft(netns)` creates it inside `entered(netns)`
and afterwards any thread may use it without entering the namespace. One `run` call is one
netlink batch, i.e. one atomic transaction, however many commands the buffer holds.

A context is meant to be used from one thread (libnftables keeps a cache and output buffers in
it); calls are additionally serialised by a lock so that misuse is slow rather than corrupting.
This module does not render rules (see `kanal.render`) and does not diff kernel state.
"""

from __future__ import annotations

import ctypes
import json
import threading
import weakref
from dataclasses import dataclass
from types import TracebackType

from kanal.dataplane.netns import entered
from kanal.errors import DataplaneError

_LIBRARY = "libnftables.so.1"
_NFT_CTX_DEFAULT = 0
_NFT_CTX_OUTPUT_JSON = 1 << 4

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _declare(lib: ctypes.CDLL) -> None:
    """Give every function we call its C signature (ctypes defaults to int, truncating pointers)."""
    ctx = ctypes.c_void_p
    signatures: dict[str, tuple[type | None, list[type]]] = {
        "nft_ctx_new": (ctx, [ctypes.c_uint32]),
        "nft_ctx_free": (None, [ctx]),
        "nft_ctx_output_get_flags": (ctypes.c_uint, [ctx]),
        "nft_ctx_output_set_flags": (None, [ctx, ctypes.c_uint]),
        "nft_ctx_buffer_output": (ctypes.c_int, [ctx]),
        "nft_ctx_buffer_error": (ctypes.c_int, [ctx]),
        "nft_ctx_get_output_buffer": (ctypes.c_char_p, [ctx]),
        "nft_ctx_get_error_buffer": (ctypes.c_char_p, [ctx]),
        "nft_run_cmd_from_buffer": (ctypes.c_int, [ctx, ctypes.c_char_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def _library() -> ctypes.CDLL:
    global _lib  # noqa: PLW0603 - loaded once, on first use
    with _lib_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL(_LIBRARY, use_errno=True)
            except OSError as exc:
                raise DataplaneError(
                    f"cannot load `{_LIBRARY}`: install the Debian package `nftables`"
                ) from exc
            _declare(lib)
            _lib = lib
        return _lib


def _where(netns: str | None) -> str:
    return f"netns `{netns}`" if netns is not None else "the current netns"


class Nft:
    """A libnftables context bound to `netns` (None: the calling thread's namespace)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._lib = _library()
        self._lock = threading.Lock()
        self._ctx: int | None = self._new_context()
        self._finalizer = weakref.finalize(self, self._lib.nft_ctx_free, self._ctx)

    def _new_context(self) -> int:
        if self.netns is None:
            ctx = self._lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        else:
            with entered(self.netns):
                ctx = self._lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not ctx:
            raise DataplaneError(f"libnftables could not create a context in {_where(self.netns)}")
        self._lib.nft_ctx_buffer_output(ctx)
        self._lib.nft_ctx_buffer_error(ctx)
        return int(ctx)

    def run(self, text: str) -> str:
        """Run a buffer of nft commands as one transaction and return nft's output text.

        On failure nothing of the buffer is applied and DataplaneError carries nft's message
        (with its `^^^` markers pointing into the buffer).
        """
        with self._lock:
            rc, output, error = self._run_locked(text)
        if rc != 0:
            raise DataplaneError(f"nft refused the commands in {_where(self.netns)}:\n{error}")
        return output

    def run_json(self, command: str) -> object:
        """Run one command (`list ...`) with JSON output and return the decoded document."""
        with self._lock:
            ctx = self._context()
            flags = self._lib.nft_ctx_output_get_flags(ctx)
            self._lib.nft_ctx_output_set_flags(ctx, flags | _NFT_CTX_OUTPUT_JSON)
            try:
                rc, output, error = self._run_locked(command)
            finally:
                self._lib.nft_ctx_output_set_flags(ctx, flags)
        if rc != 0:
            raise DataplaneError(f"nft refused `{command}` in {_where(self.netns)}:\n{error}")
        try:
            return json.loads(output)
        except ValueError as exc:
            raise DataplaneError(f"nft returned invalid JSON for `{command}`: {exc}") from exc

    def _run_locked(self, text: str) -> tuple[int, str, str]:
        ctx = self._context()
        rc = self._lib.nft_run_cmd_from_buffer(ctx, text.encode())
        # Reading a buffer also rewinds it, so the next call starts clean.
        output = (self._lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        error = (self._lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        return int(rc), output, error.strip()

    def _context(self) -> int:
        if self._ctx is None:
            raise RuntimeError(f"Nft for {_where(self.netns)} used after close()")
        return self._ctx

    def close(self) -> None:
        """Free the context (and its netlink socket, which otherwise keeps the netns alive)."""
        with self._lock:
            self._ctx = None
            self._finalizer()

    def __enter__(self) -> Nft:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def load_table_atomically(
    nft: Nft, table_text: str, *, family: str = "inet", name: str = "kanal"
) -> None:
    """Replace table `family name` by `table_text` in one transaction.

    Loading `table inet kanal { ... }` over an existing table appends to it, and deleting a table
    that does not exist fails; declaring the (possibly empty) table, deleting it and then loading
    the new text in one buffer works in both cases and is atomic: packets see either the old or
    the new table, never an empty or doubled one. If the new text is refused, the old table stays.
    """
    nft.run(f"table {family} {name}\ndelete table {family} {name}\n{table_text}")


@dataclass(frozen=True, slots=True)
class KernelTable:
    """Sizes of a table as the kernel lists it (agent drift checks, lab status, benchmarks)."""

    chains: int
    rules: int
    sets: int
    set_elements: int
    map_elements: int

    def structure(self) -> tuple[int, int]:
        """What a hand edit of rules changes (elements may legitimately be listed merged)."""
        return self.chains, self.rules

    def to_json(self) -> dict[str, int]:
        return {
            "chains": self.chains,
            "rules": self.rules,
            "sets": self.sets,
            "set_elements": self.set_elements,
            "map_elements": self.map_elements,
        }


def count_table(listed: object) -> KernelTable:
    """Sizes of a `nft -j list table` document (`Nft.run_json("list table ...")`)."""
    entries = listed.get("nftables", []) if isinstance(listed, dict) else []
    chains = rules = sets = set_elements = map_elements = 0
    for entry in entries:
        if "chain" in entry:
            chains += 1
        elif "rule" in entry:
            rules += 1
        elif "set" in entry:
            sets += 1
            set_elements += len(entry["set"].get("elem", []))
        elif "map" in entry:
            map_elements += len(entry["map"].get("elem", []))
    return KernelTable(chains, rules, sets, set_elements, map_elements)


__all__ = [
    "KernelTable",
    "Nft",
    "count_table",
    "load_table_atomically",
]
