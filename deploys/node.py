"""Entry point: everything a node needs before the Kubernetes packages.

pyinfra inventory.py deploys/node.py
"""

from pyinfra import host

from deploys.concerns import NODE
from deploys.preflight import check_cluster

check_cluster()
for concern in host.loop(NODE):
    concern.converge()
