"""OS preparation: one module per concern, composed by prepare_system().

Everything the concerns decide on is read with one fact (deploys.facts.system.SystemState)
before any change, and handed to operations that compare it with the wanted state: they
act where the node differs and otherwise say why nothing was done. Every node gets the
same operations; a converged node costs that fact, the live sysctl values and the
managed files' checks — no apt update, systemctl, modprobe or other command.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.context import NodeContext
from deploys.facts.system import SystemState
from deploys.system.firewall import (
    FIREWALLD_SERVICE_FILE,
    configure_firewall,
    firewall_ports,
    firewalld_service,
)
from deploys.system.hosts import configure_hosts
from deploys.system.kernel import MODULES_FILE, load_kernel_modules, modules_file
from deploys.system.packages import install_packages
from deploys.system.release import Release
from deploys.system.swap import disable_swap
from deploys.system.sysctl import SYSCTL_FILE, configure_sysctl, sysctl_file
from deploys.system.timesync import configure_time_sync, time_sync_file


def system_files(ctx: NodeContext, release: Release) -> dict[str, str]:
    """Every whole file OS preparation writes on this node: {remote path: content}. The
    firewalld service is written only where firewalld is installed."""
    time_path, time_content = time_sync_file(ctx.settings, release)
    written = {
        MODULES_FILE: modules_file(ctx.settings),
        SYSCTL_FILE: sysctl_file(ctx.settings),
        time_path: time_content,
    }
    if ctx.settings.firewall == "open":
        written[FIREWALLD_SERVICE_FILE] = firewalld_service(firewall_ports(ctx.node, ctx.settings))
    return written


@deploy("Prepare the operating system")
def prepare_system():
    ctx = NodeContext.of(host)
    current = host.get_fact(SystemState)
    release = Release.parse(current["release"]["id"], current["release"]["version"])
    install_packages(ctx, current, release)
    disable_swap(current)
    load_kernel_modules(ctx, current)
    configure_sysctl(ctx, current)
    configure_time_sync(ctx, current, release)
    configure_hosts(ctx, current)
    configure_firewall(ctx, current)
