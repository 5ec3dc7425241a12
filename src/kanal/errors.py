"""User-facing errors.

Every error a user can cause is a `KanalError`; the CLI prints its message and exits non-zero
(exit code `exit_code`). Anything else that escapes is a bug and keeps its traceback.

```
KanalError                      exit 2 unless stated
├── ManifestError               manifests that cannot be read or are invalid; carries every problem
├── NotFoundError                a pod, namespace or object named on the command line does not exist
├── LabError                    the lab cannot be built, changed or torn down as asked
│   └── IpamExhaustedError           a pod range has no free address left
└── DataplaneError              the kernel refused a change (translated at the edge)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class KanalError(Exception):
    """Base of every error a user can cause; its message says what to fix."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in one manifest document, formatted as
    `FILE[:doc N]: Kind ns/name: field.path: message`."""

    source: str
    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.kind} {self.name}" if self.name else self.kind
        parts = [p for p in (self.source, where, self.path) if p]
        return ": ".join([*parts, self.message])


class ManifestError(KanalError):
    """Manifests could not be loaded; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFoundError(KanalError):
    """An object named on the command line does not exist in the loaded manifests or state."""


class LabError(KanalError):
    """The lab cannot do what was asked (not running, already running, bad topology...)."""


class IpamExhaustedError(LabError):
    """Every address of a pod range is allocated."""


class DataplaneError(KanalError):
    """The kernel (nftables, netlink) refused an operation; raised `from` the original error."""

    exit_code = 3
