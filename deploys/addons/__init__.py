"""Cluster add-ons, from the first control plane: the network plugin (flannel, see
deploys/addons/network.py), then the Kuboard agent."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from deploys.addons import kuboard
from deploys.addons.kubectl import ADDONS_DIR
from deploys.addons.kuboard import converge_kuboard_agent
from deploys.addons.network import PLUGIN as NETWORK
from deploys.addons.ready import wait_for_cluster
from deploys.context import NodeContext

__all__ = ["converge", "rendered_files", "wait_for_cluster"]


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of every file the add-ons write on this node, as the deploy
    writes them (the Kuboard agent manifest itself comes from the Kuboard server)."""
    return {**NETWORK.rendered_files(ctx), **kuboard.rendered_files(ctx)}


@deploy("Add-ons")
def converge():
    ctx = NodeContext.of(host)
    if not ctx.is_first_control_plane:
        return
    files.directory(
        name="add-ons: create manifest directory",
        path=ADDONS_DIR,
        user="root",
        group="root",
        mode="700",
    )
    NETWORK.converge(ctx)
    agent = kuboard.agent_settings(ctx)
    if agent:
        converge_kuboard_agent(agent)
