"""Packages every node needs before containerd and the Kubernetes packages.

kubeadm's preflight requires ip, iptables, mount, nsenter, touch (and conntrack before
Kubernetes 1.32) and warns without ebtables, ethtool, socat and tc; sysctl and modprobe
are what this project's own steps run. apt update runs only when something is missing.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy, operation

from deploys.context import NodeContext
from deploys.distro import Release
from deploys.settings import Settings
from deploys.system.timesync import time_daemon

BASE_PACKAGES = (
    "ca-certificates",
    "curl",
    "gpg",
    "procps",  # sysctl
    "kmod",  # modprobe
    "iproute2",  # ip, tc
    "iptables",
    "conntrack",
    "ebtables",
    "ethtool",
    "socat",
)
# kube-proxy in IPVS mode: the IP sets it manages and the tool to inspect IPVS.
IPVS_PACKAGES = ("ipset", "ipvsadm")
# kube-proxy in nftables mode brings its own nft; the node's is the tool to inspect its
# rules (`nft list table ip kube-proxy`). The package's nftables.service stays disabled.
NFTABLES_PACKAGES = ("nftables",)


def node_packages(settings: Settings, release: Release) -> tuple[str, ...]:
    """Every package OS preparation installs on this node, the time daemon included."""
    packages = list(BASE_PACKAGES)
    # apt speaks https itself since 1.5; on the oldest supported releases the package
    # (transitional there) is installed as the Kubernetes and Docker guides for them do.
    if release.older_than(ubuntu=(22, 4), debian=(12,)):
        packages.append("apt-transport-https")
    if settings.kube_proxy_mode == "ipvs":
        packages += IPVS_PACKAGES
    if settings.kube_proxy_mode == "nftables":
        packages += NFTABLES_PACKAGES
    packages.append(time_daemon(settings.time_sync, release).package)
    return tuple(packages)


@operation()
def packages_installed(packages: tuple[str, ...], current: list[str], family):
    """Update the package lists and install, only when a package is missing (`family`:
    the release's package family, deploys/distro/apt.py)."""
    if all(p in current for p in packages):
        host.noop("node packages are installed")
        return
    yield from family.update._inner()
    yield from family.install._inner(packages=list(packages))


@deploy("Node packages")
def install_packages(ctx: NodeContext, current: dict):
    packages_installed(
        name="packages: install node packages",
        packages=node_packages(ctx.settings, ctx.release),
        current=current["packages"],
        family=ctx.release.family,
    )
