"""`kanal check`, `kanal explain`, `kanal matrix`: questions about manifests, for the engine.

Each command reads `-f` manifests, asks `PolicyEngine` one question and prints the answer: a
sentence or a walkthrough for a verdict, a table per probe for a matrix. Nothing here decides
anything about policy; the words only restate the engine's decision chain.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from kanal.cli.output import Terminal
from kanal.engine import PolicyEngine, Verdict
from kanal.engine.matrix import Matrix, compute_matrix, declared_probes
from kanal.engine.wording import check_line, explain_lines
from kanal.model.load import load_manifests
from kanal.model.objects import Protocol

Command = Callable[[argparse.Namespace, Terminal], int]
Probe = tuple[int, Protocol]
Row = npt.NDArray[np.bool_]

MIN_PORT, MAX_PORT = 1, 65535

CHECK_EXAMPLE = """\
examples:
  kanal check -f examples/three-tier --from frontend/web-1 --to backend/api-1 --port 8080
  kanal check -f policies/ -f pods.yaml --from x/a --to 192.0.2.10 --port 53 --protocol UDP -o json
  kubectl get ns,pods,netpol -A -o yaml | kanal check -f - --from x/a --to y/b --port 80

exit status: 0 allowed, 1 denied, 2 bad input (invalid manifests, unknown pod, bad port)
"""

EXPLAIN_EXAMPLE = """\
example:
  kanal explain -f examples/three-tier --from frontend/web-1 --to db/postgres-0 --port 5432

exit status: 0 allowed, 1 denied, 2 bad input (as `kanal check`)
"""

MATRIX_EXAMPLE = """\
examples:
  kanal matrix -f examples/three-tier                  one table per declared port/protocol
  kanal matrix -f examples/three-tier --port 8080 --port 9125 --protocol UDP -o md

--protocol applies to the --port just before it (8080/TCP and 9125/UDP above); a --port without
one is TCP. Rows are sources, columns destinations: `.` allowed, `X` denied.
"""


def register(subparsers: Any) -> None:
    """Add this group's commands to the `kanal` parser (`subparsers` from add_subparsers)."""
    checker = _add_connection_command(
        subparsers,
        "check",
        run=check,
        summary="is one connection allowed? (exit 0 yes, 1 no)",
        example=CHECK_EXAMPLE,
    )
    checker.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text: one line; json: the verdict with each direction's decision chain",
    )
    _add_connection_command(
        subparsers,
        "explain",
        run=explain,
        summary="walk through the decision for one connection",
        example=EXPLAIN_EXAMPLE,
    )
    _add_matrix_command(subparsers)


# -- commands --------------------------------------------------------------------------------------


def check(args: argparse.Namespace, term: Terminal) -> int:
    verdict = _verdict(args, term)
    if args.output == "json":
        term.write_json(verdict.to_json())
    else:
        term.write(check_line(verdict))
    return 0 if verdict.allowed else 1


def explain(args: argparse.Namespace, term: Terminal) -> int:
    verdict = _verdict(args, term)
    term.write("\n".join(explain_lines(verdict)))
    return 0 if verdict.allowed else 1


def matrix(args: argparse.Namespace, term: Terminal) -> int:
    engine = load_engine(args.filenames, term)
    probes: list[Probe] = args.probes or declared_probes(engine)
    if not probes:
        term.note("no pod declares a container port: choose probes with --port N")
    tables = [compute_matrix(engine, port=port, protocol=proto) for port, proto in probes]
    MATRIX_FORMATS[args.output](tables, term)
    return 0


def _verdict(args: argparse.Namespace, term: Terminal) -> Verdict:
    engine = load_engine(args.filenames, term)
    return engine.explain(args.source, args.destination, args.port, args.protocol)


def load_engine(paths: Sequence[str], term: Terminal) -> PolicyEngine:
    """The engine over the manifests at `paths`; notes and engine warnings go to stderr."""
    manifests = load_manifests(paths)
    for note in manifests.notes:
        term.note(note)
    engine = PolicyEngine.from_manifests(manifests)
    for warning in engine.warnings():
        term.warn(warning)
    return engine


# -- arguments -------------------------------------------------------------------------------------


def _new_command(
    subparsers: Any, name: str, *, summary: str, example: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _add_connection_command(
    subparsers: Any, name: str, *, run: Command, summary: str, example: str
) -> argparse.ArgumentParser:
    """A command about one connection: `-f`, `--from`, `--to`, `--port`, `--protocol`."""
    parser = _new_command(subparsers, name, summary=summary, example=example)
    add_filename_argument(parser)
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="NS/POD|IP",
        help="the client: a pod as namespace/name, or an IP address",
    )
    parser.add_argument(
        "--to",
        dest="destination",
        required=True,
        metavar="NS/POD|IP",
        help="the server: a pod as namespace/name, or an IP address",
    )
    parser.add_argument(
        "--port", type=port_number, required=True, metavar="N", help="destination port, 1-65535"
    )
    parser.add_argument(
        "--protocol",
        type=protocol_name,
        default=Protocol.TCP,
        metavar="TCP|UDP|SCTP",
        help="default TCP",
    )
    parser.set_defaults(run=run)
    return parser


def _add_matrix_command(subparsers: Any) -> None:
    parser = _new_command(
        subparsers,
        "matrix",
        summary="the truth table of every pod pair, per port",
        example=MATRIX_EXAMPLE,
    )
    add_filename_argument(parser)
    parser.add_argument(
        "--port",
        dest="probes",
        action=_AddProbe,
        type=port_number,
        metavar="N",
        help="a probe port; repeatable (default: every declared port)",
    )
    parser.add_argument(
        "--protocol",
        dest="probes",
        action=_SetProbeProtocol,
        type=protocol_name,
        metavar="TCP|UDP|SCTP",
        help="protocol of the --port before it (default TCP)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=tuple(MATRIX_FORMATS),
        default="text",
        help="text: a table per probe; json: one line, {probes: [{port, protocol, pods, "
        "allowed}]}; csv: a row per probe and source; md: Markdown tables",
    )
    parser.set_defaults(run=matrix, probes=[])


def add_filename_argument(parser: argparse.ArgumentParser) -> None:
    """kubectl's `-f`: files, directories (recursive) or `-` for stdin; repeatable, and each
    occurrence takes several paths."""
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="extend",
        nargs="+",
        required=True,
        metavar="PATH",
        help="manifest file or directory (recursive); - reads standard input",
    )


def port_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a port number (1-65535)") from None
    if not MIN_PORT <= number <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"port {number} is out of range: give 1-65535")
    return number


def protocol_name(text: str) -> Protocol:
    try:
        return Protocol(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"`{text}` is not a protocol: give TCP, UDP or SCTP"
        ) from None


class _AddProbe(argparse.Action):
    """`--port N`: a new probe, TCP until a `--protocol` right after it says otherwise."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        probes: list[Probe] = list(getattr(namespace, self.dest))
        probes.append((values, Protocol.TCP))
        setattr(namespace, self.dest, probes)
        namespace.protocol_pending = True


class _SetProbeProtocol(argparse.Action):
    """`--protocol P`: the protocol of the `--port` just before it, once."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        probes: list[Probe] = list(getattr(namespace, self.dest))
        if not probes:
            parser.error("--protocol applies to the --port just before it: give --port N first")
        if not getattr(namespace, "protocol_pending", False):
            parser.error(f"--protocol given twice for --port {probes[-1][0]}: repeat --port too")
        probes[-1] = (probes[-1][0], values)
        setattr(namespace, self.dest, probes)
        namespace.protocol_pending = False


# -- matrices --------------------------------------------------------------------------------------
#
# Written a row at a time: a matrix of n pods is n² cells, and its text must not need n² Python
# objects at once (10k pods is 100M cells). Pod keys are DNS names joined by `/`, so no cell ever
# needs CSV quoting or Markdown escaping.


def _cells(row: Row, *, allowed: npt.NDArray[np.str_], denied: npt.NDArray[np.str_]) -> str:
    return "".join(np.where(row, allowed, denied).tolist())


def _table_lines(corner: str, table: Matrix) -> Iterator[str]:
    """`| corner | pod | ... |` then a row per source pod, every column as wide as its widest
    cell, `.` allowed and `X` denied."""
    first = max([len(corner), *map(len, table.pods)])
    widths = [max(len(pod), 1) for pod in table.pods]
    allowed = np.array([f" {'.':<{w}} |" for w in widths], dtype=np.str_)
    denied = np.array([f" {'X':<{w}} |" for w in widths], dtype=np.str_)
    yield "| " + corner.ljust(first) + " |" + "".join(f" {pod} |" for pod in table.pods)
    for source, row in zip(table.pods, table.allowed, strict=True):
        yield "| " + source.ljust(first) + " |" + _cells(row, allowed=allowed, denied=denied)


def write_matrix_text(tables: Sequence[Matrix], term: Terminal) -> None:
    """cyclonus's layout: the probe in the corner, destinations across, sources down."""
    for number, table in enumerate(tables):
        if number:
            term.write()
        lines = _table_lines(f"{table.port}/{table.protocol}", table)
        header = next(lines)
        border = "".join("+" if ch == "|" else "-" for ch in header)
        for line in itertools.chain((border, header, border), lines, (border,)):
            term.write(line)


def write_matrix_md(tables: Sequence[Matrix], term: Terminal) -> None:
    """A `### PORT/PROTOCOL` heading and a pipe table per probe."""
    for number, table in enumerate(tables):
        if number:
            term.write()
        term.write(f"### {table.port}/{table.protocol}\n")
        lines = _table_lines("from ↓ to →", table)
        header = next(lines)
        term.write(header)
        term.write("".join(ch if ch == "|" else "-" for ch in header))
        for line in lines:
            term.write(line)


def write_matrix_json(tables: Sequence[Matrix], term: Terminal) -> None:
    """`{"probes": [{"port", "protocol", "pods", "allowed"}]}` on one line, as `json.dumps`
    would write it."""
    term.write('{"probes": [', end="")
    for number, table in enumerate(tables):
        head = {"port": table.port, "protocol": table.protocol.value, "pods": list(table.pods)}
        term.write((", " if number else "") + json.dumps(head)[:-1] + ', "allowed": [', end="")
        for i, row in enumerate(table.allowed):
            values = ", ".join(np.where(row, "true", "false").tolist())
            term.write((", [" if i else "[") + values + "]", end="")
        term.write("]}", end="")
    term.write("]}")


def write_matrix_csv(tables: Sequence[Matrix], term: Terminal) -> None:
    """One header (`port,protocol,from,<pods>`), then a row per probe and source pod."""
    header = ""
    for table in tables:
        if header != ",".join(["port", "protocol", "from", *table.pods]):
            header = ",".join(["port", "protocol", "from", *table.pods])
            term.write(header)
        prefix = f"{table.port},{table.protocol},"
        for source, row in zip(table.pods, table.allowed, strict=True):
            term.write(prefix + source + "," + ",".join(np.where(row, "true", "false").tolist()))


MATRIX_FORMATS: dict[str, Callable[[Sequence[Matrix], Terminal], None]] = {
    "text": write_matrix_text,
    "json": write_matrix_json,
    "csv": write_matrix_csv,
    "md": write_matrix_md,
}
