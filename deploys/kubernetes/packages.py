"""kubeadm, kubelet and kubectl from the per-minor Kubernetes apt repository.

The repository (pkgs.k8s.io, or a mirror of it) has one apt source per minor, signed by a
key kept as a `signed-by` keyring; the packages are pinned to the inventory's exact release
and held, so `apt upgrade` never moves them. A node that is already in the cluster keeps its
packages here: a changed kubernetes_version is an upgrade (deploys/kubernetes/upgrade.py),
which moves kubeadm, then the kubelet and kubectl, in kubeadm's order.
"""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from deploys import versions
from deploys.context import NodeContext
from deploys.distro import apt
from deploys.settings import Settings

KEYRING = f"{apt.KEYRINGS_DIR}/kubernetes-apt-keyring.gpg"
SOURCE = f"{apt.SOURCES_DIR}/kubernetes.list"
PACKAGES = ("kubeadm", "kubelet", "kubectl")
# kubeadm's package depends on cri-tools (crictl) and kubernetes-cni, which apt installs with
# it from the same per-minor repository (the versions published for that minor, e.g.
# cri-tools 1.35.0 and kubernetes-cni 1.7.1 in v1.35's); they follow kubeadm, unpinned.


def apt_url(settings: Settings) -> str:
    return versions.kubernetes_apt_url(settings.kubernetes_apt_repo, settings.kubernetes_version)


def apt_source(settings: Settings) -> str:
    """The apt source line of the repository of the pinned minor."""
    return apt.source_line(apt_url(settings), "/", KEYRING)


def package_version(settings: Settings) -> str:
    """The exact apt version pinned, e.g. 1.35.9-1.1."""
    return f"{settings.kubernetes_version}-{settings.kubernetes_package_revision}"


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of the files this module writes: the apt source."""
    return {SOURCE: apt_source(ctx.settings)}


def install_packages(ctx: NodeContext, in_cluster: bool) -> None:
    """Keyring, apt source, the pinned packages and their hold.

    in_cluster: the node has joined the cluster (or initialized it) already.
    """
    s = ctx.settings
    wanted = package_version(s)
    installed = {p: v for p, v in host.get_fact(apt.InstalledPackages).items() if p in PACKAGES}
    apt.add_key(
        name="kubernetes: install apt keyring", src=f"{apt_url(s)}Release.key", dest=KEYRING
    )
    files.put(
        name="kubernetes: write apt source",
        src=io.StringIO(apt_source(s)),
        dest=SOURCE,
        user="root",
        group="root",
        mode="644",
    )
    missing = not in_cluster and any(wanted not in installed.get(p, []) for p in PACKAGES)
    apt.install(
        name="kubernetes: install kubeadm, kubelet and kubectl",
        # A node in the cluster is upgraded by deploys/kubernetes/upgrade.py, in order.
        packages=[] if in_cluster else [apt.spec(p, wanted) for p in PACKAGES],
        update=missing,
        # A node not in the cluster yet may hold another release from an earlier run.
        allow_downgrades=True,
        extra_install_args=apt.REPLACE_HELD,
    )
    unheld = [p for p in PACKAGES if p not in apt.held(host.get_fact(Command, apt.HELD_QUERY))]
    server.shell(
        name="kubernetes: hold kubeadm, kubelet and kubectl",
        commands=[apt.hold_command(unheld)] if unheld else [],
    )
