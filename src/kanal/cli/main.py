"""The `kanal` command: one parser, command groups registered from their own modules.

A group module (`kanal.cli.analysis`, later `lab`, `apply`...) exposes `register(subparsers)`,
which adds its commands and sets `run(args, terminal) -> exit code` on each. `main` catches only
`KanalError`, the user's mistakes: it prints them and exits with their code. Anything else is a
bug in kanal and keeps its traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kanal import __version__
from kanal.cli import agent, alerts, analysis, flows, lab, store
from kanal.cli.output import Terminal
from kanal.errors import KanalError

GROUPS = (analysis, lab, store, agent, flows, alerts)

DESCRIPTION = """\
Policy-based networking for Kubernetes: ask what NetworkPolicies allow, and why.

Manifests are read as `kubectl apply -f` reads them: files, directories (recursive) and - for
standard input. Namespace, Pod, Node, NetworkPolicy, AdminNetworkPolicy and
BaselineAdminNetworkPolicy are used; other kinds are skipped with a note.
"""

EPILOG = """\
examples:
  kanal matrix -f examples/three-tier
  kanal explain -f examples/three-tier --from frontend/web-1 --to db/postgres-0 --port 5432

Run `kanal COMMAND --help` for a command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kanal",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kanal {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (argparse exits 2 by itself on bad usage)."""
    args = build_parser().parse_args(argv)
    terminal = Terminal()
    try:
        status: int = args.run(args, terminal)
    except KanalError as exc:
        terminal.error(str(exc))
        return exc.exit_code
    return status
