"""Command line of the lab: ``python -m tests.lab up|down|status|restart``."""

from __future__ import annotations

import argparse
import sys
import time

from tests.lab import config
from tests.lab.api import Lab, LabUnavailable


def print_status(lab: Lab) -> None:
    if not lab.nodes:
        print("no lab nodes (python -m tests.lab up)")
        return
    rows = [("NAME", "SUITE", "ADDRESS", "PID", "RUNNING", "SSH")]
    for row in lab.status():
        rows.append(
            (
                row["name"],
                row["suite"],
                row["address"],
                str(row["pid"] or "-"),
                "yes" if row["running"] else "no",
                "ok" if row["ssh"] else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print(f"inventory: {lab.inventory_path}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="create or converge the lab's nodes")
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument(
        "--suite",
        nargs="+",
        choices=config.SUITES,
        default=["bookworm"],
        help="Debian suites, assigned to the nodes in order and cycled (default bookworm)",
    )
    up.add_argument(
        "--control-planes",
        type=int,
        default=1,
        help="the first K nodes are control planes (default 1; more: with a "
        "control_plane_endpoint, the stand-in control plane's address)",
    )
    up.add_argument(
        "--kubernetes-versions",
        nargs="+",
        default=[],
        metavar="VERSION",
        help="releases the stand-in Kubernetes repository serves; the cluster file pins the "
        "first (default: the project's default release)",
    )
    commands.add_parser("down", help="stop the nodes and remove all the lab created")
    commands.add_parser("status", help="show the nodes")
    restart = commands.add_parser("restart", help="power-cycle one node")
    restart.add_argument("name")
    stop = commands.add_parser("stop", help="power one node off (restart or up boots it)")
    stop.add_argument("name")
    args = parser.parse_args()

    try:
        if args.command == "up":
            lab = Lab.up(
                nodes=args.nodes,
                suites=args.suite,
                control_planes=args.control_planes,
                kubernetes_versions=args.kubernetes_versions,
            )
            print_status(lab)
        elif args.command == "down":
            Lab.load().down()
        elif args.command == "status":
            print_status(Lab.load())
        elif args.command == "stop":
            Lab.load().stop(args.name)
            print(f"{args.name} powered off")
        else:
            started = time.monotonic()
            Lab.load().restart(args.name)
            print(f"{args.name} power-cycled and up in {time.monotonic() - started:.1f} s")
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, LookupError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
