"""pyinfra inventory: the cluster file (YAML) as pyinfra groups.

    pyinfra inventory.py deploys/cluster.py                        # inventory/cluster.yaml
    CLUSTER=inventory/lab.yaml pyinfra inventory.py deploys/node.py

The file is checked before pyinfra connects to anything; a bad file stops here with a
message naming the file, the host and the field. So does a missing ssh_key or
ssh_known_hosts_file on this machine (for the Vagrant cluster: run `vagrant up` first).
"""

import os

from deploys.inventory import groups

_groups = groups(os.environ.get("CLUSTER", "inventory/cluster.yaml"))

k8s_cluster = _groups["k8s_cluster"]  # every node, with its data
kube_control_plane = _groups["kube_control_plane"]
kube_node = _groups["kube_node"]  # workers
