"""Benchmark of deploys/node.py and deploys/cluster.py on the test lab: for each, a cold
run and a converged re-run, and pyinfra's own floor on the same nodes.

    python -m tests.lab.benchmark                 # 3 fresh nodes: `down`, then `up`
    python -m tests.lab.benchmark --nodes 9       # 9 nodes (suites cycled)
    python -m tests.lab.benchmark --reuse         # the lab as it is (brought up if it is not)

node.py runs first on fresh nodes, then cluster.py on the same nodes (its cold run is then
the Kubernetes half: packages, init, joins, add-ons, against the lab's stand-in control
plane, a test double: what runs inside Kubernetes is scripted, all else is real).

It runs on the test lab (inventory/testlab.yaml), the tests' own, never on a lab a person
started with `python -m tests.lab up`.

Each run is the real `pyinfra -y inventory.py deploys/node.py` (CLUSTER=inventory/testlab.yaml)
in a child process; its wall time is the child's, from start to exit. The floor is
`pyinfra -y inventory.py exec -- true` on the same nodes: connecting, one command, no facts;
each converged time is also printed as a ratio to it. In the child, pyinfra's SSH connector
counts per host what it asks the node to do: shell commands (facts and operations alike,
each one remote execution) and file transfers (uploads and downloads over SFTP). Counting at
the connector sees exactly what goes over the wire, however an operation or fact builds its
commands. The lab is left up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ["PYINFRA_KUBEADM_LAB"] = "testlab"  # before tests.lab.config is imported

from tests.lab import config  # noqa: E402
from tests.lab.api import Lab  # noqa: E402

SUITES = ("bookworm", "trixie", "sid")
DEPLOY = ["-y", "inventory.py", "deploys/node.py"]
CLUSTER_DEPLOY = ["-y", "inventory.py", "deploys/cluster.py"]
FLOOR = ["-y", "inventory.py", "exec", "--", "true"]


def _counted_pyinfra(counts_path: str, argv: list[str]) -> None:
    """Run pyinfra's command line with ``argv``, counting per host what its SSH connector
    runs; the counts are written to ``counts_path`` as JSON when pyinfra exits."""
    from pyinfra.connectors.ssh import SSHConnector
    from pyinfra_cli.main import main

    counts: dict[str, Counter] = {}

    def counting(method, kind: str):
        def counted(self, *args, **kwargs):
            counts.setdefault(self.host.name, Counter())[kind] += 1
            return method(self, *args, **kwargs)

        return counted

    SSHConnector.run_shell_command = counting(SSHConnector.run_shell_command, "commands")
    SSHConnector._put_file = counting(SSHConnector._put_file, "uploads")
    SSHConnector.get_file = counting(SSHConnector.get_file, "downloads")
    sys.argv = ["pyinfra", *argv]
    try:
        main()
    finally:
        Path(counts_path).write_text(json.dumps(counts))


def run(lab: Lab, label: str, argv: list[str] = DEPLOY) -> dict:
    """One counted pyinfra run (the node deploy unless told) on the lab; wall seconds and
    counts per host."""
    with tempfile.NamedTemporaryFile(suffix=".json") as counts_file:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "tests.lab.benchmark", "--counted", counts_file.name, *argv],
            cwd=config.REPO_ROOT,
            env={**os.environ, "CLUSTER": str(lab.inventory_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wall = time.monotonic() - started
        counts = json.loads(Path(counts_file.name).read_text() or "{}")
    if result.returncode != 0:
        raise RuntimeError(f"{label} run failed:\n{result.stdout[-5000:]}")
    return {"run": label, "wall": wall, "counts": counts}


def per_host(measured: dict, kind: str) -> str:
    """The count of ``kind`` per host: one number when every host has it, else min-max."""
    values = sorted(count.get(kind, 0) for count in measured["counts"].values()) or [0]
    return str(values[0]) if values[0] == values[-1] else f"{values[0]}-{values[-1]}"


def report(nodes: int, runs: list[dict], floor: dict) -> None:
    rows = [("Nodes", "Run", "Wall", "Ratio to floor", "Commands/host", "Uploads/host")]
    for measured in [*runs, floor]:
        rows.append(
            (
                str(nodes),
                measured["run"],
                f"{measured['wall']:.2f} s",
                f"{measured['wall'] / floor['wall']:.1f}x" if measured is not floor else "1x",
                per_host(measured, "commands"),
                per_host(measured, "uploads"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--counted":
        _counted_pyinfra(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.lab.benchmark", description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="keep the lab's nodes as they are")
    parser.add_argument("--nodes", type=int, default=len(SUITES), help="number of nodes")
    args = parser.parse_args()
    if not args.reuse:
        Lab.load().down()
    lab = Lab.up(nodes=args.nodes, suites=SUITES)
    runs = [run(lab, f"node.py {label}") for label in ("cold", "converged")]
    runs += [run(lab, f"cluster.py {label}", CLUSTER_DEPLOY) for label in ("cold", "converged")]
    report(args.nodes, runs, run(lab, "pyinfra floor", FLOOR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
