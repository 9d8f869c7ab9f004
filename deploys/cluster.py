"""Entry point: the whole cluster — preflight on every node, then nodes, then Kubernetes,
then add-ons, in that order; the run ends by waiting until the cluster is ready and
printing a summary.

pyinfra inventory.py deploys/cluster.py
"""

from deploys.addons import converge_addons, wait_for_cluster
from deploys.kubernetes import converge_kubernetes
from deploys.preflight import check_cluster
from deploys.runtime.containerd import converge_containerd
from deploys.system import prepare_system

check_cluster()
prepare_system()
converge_containerd()
converge_kubernetes()
converge_addons()
wait_for_cluster()
