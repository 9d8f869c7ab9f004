"""Cluster add-ons: flannel and the Kuboard agent."""

from pyinfra.api import deploy


@deploy("Add-ons")
def converge_addons():
    pass
