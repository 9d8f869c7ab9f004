"""Lab entry point: preflight, OS preparation and the API load balancer, no further.

    CLUSTER=<cluster file> pyinfra -y inventory.py tests/lab/deploys/load_balancer.py

The same concerns as deploys/cluster.py up to the load balancer, without the container
runtime (not needed by haproxy or keepalived) and without Kubernetes: its API servers are
the lab's stand-in API servers (tests/lab/stand_in_api_server.py).
"""

from pyinfra import host

from deploys import loadbalancer, system
from deploys.preflight import check_cluster

check_cluster()
for concern in host.loop((system, loadbalancer)):
    concern.converge()
