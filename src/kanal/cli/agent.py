"""`kanal agent --node NAME`: run one node's agent until SIGTERM (see `kanal.agent`).

The command parses its options and hands them to `kanal.agent.main.run`; log lines go to stderr
(one per table load, problem, drift or error; `--verbose` adds every sync). `kanal.agent` is
imported when the command runs: it brings libnftables and the HTTP server, which `kanal check`
should not pay for.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any

from kanal.cli.output import Terminal

SUMMARY = "run the node agent: datastore -> policy engine -> this node's nftables table"
DESCRIPTION = """\
Watch the datastore, keep the policy engine up to date incrementally, render the nftables table
of this node's pods (Calico's "local endpoints only") and apply each batch of changes to the
kernel in one transaction: set-element deltas when only memberships change, else an atomic
replacement of `table inet kanal` (never an empty table, also across restarts). Runs until
SIGTERM or SIGINT; the kernel keeps the table when the agent stops.

HTTP on 127.0.0.1:PORT inside --netns (the node's loopback): /healthz, /readyz, /metrics
(Prometheus, kanal_agent_*), /status (JSON).
"""
EPILOG = """\
examples:
  kanal agent --node node-a --netns kl-demo-n-node-a --store /var/lib/kanal/lab/store.db
  kanal agent --node node-a --pod-interfaces cali     # unknown pods on cali* veths: dropped
  ip netns exec kl-demo-n-node-a curl -s 127.0.0.1:9099/metrics

exit status: 0 stopped by a signal, 2 bad options or no such store
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "agent",
        help=SUMMARY,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--node", required=True, metavar="NAME", help="the node this agent runs")
    parser.add_argument(
        "--netns", metavar="NS", help="the node's network namespace (default: the agent's own)"
    )
    parser.add_argument(
        "--store", type=Path, metavar="PATH",
        help="the datastore file (default $KANAL_LAB_DIR/store.db); it must exist",
    )
    parser.add_argument("--port", type=_port, default=None, metavar="N",
                        help="HTTP port on 127.0.0.1 (default 9099; 0: any free port)")
    parser.add_argument("--min-interval", type=_seconds, default=0.05, metavar="SECONDS",
                        help="least time between two syncs; a burst is one sync (default 0.05)")
    parser.add_argument("--resync-interval", type=_seconds, default=300.0, metavar="SECONDS",
                        help="rewrite the table whole at least this often (default 300)")
    parser.add_argument("--vxlan-port", type=_port, default=4789, metavar="N",
                        help="VXLAN underlay port exempted from conntrack; 0: none (host-gw)")
    parser.add_argument("--log-group", type=_port, default=None, metavar="N",
                        help="NFLOG group for verdict logging (default: off)")
    parser.add_argument(
        "--pod-interfaces", type=_interface_prefix, default=None, metavar="PREFIX",
        help="name prefix of the host side of pod interfaces (e.g. cali): their packets from "
             "or to an address of no pod this agent knows are dropped (default: no such check)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every sync")
    parser.set_defaults(run=agent_command)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def _interface_prefix(text: str) -> str:
    from kanal.render.guard import check_prefix  # noqa: PLC0415

    try:
        check_prefix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def agent_command(args: argparse.Namespace, term: Terminal) -> int:
    from kanal.agent.main import AgentConfig, run  # noqa: PLC0415
    from kanal.agent.runner import RunnerConfig  # noqa: PLC0415
    from kanal.render import RenderOptions  # noqa: PLC0415
    from kanal.store.sqlite import default_store_path  # noqa: PLC0415

    if args.resync_interval <= args.min_interval:
        term.abort("--resync-interval must be longer than --min-interval")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = AgentConfig(
        node=args.node,
        store_path=args.store or default_store_path(),
        netns=args.netns,
        **({"port": args.port} if args.port is not None else {}),
        runner=RunnerConfig(min_interval=args.min_interval, max_interval=args.resync_interval),
        options=RenderOptions(log_group=args.log_group, vxlan_port=args.vxlan_port or None,
                              pod_interfaces=args.pod_interfaces),
    )
    run(config, threading.Event())
    return 0
