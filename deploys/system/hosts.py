"""/etc/hosts and hostname: every cluster node in one managed block (the rest of the file
is left alone), and the node's hostname set to its name in the cluster file."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.operations import files, server

from deploys.context import NodeContext
from deploys.settings import Node

# pyinfra puts the marker into an awk pattern: letters, digits, spaces, ':' and '-' only.
HOSTS_MARKER = "# {mark} pyinfra-kubeadm: cluster nodes"


def hosts_block(nodes: tuple[Node, ...]) -> list[str]:
    """One "address name" line per node, in cluster-file order."""
    return [f"{node.address} {node.name}" for node in nodes]


@operation()
def hostname_is(hostname: str, current: str):
    if current == hostname:
        host.noop(f"hostname is {hostname}")
    else:
        yield from server.hostname._inner(hostname=hostname)


@deploy("Hosts and hostname")
def configure_hosts(ctx: NodeContext, current: dict):
    files.block(
        name="hosts: list cluster nodes in /etc/hosts",
        path="/etc/hosts",
        content="\n".join(hosts_block(ctx.nodes)),
        marker=HOSTS_MARKER,
    )
    hostname_is(name="hosts: set hostname", hostname=ctx.node.name, current=current["hostname"])
