"""Turn a checked cluster file into pyinfra inventory groups and host data."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from deploys.settings import Cluster, ClusterError, Node, load_cluster

# The exit code of every refusal, by inventory.py and by the renderer.
REFUSED = 2
# A file Vagrant writes for a project: a machine's private key, or what the Vagrantfile's
# `vagrant up` trigger writes under .vagrant/ (known_hosts).
_VAGRANT_KEY = re.compile(r"(?:^|.*/)\.vagrant/machines/([^/]+)/([^/]+)/private_key")
_VAGRANT_FILE = re.compile(r"(?:^|.*/)\.vagrant/")

# Settings that are pyinfra connector keys under another name.
_PYINFRA_KEYS = {
    "ssh_user": "ssh_user",
    "ssh_port": "ssh_port",
    "ssh_key": "ssh_key",
    "ssh_known_hosts_file": "ssh_known_hosts_file",
    "sudo": "_sudo",
}


def host_data(cluster: Cluster, node: Node) -> dict:
    """pyinfra data of one node: the node, every node of the cluster, the node's checked
    settings as one object (deploys read them through NodeContext.of), and the connection
    keys pyinfra itself reads. Settings print with their secrets as placeholders."""
    settings = cluster.settings_for(node)
    data = {"node": node, "nodes": cluster.nodes, "settings": settings}
    data["ssh_hostname"] = node.address
    for key, pyinfra_key in _PYINFRA_KEYS.items():
        value = getattr(settings, key)
        if value not in ("", None):
            data[pyinfra_key] = value
    if settings.ssh_known_hosts_file:
        data["ssh_strict_host_key_checking"] = "yes"
    return data


def refusal(problems: Iterable[str]) -> int:
    """Write a refusal to stderr, one line per problem; the exit code to stop with."""
    sys.stderr.write("".join(f"refused: {problem}\n" for problem in problems))
    return REFUSED


def missing_local_files(cluster: Cluster) -> list[str]:
    """Files that connecting to the hosts needs on the machine running pyinfra (ssh_key,
    ssh_known_hosts_file) and that are not there, one problem per host and file.

    Not a check of the cluster file (load_cluster): the same file is valid on a machine that
    lacks the keys, where the renderer and the tests read it; only a run that is about to
    connect needs them, so inventory.py checks them and nothing else does."""
    problems = []
    for node in cluster.nodes:
        settings = cluster.settings_for(node)
        for key in ("ssh_key", "ssh_known_hosts_file"):
            name = getattr(settings, key)
            local = Path(name).expanduser()
            if not name:
                continue
            if not local.exists():
                reason = "no such file"
            elif not local.is_file():
                reason = "not a file"
            elif not os.access(local, os.R_OK):
                reason = "not readable"
            else:
                continue
            problem = f"{cluster.path}: host {node.name!r}: {key}: {name}: {reason}"
            problems.append(problem + _vagrant_hint(name))
    return problems


def _vagrant_hint(name: str) -> str:
    """What to do when a missing file is one that Vagrant writes."""
    machine = _VAGRANT_KEY.fullmatch(name)
    if machine:
        machine_dir = Path(name).parent.parent
        others = sorted(p.parent.name for p in machine_dir.glob("*/private_key"))
        return (
            f" (Vagrant's key for machine {machine[1]} with the {machine[2]} provider: run "
            "`vagrant up` first"
            + (f"; the machine has a key for provider {', '.join(others)}" if others else "")
            + ")"
        )
    return " (Vagrant writes it: run `vagrant up` first)" if _VAGRANT_FILE.match(name) else ""


def groups(path: str) -> dict[str, list]:
    """The inventory groups of a cluster file; exits with the reasons if it is refused or a
    file the connections need is missing on this machine."""
    try:
        cluster = load_cluster(path)
    except ClusterError as exc:
        raise SystemExit(refusal(exc.problems)) from None
    missing = missing_local_files(cluster)
    if missing:
        raise SystemExit(refusal(missing))
    for warning in cluster.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    return {
        "k8s_cluster": [(n.name, host_data(cluster, n)) for n in cluster.nodes],
        "kube_control_plane": [n.name for n in cluster.nodes if n.is_control_plane],
        "kube_node": [n.name for n in cluster.nodes if n.is_worker],
    }
