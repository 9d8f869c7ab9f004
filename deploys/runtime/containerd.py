"""containerd: package, config.toml, registry mirrors, crictl's configuration, sandbox image
guard, and a check of what containerd loaded.

Everything is decided on one fact read before any change (ContainerdState); operations
are added only where the node differs from the wanted state, so a converged node costs that
fact and the managed files' checks. The one value that cannot be read beforehand on a new
node, the version of the containerd the run installs, is read by the config.toml operation
when it executes, after the package operation (deploys/runtime/operations.py).
"""

from __future__ import annotations

import io
import posixpath

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from deploys import secret
from deploys.context import NodeContext
from deploys.distro import host_release
from deploys.runtime import config as config_file
from deploys.runtime import operations
from deploys.runtime.crictl import CRICTL_YAML, crictl_yaml
from deploys.runtime.facts import ContainerdState
from deploys.runtime.package import (
    docker_repository_files,
    package_name,
    package_spec,
    pinned_version,
)
from deploys.runtime.registries import registry_files
from deploys.runtime.sandbox import GUARD_SCRIPT, GUARD_SERVICE, GUARD_TIMER, guard_files
from deploys.settings import Settings


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of every file converge() writes: Docker's repository (when
    it is the source), config.toml for ctx.containerd_version, the registries' hosts.toml,
    crictl's configuration and the sandbox image guard."""
    settings = ctx.settings
    return {
        **(
            docker_repository_files(settings, ctx.release, ctx.arch)
            if settings.containerd_source == "docker"
            else {}
        ),
        config_file.CONFIG_TOML: config_file.config_toml(settings, ctx.containerd_version),
        **registry_files(settings),
        CRICTL_YAML: crictl_yaml(),
        **guard_files(settings),
    }


@deploy("containerd")
def converge():
    before = host.get_fact(ContainerdState)
    release = host_release(before["release"], host.name)
    ctx = NodeContext.of(host, release=release, arch=before["arch"])
    settings = ctx.settings
    install = _install(ctx, before)
    config = operations.config_toml(
        name="containerd: write config.toml",
        settings=settings,
        containerd_version="" if install else before["version"],
    )
    _registries(settings, before)
    restart = operations.restart(
        name="containerd: restart with new config.toml",
        config_written=config,
        applied=before["applied"],
    )
    changes = [op for op in (install, config, restart) if op]
    if not _unit_up(before, "containerd.service"):
        changes.append(
            systemd.service(
                name="containerd: enable and start service",
                service="containerd.service",
                running=True,
                enabled=True,
            )
        )
    write_root_file(CRICTL_YAML, crictl_yaml(), in_existing_dir=True)
    _sandbox_guard(settings, before)
    operations.verify_runtime(
        name="containerd: verify loaded configuration and sandbox image",
        settings=settings,
        before=before,
        changes=changes,
    )


def _install(ctx: NodeContext, before: dict):
    """The package, pinned and held; returns the install operation when one is needed."""
    settings, release = ctx.settings, ctx.release
    if settings.containerd_source == "docker":
        for path, content in docker_repository_files(settings, release, ctx.arch).items():
            write_root_file(path, content)
    name = package_name(settings)
    installed = before["packages"].get(name)
    version = pinned_version(settings, release)
    install = None
    if not installed or (version and installed["version"] != version):
        install = release.family.install(
            name=f"containerd: install {name}",
            packages=[package_spec(settings, release)],
            update=True,
            extra_install_args=release.family.REPLACE_HELD,
        )
    if install or not installed["held"]:
        hold = release.family.hold_command([name])
        server.shell(name=f"containerd: hold {name}", commands=[hold])
    return install


def _registries(settings: Settings, before: dict) -> None:
    """One hosts.toml per registry (root-only: it may carry credentials); hosts.toml files
    of registries no longer configured are removed."""
    wanted = registry_files(settings)
    for path in sorted(set(before["hosts_files"]) - set(wanted)):
        files.file(name=f"containerd: remove {path}", path=path, present=False)
    for path, content in wanted.items():
        if path not in before["hosts_files"]:
            files.directory(
                name=f"containerd: create {posixpath.dirname(path)}",
                path=posixpath.dirname(path),
                user="root",
                group="root",
                mode="755",
            )
        secret.put(name=f"containerd: write {path}", dest=path, content=content)


def _sandbox_guard(settings: Settings, before: dict) -> None:
    """The guard's script, service and timer; the service runs at boot, the timer is on."""
    written = {
        path: write_root_file(
            path, content, mode="755" if path == GUARD_SCRIPT else "644", in_existing_dir=True
        )
        for path, content in guard_files(settings).items()
    }
    units = [op for path, op in written.items() if path != GUARD_SCRIPT]
    systemd.daemon_reload(name="containerd: reload systemd units", _if=any_changed(*units))
    if not before["units"].get(GUARD_SERVICE, {}).get("enabled"):
        systemd.service(
            name=f"containerd: enable {GUARD_SERVICE}",
            service=GUARD_SERVICE,
            running=None,
            enabled=True,
        )
    if not _unit_up(before, GUARD_TIMER):
        systemd.service(
            name=f"containerd: enable and start {GUARD_TIMER}",
            service=GUARD_TIMER,
            running=True,
            enabled=True,
        )


def write_root_file(
    path: str,
    content: str,
    mode: str = "644",
    in_existing_dir: bool = False,
    component: str = "containerd",
):
    """A root-owned file; its directory is created unless it always exists."""
    return files.put(
        name=f"{component}: write {path}",
        src=io.StringIO(content),
        dest=path,
        user="root",
        group="root",
        mode=mode,
        create_remote_dir=not in_existing_dir,
    )


def _unit_up(before: dict, unit: str) -> bool:
    state = before["units"].get(unit, {})
    return bool(state.get("active") and state.get("enabled"))
