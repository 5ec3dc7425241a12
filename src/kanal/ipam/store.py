"""IpamStore: the allocation state as one JSON file, replaced atomically.

Written with write-to-temporary + fsync + rename, so a crash leaves either the old or the new
state, never a torn file; the lab saves before it plumbs an address."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kanal.ipam.allocator import IpamState


class IpamStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> IpamState:
        if not self.path.exists():
            return IpamState()
        return IpamState.from_json(json.loads(self.path.read_text()))

    def save(self, state: IpamState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(state.to_json(), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
