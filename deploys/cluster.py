"""Entry point: the whole cluster — preflight on every node, then nodes, then Kubernetes,
then add-ons, in that order; the run ends by waiting until the cluster is ready and
printing a summary.

pyinfra inventory.py deploys/cluster.py
"""

from pyinfra import host

from deploys.addons import wait_for_cluster
from deploys.concerns import CLUSTER
from deploys.preflight import check_cluster

check_cluster()
for concern in host.loop(CLUSTER):
    concern.converge()
wait_for_cluster()
