"""Kubernetes packages, kubeadm configuration and bootstrap."""

from pyinfra.api import deploy


@deploy("Kubernetes")
def converge_kubernetes():
    pass
