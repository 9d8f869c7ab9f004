"""Lab entry point: a node up to the Kubernetes packages and kubeadm configuration, no further.

    CLUSTER=<cluster file> pyinfra -y inventory.py tests/lab/deploys/kubernetes_packages.py

The same operations as deploys/cluster.py up to and including the package and kubeadm
configuration steps of deploys/kubernetes, but not its bootstrap (init, joins, kubeconfig):
the kubelet and `kubeadm init` cannot run in the lab, where runc cannot start containers.
"""

from pyinfra import host
from pyinfra.api import deploy

from deploys import runtime, system
from deploys.context import NodeContext
from deploys.kubernetes import kubeadm_config, packages
from deploys.kubernetes.bootstrap import in_cluster


@deploy("Kubernetes packages and kubeadm configuration")
def converge_kubernetes_packages():
    ctx = NodeContext.of(host)
    packages.install_packages(ctx, in_cluster=in_cluster(ctx, host))
    kubeadm_config.write_configuration(ctx)


system.converge()
runtime.converge()
converge_kubernetes_packages()
