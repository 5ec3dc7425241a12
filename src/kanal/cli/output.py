"""The one way commands talk to the user: results to stdout, everything else to stderr.

Results (a verdict, a matrix, JSON) are the only thing on stdout, so `-o json | jq` always works;
notes, warnings and errors go to stderr, each line prefixed with what it is. A command that has to
stop calls `abort`, which prints the error and exits: there is no other exit path for user errors
besides `KanalError` reaching `kanal.cli.main.main`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn, TextIO


class Terminal:
    """Where a command writes. Defaults to the process's streams as they are at construction
    (so pytest's capsys sees the output)."""

    def __init__(self, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr

    def write(self, text: str = "", *, end: str = "\n") -> None:
        """Result on stdout: a line, or (`end=""`) part of one."""
        self._out.write(text + end)

    def write_json(self, value: object, *, indent: int | None = 2) -> None:
        """`value` as JSON on stdout; `indent=None` writes it on one line (for large data)."""
        self.write(json.dumps(value, indent=indent))

    def note(self, message: str) -> None:
        self._tell("note", message)

    def warn(self, message: str) -> None:
        self._tell("warning", message)

    def error(self, message: str) -> None:
        """Every line of `message` as its own `error: ` line."""
        self._tell("error", message)

    def abort(self, message: str, code: int = 2) -> NoReturn:
        self.error(message)
        raise SystemExit(code)

    def _tell(self, prefix: str, message: str) -> None:
        for line in message.splitlines() or [""]:
            self._err.write(f"{prefix}: {line}\n")
        self._err.flush()


def column_widths(header: Sequence[str], rows: Iterable[Sequence[str]]) -> tuple[int, ...]:
    """The width of each column of a plain-text table: its widest cell, header included."""
    widths = [len(c) for c in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    return tuple(widths)


def aligned_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One line of that table: cells left-aligned, three spaces apart, no trailing blanks."""
    return "   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
