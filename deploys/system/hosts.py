"""/etc/hosts and hostname: every cluster node in one managed block (the rest of the file
is left alone), and the node's hostname set to its name in the cluster file."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.operations import files, server

from deploys.context import API_NAME, NodeContext
from deploys.settings import Node

# pyinfra puts the marker into an awk pattern: letters, digits, spaces, ':' and '-' only.
HOSTS_MARKER = "# {mark} pyinfra-kubeadm: cluster nodes"


def hosts_block(nodes: tuple[Node, ...], api_name: str = "") -> list[str]:
    """One "address name" line per node, in cluster-file order; then, with api_name (the
    endpoint of api_load_balancer local), that name on loopback, where haproxy listens."""
    return [f"{node.address} {node.name}" for node in nodes] + (
        [f"127.0.0.1 {api_name}"] if api_name else []
    )


def local_api_name(ctx: NodeContext) -> str:
    """The endpoint name /etc/hosts resolves to loopback: with api_load_balancer local, on
    the Kubernetes nodes (where haproxy listens)."""
    return API_NAME if ctx.api_load_balancer == "local" and ctx.node.is_member else ""


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
        content="\n".join(hosts_block(ctx.nodes, local_api_name(ctx))),
        marker=HOSTS_MARKER,
    )
    hostname_is(name="hosts: set hostname", hostname=ctx.node.name, current=current["hostname"])
