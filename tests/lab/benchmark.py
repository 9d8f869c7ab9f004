"""Benchmark of deploys/node.py on a 3-node lab: a cold run, then a converged re-run.

    python -m tests.lab.benchmark           # fresh nodes: `down`, then `up`
    python -m tests.lab.benchmark --reuse   # the lab as it is (brought up if it is not)

It runs on the test lab (inventory/testlab.yaml), the tests' own, never on a lab a person
started with `python -m tests.lab up`.

Each run is the real `pyinfra -y inventory.py deploys/node.py` (CLUSTER=inventory/testlab.yaml)
in a child process; its wall time is the child's, from start to exit. In the child, pyinfra's
SSH connector counts per host what it asks the node to do: shell commands (facts and
operations alike, each one remote execution) and file transfers (uploads and downloads over
SFTP). Counting at the connector sees exactly what goes over the wire, however an operation
or fact builds its commands. The lab is left up.

Target (issue 3): the converged re-run of 3 nodes under 3 s wall and under 40 remote
commands per host.
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


def run(lab: Lab, label: str) -> dict:
    """One counted run of the node deploy on the lab; wall seconds and counts per host."""
    with tempfile.NamedTemporaryFile(suffix=".json") as counts_file:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "tests.lab.benchmark", "--counted", counts_file.name, *DEPLOY],
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


def report(measured: dict) -> None:
    print(f"{measured['run']}: {measured['wall']:.2f} s wall")
    for host, count in sorted(measured["counts"].items()):
        print(
            f"  {host}: {count.get('commands', 0)} commands,"
            f" {count.get('uploads', 0)} uploads, {count.get('downloads', 0)} downloads"
        )


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--counted":
        _counted_pyinfra(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.lab.benchmark", description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="keep the lab's nodes as they are")
    args = parser.parse_args()
    if not args.reuse:
        Lab.load().down()
    lab = Lab.up(nodes=len(SUITES), suites=SUITES)
    for label in ("cold", "converged"):
        report(run(lab, label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
