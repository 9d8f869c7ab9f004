"""Entry point: take the hosts given with --limit out of the cluster — drained, a control
plane's etcd member removed, the Node deleted, `kubeadm reset`, then cleaned — leaving each
a prepared node (deploys/kubernetes/removal.py). Refused, before any change, without
--limit, for the last control plane, or when etcd would lose quorum.

pyinfra inventory.py deploys/remove.py --limit NAME
"""

from deploys.kubernetes.removal import remove

remove()
