"""OS preparation: one module per concern, composed by converge().

Everything the concerns decide on is read with one fact (deploys.system.facts.SystemState)
before any change, and handed to operations that compare it with the wanted state: they
act where the node differs and otherwise say why nothing was done. Every node gets the
same operations; a converged node costs that fact, the live sysctl values and the
managed files' checks — no apt update, systemctl, modprobe or other command.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys.context import NodeContext
from deploys.distro import host_release
from deploys.loadbalancer.model import vrrp
from deploys.system.facts import SystemState
from deploys.system.firewall import (
    FIREWALLD_SERVICE_FILE,
    configure_firewall,
    firewall_ports,
    firewalld_service,
)
from deploys.system.hosts import configure_hosts
from deploys.system.kernel import MODULES_FILE, load_kernel_modules, modules_file
from deploys.system.packages import install_packages
from deploys.system.swap import disable_swap
from deploys.system.sysctl import SYSCTL_FILE, configure_sysctl, sysctl_file
from deploys.system.timesync import configure_time_sync, time_sync_file

__all__ = ["converge", "rendered_files"]


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """Every whole file OS preparation writes on this node (of release ctx.release):
    {remote path: content}. The firewalld service is written only where firewalld is
    installed."""
    time_path, time_content = time_sync_file(ctx.settings, ctx.release)
    written = {
        MODULES_FILE: modules_file(ctx.settings),
        SYSCTL_FILE: sysctl_file(ctx.settings),
        time_path: time_content,
    }
    if ctx.settings.firewall == "open":
        written[FIREWALLD_SERVICE_FILE] = firewalld_service(
            firewall_ports(ctx.node, ctx.settings), vrrp(ctx.node, ctx.settings)
        )
    return written


@deploy("Prepare the operating system")
def converge():
    current = host.get_fact(SystemState)
    ctx = NodeContext.of(host, release=host_release(current["release"], host.name))
    install_packages(ctx, current)
    disable_swap(current)
    load_kernel_modules(ctx, current)
    configure_sysctl(ctx, current)
    configure_time_sync(ctx, current)
    configure_hosts(ctx, current)
    configure_firewall(ctx, current)
