"""`kanal alerts`: the alerts the flow collectors fired (AlertRule objects), from the flow
database (`--db`, else `$KANAL_LAB_DIR/flows.db`, as `kanal flows`), which it never creates.
`-o json` is one alert per line, the body the webhooks receive (`kanal.flows.alerts.Alert`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kanal.cli.flows import DB_HELP
from kanal.cli.output import Terminal, aligned_row, column_widths
from kanal.flows.alerts import Alert
from kanal.flows.alertstore import AlertFilter, AlertStore
from kanal.flows.collector import default_flows_path
from kanal.flows.filters import FilterError, parse_duration
from kanal.flows.records import iso_time

CLOCK: Callable[[], float] = time.time
"""Now, for --since; tests replace it."""
FOLLOW_STOP: Callable[[], bool] = lambda: False  # noqa: E731 - tests replace it
"""When `--follow` stops besides Ctrl-C; tests replace it."""

DEFAULT_LAST = 20
COLUMNS = ("TIME (UTC)", "NODE", "RULE", "KEY", "SUMMARY", "ACTIONS")
FOLLOW_WIDTHS = (23, 10, 20, 24, 80, 0)
EXAMPLES = """\
kanal alerts
  kanal alerts --since 1h --rule port-scan -o json
  kanal alerts --follow"""


def register(subparsers: Any) -> None:
    """Add `alerts` to the `kanal` parser."""
    summary = "show the alerts the flow collectors fired, newest last"
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "alerts", help=summary, description=summary[0].upper() + summary[1:] + ".",
        epilog=f"examples:\n  {EXAMPLES}\n\nexit status: 0 done, 2 bad input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", type=Path, metavar="PATH", help=DB_HELP)
    parser.add_argument("--since", type=_duration, metavar="DURATION",
                        help="only alerts of the last 5m, 1h...")
    parser.add_argument("--rule", metavar="NAME", help="only alerts of this AlertRule")
    parser.add_argument("--last", type=_count, metavar="N",
                        help=f"only the last N matching alerts (default {DEFAULT_LAST} when "
                             "--since is not given)")
    parser.add_argument("--follow", "-f", action="store_true",
                        help="keep printing alerts as they fire (Ctrl-C stops)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.set_defaults(run=alerts)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of alerts")
    return int(text)


def alerts(args: argparse.Namespace, term: Terminal) -> int:
    alert_filter = AlertFilter(since=None if args.since is None else CLOCK() - args.since,
                               rule=args.rule)
    last = args.last if args.last is not None else (None if args.since else DEFAULT_LAST)
    store = AlertStore(args.db or default_flows_path(), create=False)
    try:
        found = store.query(alert_filter, last=last)
        write = _writer(args.output, term, found, follow=args.follow)
        for alert in found:
            write(alert)
        if args.follow:
            after = max((a.id or 0 for a in found), default=store.last_id())
            _follow(store, AlertFilter(since=alert_filter.since, rule=args.rule,
                                       after_id=after), write)
    finally:
        store.close()
    return 0


def _follow(store: AlertStore, alert_filter: AlertFilter, write: Callable[[Alert], None]
            ) -> None:
    try:
        for alert in store.follow(alert_filter, stop=FOLLOW_STOP):
            write(alert)
    except KeyboardInterrupt:
        return


def _writer(output: str, term: Terminal, found: Sequence[Alert], *, follow: bool
            ) -> Callable[[Alert], None]:
    if output == "json":
        return lambda a: term.write(json.dumps(a.to_json(), separators=(",", ":")))
    widths = FOLLOW_WIDTHS if follow else column_widths(COLUMNS, [cells(a) for a in found])
    term.write(aligned_row(COLUMNS, widths))
    return lambda a: term.write(aligned_row(cells(a), widths))


def cells(alert: Alert) -> tuple[str, ...]:
    moment = iso_time(alert.time).replace("T", " ")[:23]
    return (moment, alert.node, alert.rule, alert.key.text, alert.summary,
            "; ".join(alert.actions) or "-")


