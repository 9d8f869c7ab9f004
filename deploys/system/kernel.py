"""Kernel modules: listed in /etc/modules-load.d/k8s.conf for every boot, and loaded now;
and the kernel release kube-proxy's nftables mode needs.

A module counts as loaded when it is in /proc/modules or built into the kernel
(/sys/module/NAME, modules.builtin, or what the module provides is there:
deploys.system.facts.MODULE_EVIDENCE): modprobe runs only for a module that is neither, so
a kernel with the modules built in (and no /proc/modules or /sys/module at all, as inside a
container) sees no failed modprobe.

kube-proxy in nftables mode needs no module listed: the kernel loads nf_tables when
kube-proxy creates its table. It refuses to start on a kernel older than 5.13
(kubernetes pkg/proxy/nftables: "kube-proxy in nftables mode requires kernel 5.13 or
later"), which Ubuntu 20.04 (5.4) and Debian 11 (5.10) boot by default: preflight
(deploys/preflight.py) refuses such a node before the run changes anything.
"""

from __future__ import annotations

import re
from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.operations import files

from deploys.context import NodeContext
from deploys.settings import Settings
from deploys.templating import render

MODULES_FILE = "/etc/modules-load.d/k8s.conf"
# overlay: containerd's snapshotter; br_netfilter: bridged pod traffic through iptables.
REQUIRED_MODULES = ("overlay", "br_netfilter")
# kube-proxy in IPVS mode: IPVS, its schedulers, and connection tracking.
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
# The oldest kernel kube-proxy runs on in nftables mode.
NFTABLES_KERNEL = (5, 13)
_KERNEL_RELEASE = re.compile(r"([0-9]+)\.([0-9]+)")


def kernel_modules(settings: Settings) -> tuple[str, ...]:
    if settings.kube_proxy_mode == "ipvs":
        return REQUIRED_MODULES + IPVS_MODULES
    return REQUIRED_MODULES


def nftables_kernel_refusal(node: str, kernel: str | None) -> str | None:
    """Why `node`, running kernel release `kernel` (`uname -r`), cannot run kube-proxy in
    nftables mode; None when it can."""
    match = _KERNEL_RELEASE.match(kernel or "")
    if match and (int(match[1]), int(match[2])) >= NFTABLES_KERNEL:
        return None
    oldest = ".".join(map(str, NFTABLES_KERNEL))
    return (
        f"{node} runs kernel {kernel or '(unknown)'}, and kube-proxy in nftables mode needs "
        f"{oldest} or later: boot a newer kernel (Ubuntu 20.04: linux-generic-hwe-20.04; "
        "Debian 11: the kernel of bullseye-backports) or set kube_proxy_mode to "
        "'iptables'"
    )


def modules_file(settings: Settings) -> str:
    return render("system/modules-load.conf.j2", modules=kernel_modules(settings))


@operation()
def modules_loaded(modules: tuple[str, ...], loaded: list[str]):
    """modprobe the modules that are neither loaded nor built in."""
    missing = [m for m in modules if m not in loaded]
    if missing:
        yield StringCommand("modprobe", "-a", *(QuoteString(m) for m in missing))
    else:
        host.noop(f"{', '.join(modules)}: loaded or built into the kernel")


@deploy("Kernel modules")
def load_kernel_modules(ctx: NodeContext, current: dict):
    files.put(
        name="kernel: write modules-load.d/k8s.conf",
        src=StringIO(modules_file(ctx.settings)),
        dest=MODULES_FILE,
        mode="644",
        create_remote_dir=True,  # Debian 13+ minimal systems ship no /etc/modules-load.d
    )
    modules_loaded(
        name="kernel: load modules",
        modules=kernel_modules(ctx.settings),
        loaded=current["modules"],
    )
