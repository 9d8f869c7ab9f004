"""The runtime deploy's own operations, where no pyinfra operation fits: config.toml needs
the version of the containerd installed earlier in the same run, the restart depends on
what containerd was last started with, and what containerd loaded must be checked.

pyinfra runs an operation's body when the operation executes (and, unless run with --yes,
once before for the change summary), so facts read in these bodies see the node as the
earlier operations of the run left it.
"""

from __future__ import annotations

import io

from pyinfra import host, state
from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files

from deploys.failure import fail
from deploys.runtime import config, verify
from deploys.runtime.facts import APPLIED_STAMP, ContainerdState
from deploys.runtime.sandbox import GUARD_SERVICE, qualified_reference
from deploys.settings import Settings

# Wait for containerd to answer on its socket after a restart, before anything talks to it.
READY_TIMEOUT = 60
_WAIT_READY = f"timeout {READY_TIMEOUT} sh -c 'until ctr version >/dev/null 2>&1; do sleep 1; done'"


# What to do about a distribution containerd too old to configure (Debian 11's 1.4).
_DOCKER_HINT = " (containerd_source: docker installs Docker's containerd.io instead)"


def _changes(op: OperationMeta) -> bool:
    """Whether an earlier operation changed (executing) or will change (change summary)."""
    return op.did_change() if op.is_complete() else bool(op.will_change)


@operation()
def config_toml(settings: Settings, containerd_version: str = ""):
    """Write /etc/containerd/config.toml whole, in the format of the installed containerd.

    + settings: the node's settings
    + containerd_version: `containerd --version` as read before the run; empty when this run
      installs or replaces containerd, and the version is read when the operation executes
    """
    version = containerd_version or host.get_fact(ContainerdState)["version"]
    if not version:
        if state.is_executing:
            yield fail(f"containerd on {host.name}: `containerd --version` gives nothing")
        else:
            host.noop("config.toml follows once containerd is installed (its version decides)")
        return
    try:
        content = config.config_toml(settings, version)
    except ValueError as exc:
        hint = "" if settings.containerd_source == "docker" else _DOCKER_HINT
        yield fail(f"containerd on {host.name}: {exc}{hint}")
        return
    yield from files.put._inner(
        src=io.StringIO(content),
        dest=config.CONFIG_TOML,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )


@operation()
def restart(config_written: OperationMeta, applied: bool):
    """Restart containerd when config.toml changed now or containerd was not restarted since
    it last changed (a run interrupted between the two), then wait until it answers and
    record the config.toml it runs with.

    + config_written: the operation that writes config.toml
    + applied: the running containerd was restarted with the current config.toml
    """
    if applied and not _changes(config_written):
        host.noop("containerd runs the current config.toml")
        return
    yield "systemctl restart containerd.service"
    yield _WAIT_READY
    yield StringCommand("sha256sum", config.CONFIG_TOML, ">", APPLIED_STAMP)


@operation()
def verify_runtime(settings: Settings, before: dict, changes: list[OperationMeta]):
    """Fail the host unless containerd loaded the wanted configuration (containerd config
    dump: the config version, sandbox image, registry config_path, runc with SystemdCgroup,
    CRI not disabled) and its CRI plugins are up; start the sandbox image guard when the
    image is missing.

    + settings: the node's settings
    + before: the ContainerdState read before the run, still true if nothing changed
    + changes: the operations of this run that change what containerd runs
    """
    changed = any(_changes(op) for op in changes)
    if changed and not state.is_executing:
        host.noop("containerd is checked once this run's changes are made")
        return
    now = host.get_fact(ContainerdState) if changed else before
    try:
        wanted = config.config(settings, now["version"])
    except ValueError as exc:
        yield fail(f"containerd on {host.name}: {exc}")
        return
    problems = verify.config_problems(now["dump"], wanted, now["plugins"])
    if now["dump_error"]:
        problems = [f"`containerd config dump` failed: {now['dump_error']}"]
    if problems:
        yield fail(
            f"containerd on {host.name} did not load the wanted configuration: "
            + "; ".join(problems)
        )
        return
    if qualified_reference(config.sandbox_image(settings)) not in now["images"]:
        yield StringCommand("systemctl", "start", GUARD_SERVICE)
        return
    host.noop("containerd runs the wanted configuration and holds the sandbox image")
