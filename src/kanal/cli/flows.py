"""`kanal flows`, `kanal stats`, `kanal graph`: the flow database the collectors write.

Each command opens the flow database (`--db`, else `$KANAL_LAB_DIR/flows.db`: the one the
collectors of a running `kanal lab` write, found as `kanal get` finds the lab's `store.db`)
read-only in spirit (it never creates one), makes one query and prints it. Filters are Hubble's
(`kanal.flows.filters`); `-o json` is one record per line (`kanal.flows.records`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kanal.cli.output import Terminal, aligned_row, column_widths
from kanal.flows.collector import default_flows_path
from kanal.flows.filters import FilterError, FlowFilter, parse_duration, split_pod
from kanal.flows.graph import FORMATS as GRAPH_FORMATS
from kanal.flows.graph import render as render_graph
from kanal.flows.hubble import read_flows, to_hubble
from kanal.flows.metrics import MetricsServer
from kanal.flows.records import FlowRecord, Verdict
from kanal.flows.stats import Stats, compute_stats, prometheus_text
from kanal.flows.store import FlowStore
from kanal.flows.tables import FlowStoreError

Command = Callable[[argparse.Namespace, Terminal], int]

CLOCK: Callable[[], float] = time.time
"""Now, for --since; tests replace it."""
FOLLOW_STOP: Callable[[], bool] = lambda: False  # noqa: E731 - tests replace it
"""When `--follow` stops besides Ctrl-C; tests replace it."""

DEFAULT_LAST = 20
DB_HELP = "the flow database (default $KANAL_LAB_DIR/flows.db, /var/lib/kanal/lab/flows.db)"
EXAMPLES = {
    "flows": "kanal flows --verdict denied --to-namespace x\n"
             "  kanal flows --since 5m --policy x/default-deny -o json\n"
             "  kanal flows --follow --from-pod y/client-a\n"
             "  kanal flows -o hubble --since 1h > flows.json   # Hubble's JSON lines\n"
             "  kanal flows import --format hubble flows.json",
    "stats": "kanal stats\n  kanal stats -o json\n  kanal stats -o prometheus\n"
             "  kanal stats --listen 127.0.0.1:9464   # Prometheus scrapes /metrics",
    "graph": "kanal graph -o dot | dot -Tsvg > flows.svg\n  kanal graph -o mermaid --since 1h",
}
COLUMNS = ("TIME (UTC)", "NODE", "SOURCE", "DESTINATION", "PROTO", "DIRECTION", "VERDICT",
           "DECIDED BY", "BYTES")
FOLLOW_WIDTHS = (23, 10, 28, 24, 5, 9, 7, 48, 0)


def register(subparsers: Any) -> None:
    """Add `flows`, `stats` and `graph` to the `kanal` parser."""
    parser = _command(subparsers, "flows", flows, "show recorded flows, newest last")
    _add_filters(parser)
    parser.add_argument("--follow", "-f", action="store_true",
                        help="keep printing flows as they are recorded (Ctrl-C stops)")
    parser.add_argument("--last", type=_count, metavar="N",
                        help=f"only the last N matching flows (default {DEFAULT_LAST} when "
                             "--since is not given)")
    parser.add_argument("-o", "--output", choices=("table", "json", "compact", "hubble"),
                        default="table", help="hubble: as `hubble observe -o json` prints flows")
    _add_import(parser)
    parser = _command(subparsers, "stats", stats,
                      "hits, denies and bytes per policy and rule; rules never hit")
    parser.add_argument("-o", "--output", choices=("table", "json", "prometheus"),
                        default="table")
    parser.add_argument("--listen", type=_address, metavar="HOST:PORT",
                        help="serve Prometheus /metrics from the database until Ctrl-C")
    parser = _command(subparsers, "graph", graph,
                      "the traffic graph between policy groups, edges by deciding rule")
    _add_filters(parser)
    parser.add_argument("-o", "--output", choices=GRAPH_FORMATS, default="dot")


def _command(subparsers: Any, name: str, run: Command, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".",
        epilog=f"examples:\n  {EXAMPLES[name]}\n\nexit status: 0 done, 2 bad input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", type=Path, metavar="PATH", help=DB_HELP)
    parser.set_defaults(run=run)
    return parser


def _add_import(flows: argparse.ArgumentParser) -> None:
    actions = flows.add_subparsers(dest="action", title="actions", metavar="[import]")
    parser = actions.add_parser(
        "import", help="store flows another tool recorded (Hubble's JSON lines)",
        description="Store the flows of FILE (- for standard input), all or none: a bad line "
                    "stores nothing and names its line and field.",
        epilog="examples:\n  hubble observe --last 1000 -o json > flows.json\n"
               "  kanal flows import --format hubble flows.json\n"
               "  kanal flows -o hubble --since 24h |\n"
               "    kanal flows import --format hubble --db copy.db -\n\n"
               "exit status: 0 done, 2 bad input",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("hubble",), required=True)
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--db", type=Path, metavar="PATH", default=argparse.SUPPRESS,
                        help=DB_HELP + "; created when missing")
    parser.set_defaults(run=import_flows)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--since", type=_duration, metavar="DURATION", help="only flows of the last 5m, 1h...")
    add("--from-pod", type=_pod, metavar="NS/POD")
    add("--to-pod", type=_pod, metavar="NS/POD")
    add("--from-namespace", metavar="NS")
    add("--to-namespace", metavar="NS")
    add("--verdict", choices=[v.value for v in Verdict])
    add("--policy", metavar="NS/NAME",
        help="decided by a rule of this policy, or by a default deny it takes part in "
             "(NAME alone for an AdminNetworkPolicy)")
    add("--port", type=_port, metavar="N", help="either end's port, as Hubble's --port")
    add("--protocol", metavar="P", help="TCP, UDP, SCTP, ICMP")
    add("--node", metavar="N", help="recorded at this node")


def _wrap(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse` as an argparse type: its FilterError becomes a usage error (exit 2)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except FilterError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


_duration = _wrap(parse_duration)
_pod = _wrap(split_pod)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"`{text}` is not a port: 1-65535")
    return int(text)


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"`{text}` is not HOST:PORT (like 127.0.0.1:9464)")
    return host.strip("[]") or "0.0.0.0", int(port)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of flows")
    return int(text)


def _filter(args: argparse.Namespace) -> FlowFilter:
    return FlowFilter(
        since=None if args.since is None else CLOCK() - args.since,
        from_pod=args.from_pod, to_pod=args.to_pod,
        from_namespace=args.from_namespace, to_namespace=args.to_namespace,
        verdict=None if args.verdict is None else Verdict(args.verdict),
        policy=args.policy, port=args.port, protocol=args.protocol, node=args.node,
    )


def _open(args: argparse.Namespace) -> FlowStore:
    if args.db is None and not default_flows_path().exists():
        raise FlowStoreError(
            f"there is no flow database at `{default_flows_path()}`: no lab with flow "
            f"collectors is up in `{default_flows_path().parent}` (`kanal lab up -f PATH` "
            "starts them, unless --no-flows; set $KANAL_LAB_DIR for another lab), or give a "
            "database with --db"
        )
    return FlowStore(args.db or default_flows_path(), create=False)


# -- kanal flows -----------------------------------------------------------------------------


def flows(args: argparse.Namespace, term: Terminal) -> int:
    flow_filter = _filter(args)
    last = args.last if args.last is not None else (None if args.since else DEFAULT_LAST)
    store = _open(args)
    try:
        records = store.query(flow_filter, last=last)
        write = _writer(args.output, term, records, follow=args.follow)
        for record in records:
            write(record)
        if args.follow:
            after = records[-1].id if records else store.last_id()
            _follow(store, flow_filter, after or 0, write)
    finally:
        store.close()
    return 0


def _follow(
    store: FlowStore, flow_filter: FlowFilter, after: int, write: Callable[[FlowRecord], None]
) -> None:
    try:
        for record in store.follow(replace(flow_filter, after_id=after), stop=FOLLOW_STOP):
            write(record)
    except KeyboardInterrupt:
        return


def _writer(
    output: str, term: Terminal, records: Sequence[FlowRecord], *, follow: bool
) -> Callable[[FlowRecord], None]:
    if output == "json":
        return lambda r: term.write(json.dumps(r.to_json(), separators=(",", ":")))
    if output == "compact":
        return lambda r: term.write(compact_line(r))
    if output == "hubble":
        return lambda r: term.write(json.dumps(to_hubble(r), separators=(",", ":")))
    widths = FOLLOW_WIDTHS if follow else column_widths(COLUMNS, [table_cells(r) for r in records])
    term.write(aligned_row(COLUMNS, widths))
    return lambda r: term.write(aligned_row(table_cells(r), widths))


def _time(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _bytes(record: FlowRecord) -> str:
    return "" if record.completion is None else str(record.completion.bytes)


def table_cells(record: FlowRecord) -> tuple[str, ...]:
    return (_time(record.time), record.node, record.src.with_port(), record.dst.with_port(),
            record.protocol, record.direction.value.lower(), record.verdict.value,
            record.decision.describe(), _bytes(record))


def compact_line(record: FlowRecord) -> str:
    """`TIME [NODE] SRC -> DST PROTO DIRECTION VERDICT: why`, plus bytes once ended."""
    done = record.completion
    tail = "" if done is None else f" ({done.bytes} bytes, {done.packets} packets, " \
                                   f"{done.duration:.3f}s)"
    return (f"{_time(record.time)} [{record.node}] {record.src.with_port()} -> "
            f"{record.dst.with_port()} {record.protocol} {record.direction.value.lower()} "
            f"{record.verdict.value.upper()}: {record.summary}{tail}")


# -- kanal flows import ------------------------------------------------------------------------


def import_flows(args: argparse.Namespace, term: Terminal) -> int:
    """Every line is read before the one transaction that stores them: all or nothing."""
    name = "standard input" if args.file == "-" else args.file
    try:
        if args.file == "-":
            found = read_flows(sys.stdin, source=name)
        else:
            with open(args.file, encoding="utf-8") as lines:
                found = read_flows(lines, source=name)
    except (OSError, UnicodeDecodeError) as exc:
        term.abort(f"cannot read `{name}`: {getattr(exc, 'strerror', None) or exc}")
    db = args.db or default_flows_path()
    store = FlowStore(db)
    try:
        store.insert(found.records)
    finally:
        store.close()
    term.write(f"imported {len(found.records)} flows from {name} into {db}")
    for reason, count in sorted(found.skipped.items()):
        term.note(f"skipped {count}: {reason}")
    return 0


# -- kanal stats -------------------------------------------------------------------------------


def stats(args: argparse.Namespace, term: Terminal) -> int:
    if args.listen is not None:
        return _serve_metrics(args, term)
    store = _open(args)
    try:
        totals = store.totals()
    finally:
        store.close()
    if args.output == "prometheus":
        term.write(prometheus_text(totals), end="")
        return 0
    found = compute_stats(totals)
    if args.output == "json":
        term.write_json(found.to_json())
    else:
        _write_stats(found, term)
    lost = found.health["events_lost"]
    if lost:
        term.warn(f"the kernel dropped {lost} flow event(s): counts are lower bounds")
    return 0


def _serve_metrics(args: argparse.Namespace, term: Terminal) -> int:
    db = args.db or default_flows_path()
    _open(args).close()  # a missing database is the user's error now, not a 503 later
    try:
        server = MetricsServer(args.listen, db)
    except OSError as exc:
        term.abort(f"cannot listen on {args.listen[0]}:{args.listen[1]}: {exc.strerror or exc}")
    host, port = server.server_address[:2]
    term.note(f"serving Prometheus metrics of {db} on http://{host!s}:{port}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _write_stats(found: Stats, term: Terminal) -> None:
    header = ("POLICY", "TIER", "DIRECTION", "RULE", "ACTION", "HITS", "DENIES", "BYTES",
              "STATUS")
    rows = [(p.policy, _short_tier(r.tier), r.direction, r.label(), r.action,
             str(r.tally.hits), str(r.tally.denies), str(r.tally.bytes), r.status)
            for p in found.policies for r in p.rules]
    rows += [(d.policy or ", ".join(d.isolating) or "-",
              _short_tier(d.tier.value) if d.policy and d.tier else
              "NetworkPolicy" if d.isolating else "-",
              d.direction.value.lower(), d.rule_label(), d.outcome.value, str(t.hits),
              str(t.denies), str(t.bytes), "hit")
             for d, t in found.defaults]
    widths = column_widths(header, rows)
    term.write(aligned_row(header, widths))
    for row in rows:
        term.write(aligned_row(row, widths))
    term.write()
    for (direction, verdict), tally in sorted(found.flows.items()):
        term.write(f"{direction} {verdict}: {tally.hits} flows, {tally.bytes} bytes")
    health = found.health
    term.write(f"collector: {health['events_lost']} events lost, {health['unknown_log_ids']} "
               f"unknown log ids, {health['disagreements']} disagreements with the engine, "
               f"{health['reloads']} reloads")


def _short_tier(tier: str) -> str:
    return {"AdminNetworkPolicy": "ANP", "BaselineAdminNetworkPolicy": "BANP"}.get(tier, tier)


# -- kanal graph -------------------------------------------------------------------------------


def graph(args: argparse.Namespace, term: Terminal) -> int:
    store = _open(args)
    try:
        edges = store.edges(_filter(args))
    finally:
        store.close()
    term.write(render_graph(edges, args.output))
    return 0
