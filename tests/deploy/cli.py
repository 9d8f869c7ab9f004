"""pyinfra's own command line against recorded hosts, for tests of what it prints.

    CLUSTER=site.yaml python -m tests.deploy.cli OS_RELEASE [--responses=MODULE:NAME]
                                                 [pyinfra arguments ...]

Runs `pyinfra` (its CLI, printing and logging included) with two test doubles, so that a
whole run happens without any machine: facts come from the recorded fixtures of OS_RELEASE
(tests/deploy/facts, each host's own values included, as in the harness), and the SSH
connector's client answers each command from the responses (a list of (regex, exit code,
stdout) as in the harness, matched against the command inside pyinfra's `sh -c` wrapper),
else with success and no output; uploads and downloads succeed. Nothing connects anywhere
and nothing runs locally.
"""

from __future__ import annotations

import importlib
import io
import shlex
import sys
from unittest import mock

from pyinfra.connectors.ssh import SSHConnector

from tests.deploy import harness


class _Channel:
    def __init__(self, code: int):
        self.code = code

    def recv_exit_status(self) -> int:
        return self.code


class _Output(list):
    """A paramiko output stream: lines of text, and the channel giving the exit status."""

    def __init__(self, lines, channel: _Channel):
        super().__init__(lines)
        self.channel = channel


class _Client:
    """A paramiko SSHClient that runs nothing and answers from recorded responses."""

    def __init__(self, responses):
        self.connector = harness.RecordedConnector(responses)

    def exec_command(self, command, get_pty=False):
        code, out = self.connector.answer(shlex.split(command)[-1])
        channel = _Channel(code)
        lines = [f"{line}\n" for line in out.splitlines()]
        stdout, stderr = (lines, []) if code == 0 else ([], lines)
        return io.BytesIO(), _Output(stdout, channel), _Output(stderr, channel)

    def close(self) -> None:
        pass


def main(argv: list[str]) -> None:
    os_release, *arguments = argv
    recorded = harness.load_facts(os_release)
    own = harness.load_host_facts(os_release)
    responses = []
    if arguments and arguments[0].startswith("--responses="):
        module, _, name = arguments.pop(0).removeprefix("--responses=").partition(":")
        responses = getattr(importlib.import_module(module), name)

    def _connect(self) -> None:
        self.client = _Client(responses)

    def get_fact(state, host, cls, args=None, kwargs=None, **_):
        key = harness.fact_key(cls, args or (), kwargs or {})
        facts = harness._merged(recorded, own.get(host.name, {}))
        return facts[key] if key in facts else cls().default()

    with (
        mock.patch.object(SSHConnector, "_connect", _connect),
        mock.patch.object(SSHConnector, "put_file", lambda *a, **k: True),
        mock.patch.object(SSHConnector, "get_file", lambda *a, **k: True),
        mock.patch("pyinfra.api.host.get_fact", get_fact),
        mock.patch("pyinfra.api.facts.get_fact", get_fact),
        mock.patch.object(sys, "argv", ["pyinfra", *arguments]),
    ):
        from pyinfra_cli.main import main as pyinfra

        pyinfra()


if __name__ == "__main__":
    main(sys.argv[1:])
