"""Running the real `pyinfra` command line against a lab cluster file, as a user would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab import config

PYINFRA = Path(sys.executable).with_name("pyinfra")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess
    seconds: float

    @property
    def output(self) -> str:
        return _ANSI.sub("", self.result.stdout + self.result.stderr)

    def failure(self) -> str:
        """What a failed run said: its error lines, then the end of its output."""
        errors = [line for line in self.output.splitlines() if re.search(r"rror|[Ff]ail", line)]
        return "\n".join(errors[-60:]) + "\n...\n" + self.output[-3000:]

    def totals(self) -> dict[str, int]:
        """pyinfra's "Grand total" row: hosts, success (changed), error, no_change."""
        row = re.search(r"^.*Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", self.output, re.M)
        assert row, self.output[-3000:]
        counts = (0 if value == "-" else int(value) for value in row.groups())
        return dict(zip(("hosts", "success", "error", "no_change"), counts, strict=True))


def pyinfra(
    deploy: str | Path,
    cluster_file: Path,
    timeout: float = 1200,
    limit: str = "",
    env: dict[str, str] | None = None,
) -> Run:
    """`CLUSTER=cluster_file pyinfra -y inventory.py DEPLOY [--limit LIMIT]` from the
    repository root (a path relative to it, or absolute), with `env` added to the
    environment."""
    deploy = Path(deploy)
    if deploy.is_absolute():
        deploy = deploy.relative_to(config.REPO_ROOT)
    started = time.monotonic()
    result = subprocess.run(
        [str(PYINFRA), "-y", *(["--limit", limit] if limit else []), "inventory.py", str(deploy)],
        cwd=config.REPO_ROOT,
        env={**os.environ, **(env or {}), "CLUSTER": str(cluster_file)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    run = Run(result, time.monotonic() - started)
    totals = run.totals() if result.returncode == 0 else "-"
    print(
        f"pyinfra {deploy}: exit {result.returncode} in {run.seconds:.1f} s, {totals}", flush=True
    )
    return run
