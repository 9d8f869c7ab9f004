"""Secrets on a host: root-only files written without printing them, command output read
without printing it.

`files.put` is not used for secret files: with `pyinfra --diff` it prints the content it
uploads, and an upload through sudo passes the content through a file in /tmp that other
users can read. Here the content goes over the command's stdin into a file created with
umask 077 next to the destination, then renamed over it: never printed, never readable by
others. Facts are not used to read secrets either: `pyinfra -vvv` prints fact output.
"""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import OperationError, QuoteString, StringCommand, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.host import Host
from pyinfra.facts.files import File, Sha1File

from deploys.failure import fail

MODE = 600


def write_command(dest: str, content: str) -> StringCommand:
    """Replace `dest` by `content` (read from stdin), root-owned and mode 0600 from birth."""
    part = QuoteString(f"{dest}.part")
    return StringCommand(
        "umask 077 && cat >",
        part,
        "&& chown root:root",
        part,
        "&& mv -f",
        part,
        QuoteString(dest),
        _stdin=content,
    )


@operation()
def put(dest: str, content: str):
    """Converge a root-only file (mode 0600) to `content`; nothing is written if it has it.

    + dest: remote path; its directory must exist
    + content: the text, ending with a newline (one is added if missing)
    """
    if not content.endswith("\n"):
        content += "\n"
    current = host.get_fact(File, path=dest)
    if current is False:
        yield fail(f"{dest} exists and is not a file")
        return
    up_to_date = (
        current
        and (current["mode"], current["user"], current["group"]) == (MODE, "root", "root")
        and host.get_fact(Sha1File, path=dest) == hashlib.sha1(content.encode()).hexdigest()
    )
    if up_to_date:
        host.noop(f"{dest} is up to date")
        return
    yield write_command(dest, content)


def output(command: StringCommand, what: str, target: Host | None = None) -> str:
    """Standard output of `command` run on `target` (default: the host being converged; any
    host of the inventory) with that host's connection arguments (sudo ...). Neither the
    command nor its output is printed at any verbosity. A failure raises OperationError
    naming `what` and the host, with the command's error output, which therefore must not
    echo secrets: commands take them from root-only files, never from their command line.
    An operation body turns that error into deploys.failure.fail (it must not raise)."""
    target = target or host
    arguments, _ = pop_global_arguments(target.state, target, {})
    connection = {k: v for k, v in arguments.items() if k in CONNECTOR_ARGUMENT_KEYS}
    ok, result = target.run_shell_command(
        command, print_output=False, print_input=False, **connection
    )
    if not ok:
        error = result.stderr.strip() or "no error output"
        raise OperationError(f"{what} on {target.name} failed: {error}")
    return result.stdout
