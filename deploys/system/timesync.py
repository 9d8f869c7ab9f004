"""Time sync: one daemon (chrony by default, ntp/ntpsec or systemd-timesyncd), its servers
from the cluster file, enabled and running where the host allows it.

- The config is written whole: chrony.conf / ntp.conf, or a timesyncd drop-in. (chrony's
  `sourcedir` drop-ins need chrony 4; Ubuntu 20.04 ships 3.5, so the whole file it is.)
- Only one daemon syncs: the Debian/Ubuntu time daemons all conflict with each other
  (`time-daemon`), so installing the chosen one removes the others; any still installed
  is removed explicitly.
- A container cannot set the clock (no CAP_SYS_TIME; chrony and timesyncd are skipped by
  their unit conditions there), and a unit skipped by its conditions is left alone: the
  daemon is then enabled, not started — not a failure.
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass, field
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.operations import files, systemd

from deploys.context import NodeContext
from deploys.distro import Release
from deploys.settings import Settings
from deploys.templating import render

# Packages of the time daemons that can be installed; only the chosen one stays.
TIME_PACKAGES = ("chrony", "ntp", "ntpsec", "systemd-timesyncd")


@dataclass(frozen=True)
class TimeDaemon:
    package: str
    unit: str
    config_path: str
    template: str
    data: dict = field(default_factory=dict)  # template data besides the sources


def time_daemon(choice: str, release: Release) -> TimeDaemon:
    """The daemon the `time_sync` setting means on this release."""
    if choice == "chrony":
        return TimeDaemon("chrony", "chrony.service", "/etc/chrony/chrony.conf", "chrony.conf.j2")
    if choice == "timesyncd":
        return TimeDaemon(
            "systemd-timesyncd",
            "systemd-timesyncd.service",
            "/etc/systemd/timesyncd.conf.d/kubernetes.conf",
            "timesyncd.conf.j2",
        )
    if choice != "ntp":
        raise ValueError(f"time_sync {choice!r} is not one of chrony, ntp, timesyncd")
    # Debian 12 and Ubuntu 23.04 replaced ntp by ntpsec (`ntp` became a transitional package).
    if release.older_than(ubuntu=(23, 4), debian=(12,)):
        return TimeDaemon(
            "ntp",
            "ntp.service",
            "/etc/ntp.conf",
            "ntp.conf.j2",
            # "restrict source": the classic ntpd needs it to let pool servers in.
            {
                "driftfile": "/var/lib/ntp/ntp.drift",
                "restrict": [
                    "default kod nomodify nopeer noquery limited",
                    "source nomodify noquery",
                    "127.0.0.1",
                    "::1",
                ],
            },
        )
    return TimeDaemon(
        "ntpsec",
        "ntpsec.service",
        "/etc/ntpsec/ntp.conf",
        "ntp.conf.j2",
        {
            "driftfile": "/var/lib/ntpsec/ntp.drift",
            "restrict": ["default kod nomodify nopeer noquery limited", "127.0.0.1", "::1"],
        },
    )


def time_sources(servers: list[str]) -> list[tuple[str, str]]:
    """(directive, name) per time server: an IP address is one `server`; a name is a `pool`
    (a pool name resolves to several servers; a single host's name works as a pool of one)."""
    sources = []
    for name in servers:
        try:
            ipaddress.ip_address(name)
            sources.append(("server", name))
        except ValueError:
            sources.append(("pool", name))
    return sources


def time_sync_file(settings: Settings, release: Release) -> tuple[str, str]:
    """(path, content) of the chosen daemon's configuration."""
    daemon = time_daemon(settings.time_sync, release)
    content = render(
        f"system/{daemon.template}",
        servers=settings.time_servers,
        sources=time_sources(settings.time_servers),
        **daemon.data,
    )
    return daemon.config_path, content


def should_start(unit: dict, container: str) -> bool:
    """Whether to start the daemon: not in a container (it cannot set the clock there), nor
    where its unit was skipped by its own conditions (ConditionResult=no after a check)."""
    skipped = unit.get("ConditionResult") == "no" and unit.get(
        "ConditionTimestampMonotonic", "0"
    ) not in ("", "0")
    return container == "none" and not skipped


def service_converged(unit: dict, start: bool) -> bool:
    """Enabled, and active unless it is not to be started."""
    return unit.get("UnitFileState") == "enabled" and (
        not start or unit.get("ActiveState") == "active"
    )


@operation()
def only_daemon(keep: str, installed: list[str], family):
    """Remove every time daemon package but `keep` (`family`: deploys/distro/apt.py)."""
    others = [p for p in TIME_PACKAGES if p in installed and p != keep]
    if others:
        yield from family.install._inner(packages=others, present=False)
    else:
        host.noop(f"{keep} is the only time daemon")


@operation()
def daemon_enabled(unit: str, current: dict, container: str):
    """Enable the daemon, and start it where the host allows it (see should_start)."""
    start = should_start(current, container)
    if service_converged(current, start):
        host.noop(f"{unit} is enabled" + (" and running" if start else " (not started here)"))
        return
    yield from systemd.service._inner(service=unit, running=True if start else None, enabled=True)


@deploy("Time sync")
def configure_time_sync(ctx: NodeContext, current: dict):
    daemon = time_daemon(ctx.settings.time_sync, ctx.release)
    name = daemon.unit.removesuffix(".service")
    only_daemon(
        name="time: remove other time daemons",
        keep=daemon.package,
        installed=current["packages"],
        family=ctx.release.family,
    )
    path, content = time_sync_file(ctx.settings, ctx.release)
    config = files.put(
        name=f"time: write {posixpath.basename(path)}",
        src=StringIO(content),
        dest=path,
        mode="644",
        # Only timesyncd's drop-in directory is not created by the daemon's package.
        create_remote_dir=daemon.package == "systemd-timesyncd",
    )
    daemon_enabled(
        name=f"time: enable {name}",
        unit=daemon.unit,
        current=current["services"].get(daemon.unit, {}),
        container=current["container"],
    )
    systemd.service(
        name=f"time: restart {name}",
        service=daemon.unit,
        running=None,
        restarted=True,
        _if=config.did_change,
    )
