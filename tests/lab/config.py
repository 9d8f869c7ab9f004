"""Where the lab lives: its directories, its network and the Debian suites it can boot."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INVENTORY_PATH = REPO_ROOT / "inventory" / "lab.yaml"

# Base root filesystems, built once per suite and kept across `down`.
CACHE_DIR = Path(os.environ.get("LAB_CACHE_DIR", "/var/cache/pyinfra-kubeadm-lab"))
# Everything `up` creates and `down` removes: node root filesystems, keys, logs, state.
STATE_DIR = Path(os.environ.get("LAB_STATE_DIR", "/var/lib/pyinfra-kubeadm-lab"))

BRIDGE = "pkalab0"
# The bridge's address with the lab's prefix; nodes get .11, .12, ... of that network.
_SUBNET = ipaddress.ip_interface(os.environ.get("LAB_SUBNET", "10.213.47.1/24"))
NETWORK = _SUBNET.network
BRIDGE_ADDRESS = str(_SUBNET.ip if _SUBNET.ip != NETWORK.network_address else NETWORK[1])
FIRST_NODE_HOST = 11
PROXY_PORT = 3142
PROXY_ENDPOINT = f"{BRIDGE_ADDRESS}:{PROXY_PORT}"
REGISTRY_PORT = 5000
REGISTRY_ENDPOINT = f"{BRIDGE_ADDRESS}:{REGISTRY_PORT}"

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
    """Name (and hostname) of the index-th node, counting from 1."""
    return f"lab{index}"


def node_address(index: int) -> str:
    """Static address of the index-th node, counting from 1."""
    host = FIRST_NODE_HOST - 1 + index
    if host >= NETWORK.num_addresses - 1:
        raise ValueError(f"LAB_SUBNET {NETWORK} has no room for {index} nodes")
    return str(NETWORK[host])
