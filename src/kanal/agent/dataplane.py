"""The agent's edge to the kernel: three calls, nothing clever (STYLE item 4).

```
apply_full(text)   the whole table, `load_table_atomically`: declare + delete + load in ONE
                   transaction, so packets see the old table or the new one, never none
apply_delta(text)  `add/delete element` commands in one buffer: one transaction
read_current()     what the kernel holds now (sizes), or None when there is no table
```

The agent decides what to send (it keeps the desired state and the last written one) and never
flushes the table: there is no call for that. `NftDataplane` keeps one libnftables context for
the agent's lifetime, bound to the node's netns (a context binds to the netns it was created in),
used only from the agent's loop thread. `FakeDataplane` in the tests records the calls.
"""

from __future__ import annotations

from typing import Protocol

from kanal.dataplane.nft import KernelTable, Nft, count_table, load_table_atomically
from kanal.errors import DataplaneError

TABLE = "inet kanal"


class Dataplane(Protocol):
    """What the agent needs from the kernel of its node."""

    def apply_full(self, text: str) -> None:
        """Replace the table by `text` (a `table inet kanal { ... }` block) atomically."""

    def apply_delta(self, text: str) -> None:
        """Run element commands as one transaction; DataplaneError if refused (nothing applied)."""

    def read_current(self) -> KernelTable | None:
        """The kernel's table, or None when the node has none."""

    def close(self) -> None: ...


class NftDataplane:
    """`Dataplane` through libnftables, in `netns` (None: the agent's own namespace)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._nft = Nft(netns)

    def apply_full(self, text: str) -> None:
        load_table_atomically(self._nft, text)

    def apply_delta(self, text: str) -> None:
        self._nft.run(text)

    def read_current(self) -> KernelTable | None:
        try:
            listed = self._nft.run_json(f"list table {TABLE}")
        except DataplaneError as exc:
            if "No such file or directory" in str(exc):
                return None
            raise
        return count_table(listed)

    def close(self) -> None:
        self._nft.close()


__all__ = ["TABLE", "Dataplane", "KernelTable", "NftDataplane", "count_table"]
