"""Kubernetes: packages, kubeadm configuration, bootstrap (init, joins, kubeconfig) and
upgrades of a running cluster (deploys/kubernetes/upgrade.py).

Every node runs the same operations in the same order, each deciding from the node's own
state whether it has anything to do. That keeps the cross-node order the bootstrap needs —
init before the join credentials, the credentials before any JoinConfiguration, joins before
the credentials are removed — whichever nodes are new in a run.
"""

from pyinfra import host
from pyinfra.api import deploy

from deploys.context import NodeContext
from deploys.kubernetes import certificates, kubeadm_config, packages, reconfigure
from deploys.kubernetes.bootstrap import bootstrap_node, in_cluster
from deploys.kubernetes.upgrade import upgrade_cluster

__all__ = ["converge", "rendered_files"]


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of every file this concern writes on the node (join secrets
    as placeholders: they only exist while a run joins the node)."""
    if not ctx.node.is_member:  # the Kuboard host outside the cluster
        return {}
    return {
        **packages.rendered_files(ctx),
        **kubeadm_config.rendered_files(ctx),
        **reconfigure.rendered_files(ctx),
        **certificates.rendered_files(ctx),
    }


@deploy("Kubernetes")
def converge():
    ctx = NodeContext.of(host)
    if not ctx.node.is_member:  # the Kuboard host outside the cluster
        return
    member = in_cluster(ctx, host)
    packages.install_packages(ctx, in_cluster=member)
    kubeadm_config.write_configuration(ctx)
    reconfigure.upload_configuration(ctx, member)
    bootstrap_node(ctx, pending=not member, record=reconfigure.record_commands(ctx))
    upgrade_cluster(ctx, member)
    reconfigure.reconfigure_node(ctx, member)
    certificates.converge_certificates(ctx, member)
