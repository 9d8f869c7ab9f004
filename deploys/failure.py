"""One way to fail for each kind of error (the rule, also in ARCHITECTURE.md):

1. A cluster file that must not be applied: settings.ClusterError, raised while the file
   is loaded, before pyinfra connects to anything (inventory.py, the renderer: exit 2).
2. A host whose state, read before any change, forbids the run: preflight
   (deploys/preflight) reads every host first and stops the run with one report of every
   problem on every host (an unsupported OS, cgroup v1, a small machine, busy ports, ...);
   what a concern itself reads before any change (a node in the cluster with another
   Kubernetes release, a missing admin_user) raises pyinfra's OperationError from its
   @deploy code. Both run while pyinfra prepares the run: it stops before any operation
   changes any host.
3. What only shows while the run executes (a command's result, what containerd loaded
   after its restart, credentials read from another host, a fetched manifest): the
   operation fails on that host, with a failing command that says why on stderr or with
   fail(message); the other hosts go on. Operation bodies never raise: an exception there
   ends the whole run with a traceback.

A programming error (a value the settings checks already refuse) may raise anything.
"""

from __future__ import annotations

from pyinfra import logger
from pyinfra.api import FunctionCommand


def report(host, message: str) -> bool:
    """Log `message` as this host's error; False, to fail the operation it is part of."""
    host.log_styled(message, fg="red", log_func=logger.error)
    return False


def _fail(state, host, message: str) -> bool:
    return report(host, message)


def fail(message: str) -> FunctionCommand:
    """A command that fails this host's operation with `message` (and runs nothing remote).
    The message must not hold secrets: it is printed."""
    return FunctionCommand(_fail, (message,), {})
