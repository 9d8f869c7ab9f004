"""Where the lab lives: its directories, its network and the Debian suites it can boot."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Labs that share no name, bridge, address, directory or inventory, so that none ever
# touches another: "lab", the one a person starts with `python -m tests.lab up`, and
# "testlab", the one the test suite and the benchmark bring up and take down
# (tests/conftest.py and tests/lab/benchmark.py select it before this module is imported).
# testlab-b..e are spare test labs, so that several checkouts on one machine can run the
# lab suite at once (PYINFRA_KUBEADM_TEST_LAB=testlab-b pytest -m lab).
LABS = {
    # name: (bridge, the bridge's address with the lab's prefix)
    "lab": ("pkalab0", "10.213.47.1/24"),
    "testlab": ("pkatest0", "10.213.48.1/24"),
    "testlab-b": ("pkatestb0", "10.213.49.1/24"),
    "testlab-c": ("pkatestc0", "10.213.50.1/24"),
    "testlab-d": ("pkatestd0", "10.213.51.1/24"),
    "testlab-e": ("pkateste0", "10.213.52.1/24"),
}
TEST_LABS = tuple(name for name in LABS if name.startswith("testlab"))
TEST_LAB_VARIABLE = "PYINFRA_KUBEADM_TEST_LAB"
LAB_VARIABLE = "PYINFRA_KUBEADM_LAB"
LAB = os.environ.get(LAB_VARIABLE, "lab")
if LAB not in LABS:
    raise ValueError(f"{LAB_VARIABLE}={LAB!r}: one of {', '.join(LABS)}")
INVENTORY_PATH = REPO_ROOT / "inventory" / f"{LAB}.yaml"

# Base root filesystems, built once per suite and kept across `down` (shared: read only).
CACHE_DIR = Path(os.environ.get("LAB_CACHE_DIR", "/var/cache/pyinfra-kubeadm-lab"))
# Everything `up` creates and `down` removes: node root filesystems, keys, logs, state.
STATE_DIR = Path(os.environ.get("LAB_STATE_DIR", f"/var/lib/pyinfra-kubeadm-{LAB}"))

BRIDGE = LABS[LAB][0]
# Nodes get .11, .12, ... of the bridge's network.
_SUBNET = ipaddress.ip_interface(os.environ.get("LAB_SUBNET", LABS[LAB][1]))
NETWORK = _SUBNET.network
BRIDGE_ADDRESS = str(_SUBNET.ip if _SUBNET.ip != NETWORK.network_address else NETWORK[1])
FIRST_NODE_HOST = 11
PROXY_PORT = 3142
PROXY_ENDPOINT = f"{BRIDGE_ADDRESS}:{PROXY_PORT}"
REGISTRY_PORT = 5000
REGISTRY_ENDPOINT = f"{BRIDGE_ADDRESS}:{REGISTRY_PORT}"
# The stand-ins of the whole-cluster rehearsal (test doubles, see tests/lab/k8s_repo.py):
# the Kubernetes apt repository, the control plane (the API endpoint every node's stand-in
# kubeadm and kubectl talk to; with several control planes also their control_plane_endpoint,
# the "load balancer" in front of them) and the Kuboard server.
STAND_IN_REPO_PORT = 8008
STAND_IN_API_PORT = 6443
STAND_IN_KUBOARD_PORT = 8090
# The same stand-in Kuboard server on https, with a self-signed certificate.
STAND_IN_KUBOARD_TLS_PORT = 8443
STAND_IN_API_URL = f"http://{BRIDGE_ADDRESS}:{STAND_IN_API_PORT}"
KUBOARD_CLUSTER_NAME = LAB

# containerd 1.6, 1.7 and 2.x, in that order.
SUITES = ("bookworm", "trixie", "sid")
# Suites with -updates and -security archives (sid has neither).
STABLE_SUITES = ("bookworm", "trixie")
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "python3",
    "kmod",
    "ca-certificates",
)


def node_name(index: int) -> str:
    """Name (and hostname) of the index-th node, counting from 1: lab1, ... or testlab1, ...

    systemd-nspawn names the node's host-side link vb-<name>: unique per lab as well."""
    return f"{LAB}{index}"


def node_address(index: int) -> str:
    """Static address of the index-th node, counting from 1."""
    host = FIRST_NODE_HOST - 1 + index
    if host >= NETWORK.num_addresses - 1:
        raise ValueError(f"LAB_SUBNET {NETWORK} has no room for {index} nodes")
    return str(NETWORK[host])
