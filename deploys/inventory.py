"""Turn a checked cluster file into pyinfra inventory groups and host data."""

from __future__ import annotations

import sys

from deploys.settings import Cluster, ClusterError, Node, load_cluster

# Settings that are pyinfra connector keys under another name.
_PYINFRA_KEYS = {
    "ssh_user": "ssh_user",
    "ssh_port": "ssh_port",
    "ssh_key": "ssh_key",
    "ssh_known_hosts_file": "ssh_known_hosts_file",
    "sudo": "_sudo",
}


def host_data(cluster: Cluster, node) -> dict:
    """pyinfra data of one node: its identity plus the settings the cluster file sets."""
    overrides = {**cluster.overrides, **node.overrides}
    data = {"node_name": node.name, "address": node.address, "roles": list(node.roles)}
    data["ssh_hostname"] = node.address
    data.update(overrides)
    settings = cluster.settings_for(node)
    for key, pyinfra_key in _PYINFRA_KEYS.items():
        value = getattr(settings, key)
        if value not in ("", None):
            data[pyinfra_key] = value
    if settings.ssh_known_hosts_file:
        data["ssh_strict_host_key_checking"] = "yes"
    return data


def groups(path: str) -> dict[str, list]:
    """The inventory groups of a cluster file; exits with the reason if it is refused."""
    try:
        cluster = load_cluster(path)
    except ClusterError as exc:
        sys.stderr.write(f"refused: {exc}\n")
        raise SystemExit(2) from None
    for warning in cluster.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    return {
        "k8s_cluster": [(n.name, host_data(cluster, n)) for n in cluster.nodes],
        "kube_control_plane": [n.name for n in cluster.nodes if n.is_control_plane],
        "kube_node": [n.name for n in cluster.nodes if n.is_worker],
    }


def cluster_nodes(inventory) -> list[Node]:
    """The cluster's nodes, in cluster-file order, read back from a pyinfra inventory."""
    return [
        Node(
            name=h.data.node_name,
            address=h.data.address,
            roles=tuple(h.data.roles),
            overrides={},
        )
        for h in inventory.get_group("k8s_cluster")
    ]
