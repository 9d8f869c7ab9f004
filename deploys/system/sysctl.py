"""sysctl: the parameters kubeadm requires plus the cluster file's `sysctls`, written whole
to /etc/sysctl.d/99-kubernetes.conf (applied at every boot by systemd-sysctl) and set live
where the live value differs.

In a container (systemd-nspawn, LXC, ...) only net.* parameters belong to the node (its
own network namespace); the others are the container host's kernel and read-only. They
stay in the file, and a differing one is reported as a warning naming the parameter
instead of failing the run: the same rule systemd-sysctl applies at boot there (it skips
read-only parameters). On a VM or a real machine a failing sysctl fails the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy, operation
from pyinfra.facts.server import Sysctl
from pyinfra.operations import files, server

from deploys.context import NodeContext
from deploys.settings import Settings
from deploys.templating import render

SYSCTL_FILE = "/etc/sysctl.d/99-kubernetes.conf"
# Kernel parameters kubeadm's preflight requires; every node gets them.
REQUIRED_SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.ipv4.ip_forward": "1",
}
_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
_SYSCTL_VALUE = re.compile(r"[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*")


def _text(value) -> str:
    """A sysctl value as one normalised string: "4096 87380 6291456", "1"."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return " ".join(str(value).split())


def check_settings(s: Settings) -> Iterator[tuple[str, str]]:
    """(setting, problem) for every entry of `sysctls` that must be refused."""
    for key, value in s.sysctls.items():
        if not _SYSCTL_KEY.fullmatch(str(key)):
            yield f"sysctls.{key}", "is not a sysctl name like 'vm.max_map_count'"
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            yield f"sysctls.{key}", "the value must be a string or an integer"
        elif not _SYSCTL_VALUE.fullmatch(str(value)):
            yield f"sysctls.{key}", f"{value!r}: expected one line of text"
        elif key in REQUIRED_SYSCTLS and _text(value) != REQUIRED_SYSCTLS[key]:
            yield f"sysctls.{key}", f"kubeadm requires {REQUIRED_SYSCTLS[key]}"


def sysctl_values(settings: Settings) -> dict[str, str]:
    """Every parameter to set: the required ones first, then the cluster file's."""
    return {**REQUIRED_SYSCTLS, **{k: _text(v) for k, v in settings.sysctls.items()}}


def sysctl_file(settings: Settings) -> str:
    return render("system/sysctl.conf.j2", sysctls=sysctl_values(settings))


def is_namespaced(key: str) -> bool:
    """Whether a container may set this parameter: the network namespace's own (net.*)."""
    return key.startswith("net.")


def live_changes(
    wanted: dict[str, str], live: dict, container: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(to set now, read-only here) among the parameters whose live value differs."""
    differing = {k: v for k, v in wanted.items() if k not in live or _text(live[k]) != v}
    if container == "none":
        return differing, {}
    settable = {k: v for k, v in differing.items() if is_namespaced(k)}
    return settable, {k: v for k, v in differing.items() if k not in settable}


@operation()
def live_values(changes: dict[str, str]):
    """Set the parameters whose live value differs."""
    if not changes:
        host.noop("live values match 99-kubernetes.conf")
    for key, value in changes.items():
        yield from server.sysctl._inner(key=key, value=value)


@deploy("sysctl")
def configure_sysctl(ctx: NodeContext, current: dict):
    wanted = sysctl_values(ctx.settings)
    files.put(
        name="sysctl: write 99-kubernetes.conf",
        src=StringIO(sysctl_file(ctx.settings)),
        dest=SYSCTL_FILE,
        mode="644",
        create_remote_dir=False,  # systemd's own directory
    )
    live = host.get_fact(Sysctl, keys=list(wanted))
    settable, read_only = live_changes(wanted, live, current["container"])
    for key, value in read_only.items():
        host.log(
            f"sysctl: {key} = {value} is in {SYSCTL_FILE} but cannot be set inside this "
            f"container ({current['container']}); it belongs to the container host's kernel",
            log_func=logger.warning,
        )
    live_values(name="sysctl: set live values", changes=settable)
