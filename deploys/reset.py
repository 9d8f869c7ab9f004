"""Entry point: tear Kubernetes down on every host of the run (the whole cluster file, or
the hosts given with --limit), leaving each a prepared node; the next deploys/cluster.py
builds a new cluster (deploys/kubernetes/removal.py). Refused without RESET=yes.

RESET=yes pyinfra inventory.py deploys/reset.py
"""

from deploys.kubernetes.removal import reset

reset()
