"""`kanal lab up|status|apply|delete|down|probe`: the cluster network built on this machine.

Each command parses its arguments, makes one call on `kanal.lab.Lab` and prints the result;
everything else (state, kernel, processes) is the lab's. The lab's state lives in `--state-dir`,
else `$KANAL_LAB_DIR`, else /var/lib/kanal/lab: one lab per state directory.

`kanal.lab` is imported when a lab command runs, not when the parser is built: it brings pyroute2
and the kernel bindings, about 0.3 s that `kanal check` and `matrix` should not pay.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from kanal.cli.analysis import (
    _AddProbe,
    _SetProbeProtocol,
    add_filename_argument,
    port_number,
    protocol_name,
)
from kanal.cli.output import Terminal

if TYPE_CHECKING:
    from kanal.lab.lab import Lab, LabChange, LabStatus

Command = Callable[[argparse.Namespace, Terminal], int]

SUMMARY = "build the cluster network on this machine from network namespaces, with real packets"
DESCRIPTION = """\
Build the pods of the manifests (and an optional `kind: Lab`: nodes, backend vxlan|host-gw, ipam
node|namespace, clusterCIDR) as network namespaces on one machine, wired Calico-style with routed
/32 veths, nodes joined by VXLAN or host-gw routes, every declared port served, and the policies
enforced by nftables in each node. A flow collector per node records every connection with the
policy and rule that decided it (`kanal flows`, `kanal stats`, `kanal graph`; `--no-flows` turns
that off). Needs root.
"""
EPILOG = """\
examples:
  kanal lab up -f examples/three-tier
  kanal lab status -o json
  kanal lab probe --port 5432
  kanal flows --last 10                       the flows of those probes, with the deciding rule
  kanal lab apply -f new-policy.yaml
  kanal lab delete -f new-policy.yaml
  kanal lab down

state: --state-dir, else $KANAL_LAB_DIR, else /var/lib/kanal/lab (one lab per directory)
"""
PROBE_EPILOG = """\
examples:
  kanal lab probe                                   every declared port, every pod pair
  kanal lab probe --port 80 --port 53 --protocol UDP --from x/a -o json

A probe is allowed when the destination pod answered (connected or refused: the packet got
through both nodes' firewalls) and denied when it timed out. Rows are sources, columns
destinations; `!` marks a cell where the engine predicts the opposite.

exit status: 0 the kernel agrees with the engine, 1 some pair disagrees, 2 bad input
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lab",
        help=SUMMARY,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="lab commands", metavar="COMMAND", required=True)
    up = _command(commands, "up", up_command, "build the lab from manifests and enforce them")
    add_filename_argument(up)
    up.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="start of every netns name (default kl-<lab name>-)",
    )
    up.add_argument(
        "--no-flows",
        action="store_true",
        help="no flow collectors (and no verdict logging in the nodes' tables)",
    )
    _output_option(up)
    status = _command(commands, "status", status_command,
                      "nodes, pods, addresses, rulesets, agents and flow collectors")
    _output_option(status)
    for name, run, summary in (
        ("apply", apply_command, "add or change pods, namespaces and policies (labels too)"),
        ("delete", delete_command, "remove the objects the manifests name"),
    ):
        command = _command(commands, name, run, summary)
        add_filename_argument(command)
        _output_option(command)
    down = _command(commands, "down", down_command, "remove everything the lab created")
    down.add_argument(
        "--prefix",
        metavar="PREFIX",
        help="also remove namespaces with this prefix (when the state is lost)",
    )
    _add_probe_command(commands)


def _command(
    commands: Any, name: str, run: Command, summary: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the lab's state directory (default $KANAL_LAB_DIR or /var/lib/kanal/lab)",
    )
    parser.set_defaults(run=run)
    return parser


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")


def _add_probe_command(commands: Any) -> None:
    parser = _command(
        commands,
        "probe",
        probe_command,
        "send real connections between pods beside the engine's prediction",
        PROBE_EPILOG,
    )
    parser.add_argument(
        "--port", dest="probes", action=_AddProbe, type=port_number, metavar="N",
        help="a probe port; repeatable (default: every declared port)",
    )
    parser.add_argument(
        "--protocol", dest="probes", action=_SetProbeProtocol, type=protocol_name,
        metavar="TCP|UDP|SCTP", help="protocol of the --port before it (default TCP)",
    )
    parser.add_argument(
        "--from", dest="sources", action="append", default=[], metavar="NS/POD",
        help="probe only from this pod; repeatable (default: every pod)",
    )
    parser.add_argument(
        "--to", dest="destinations", action="append", default=[], metavar="NS/POD",
        help="probe only to this pod; repeatable (default: every pod)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1.0, metavar="SECONDS",
        help="how long a denied probe waits (default 1)",
    )
    parser.add_argument(
        "--parallel", type=int, default=64, metavar="N", help="probes in flight (default 64)"
    )
    parser.add_argument("-o", "--output", choices=("text", "json", "junit"), default="text")
    parser.set_defaults(probes=[])


def _lab(args: argparse.Namespace) -> Lab:
    from kanal.lab.lab import Lab  # noqa: PLC0415 - see the module docstring
    from kanal.lab.state import state_dir_from  # noqa: PLC0415

    return Lab(state_dir_from(args.state_dir), prefix=getattr(args, "prefix", None))


# -- commands ----------------------------------------------------------------------------------


def up_command(args: argparse.Namespace, term: Terminal) -> int:
    lab = _lab(args)
    change = lab.up(args.filenames, flows=not args.no_flows)
    _report(change, term)
    status = lab.status()
    term.note(
        f"lab `{status.name}` is up in {change.elapsed_s:.2f} s: {len(status.nodes)} nodes, "
        f"{len(status.pods)} pods"
    )
    _write_status(status, args.output, term)
    return 0


def status_command(args: argparse.Namespace, term: Terminal) -> int:
    status = _lab(args).status()
    for problem in status.problems:
        term.warn(problem)
    _write_status(status, args.output, term)
    return 0


def apply_command(args: argparse.Namespace, term: Terminal) -> int:
    return _change(args, term, _lab(args).apply)


def delete_command(args: argparse.Namespace, term: Terminal) -> int:
    return _change(args, term, _lab(args).delete)


def _change(
    args: argparse.Namespace, term: Terminal, action: Callable[[Sequence[str]], LabChange]
) -> int:
    change = action(args.filenames)
    _report(change, term)
    if args.output == "json":
        term.write_json(change_json(change))
    else:
        for line in change_lines(change):
            term.write(line)
    return 0


def down_command(args: argparse.Namespace, term: Terminal) -> int:
    removed = _lab(args).down()
    if not removed.netns and not removed.processes:
        term.note("nothing to remove: no lab is up")
    term.write(
        f"removed {len(removed.netns)} network namespaces and stopped "
        f"{len(removed.processes)} processes"
    )
    return 0


def probe_command(args: argparse.Namespace, term: Terminal) -> int:
    from kanal.lab.probe import report_json, report_junit, report_text  # noqa: PLC0415

    if args.timeout <= 0 or args.parallel < 1:
        term.abort("--timeout must be positive and --parallel at least 1")
    report = _lab(args).probe(
        args.probes,
        sources=args.sources,
        destinations=args.destinations,
        timeout_s=args.timeout,
        parallelism=args.parallel,
    )
    if args.output == "json":
        term.write_json(report_json(report), indent=None)
    elif args.output == "junit":
        term.write(report_junit(report))
    else:
        for line in report_text(report):
            term.write(line)
    return 1 if report.mismatches else 0


# -- output ------------------------------------------------------------------------------------


def _report(change: LabChange, term: Terminal) -> None:
    for note in change.notes:
        term.note(note)
    for warning in change.warnings:
        term.warn(warning)


def change_lines(change: LabChange) -> list[str]:
    kinds = {u.kind for u in change.updates}
    tables = (
        "whole tables reloaded" if "load" in kinds
        else "chains and set elements updated" if any(
            u.reason == "restructured" for u in change.updates)
        else "set elements updated" if "delta" in kinds
        else "rules unchanged"
    )
    per_node = ", ".join(f"{u.node} {u.kind}" for u in change.updates)
    lines = [f"applied in {change.elapsed_s:.2f} s: {tables} ({per_node})"]
    lines += [f"pod {key} added" for key in change.added]
    lines += [f"pod {key} removed" for key in change.removed]
    lines += [f"pod servers restarted on {node}" for node in change.restarted]
    return lines


def change_json(change: LabChange) -> dict[str, Any]:
    return {
        "added": list(change.added),
        "removed": list(change.removed),
        "nodes": [{"name": u.node, "update": u.kind} for u in change.updates],
        "servers_restarted": list(change.restarted),
    }


def _write_status(status: LabStatus, output: str, term: Terminal) -> None:
    if output == "json":
        term.write_json(status.to_json())
        return
    for line in status_lines(status):
        term.write(line)


def status_lines(status: LabStatus) -> list[str]:
    head = (
        f"lab {status.name}: {status.phase}, backend {status.backend}, ipam {status.ipam}, "
        f"cluster {status.cluster_cidr}, prefix {status.prefix}, state {status.state_dir}"
    )
    nodes = [(
        "NODE", "NETNS", "UNDERLAY", "POD CIDR", "PODS", "SERVERS", "AGENT", "LAST SYNC",
        "RULES", "ELEMENTS", "COLLECTOR", "FLOWS",
    )]
    for n in status.nodes:
        counts = n.ruleset or {}
        elements = counts.get("set_elements", 0) + counts.get("map_elements", 0)
        nodes.append((
            n.name, n.netns, n.underlay_ip, n.pod_cidr or "-", str(n.pods),
            "running" if n.server_running else "-" if n.server_pid is None else "stopped",
            *_agent_cells(n.agent),
            str(counts["rules"]) if n.ruleset else "none", str(elements) if n.ruleset else "-",
            *_collector_cells(n.collector),
        ))
    pods = [("POD", "IP", "NODE", "NETNS")]
    pods += [(p.name, p.ip, p.node, p.netns) for p in status.pods]
    return [head, "", *_columns(nodes), "", *_columns(pods)]


def _agent_cells(agent: dict[str, Any] | None) -> tuple[str, str]:
    """AGENT: `ready r<revision applied>`, `syncing`, `unhealthy` or `down`; LAST SYNC: how
    the kernel was last written (`load` whole table, `delta` elements) and at which revision."""
    if agent is None:  # no answer from its /status
        return "down", "-"
    last = agent.get("last_sync")
    synced = f"{last['kind']} r{last['revision']}" if last else "-"
    if agent.get("healthy") is False:
        return "unhealthy", synced
    if agent.get("ready"):
        return f"ready r{agent.get('applied_revision')}", synced
    return "syncing", synced


def _collector_cells(collector: dict[str, Any] | None) -> tuple[str, str]:
    """COLLECTOR: `running`, `down` or `off` (the lab has no flows); FLOWS: the records it
    wrote (`?` when the flow database cannot be read)."""
    if collector is None:
        return "off", "-"
    records = collector.get("records")
    return ("running" if collector["running"] else "down",
            "?" if records is None else str(records))


def _columns(rows: Iterable[Sequence[str]]) -> list[str]:
    table = [list(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
