"""Entry point: everything a node needs before the Kubernetes packages.

pyinfra inventory.py deploys/node.py
"""

from deploys.preflight import check_cluster
from deploys.runtime.containerd import converge_containerd
from deploys.system import prepare_system

check_cluster()
prepare_system()
converge_containerd()
