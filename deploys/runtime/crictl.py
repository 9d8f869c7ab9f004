"""crictl's /etc/crictl.yaml: `crictl ps`, `crictl images` and the rest talk to containerd
without flags on every node.

crictl is the cri-tools package of the Kubernetes apt repository: kubeadm's package
depends on it (kubernetes/release, packages/deb/kubeadm: `Depends: ... cri-tools`), so it
arrives with kubeadm from the same per-minor repository, which carries only the cri-tools
release of that minor. Without this file crictl tries a list of known sockets in turn and
warns about each. Keys as in cri-tools' docs/crictl.md and kubernetes.io's "Debugging
Kubernetes nodes with crictl".
"""

from __future__ import annotations

import yaml

from deploys.runtime.config import CRI_SOCKET

CRICTL_YAML = "/etc/crictl.yaml"
# Seconds crictl waits for containerd to answer (crictl's own default is 2: too short for
# `crictl images` on a busy node).
TIMEOUT = 10

_HEADER = (
    "# crictl configuration, written by pyinfra-kubeadm (deploys/runtime/crictl.py):\n"
    "# containerd's CRI socket, so crictl needs no --runtime-endpoint/--image-endpoint.\n"
)


def crictl_config() -> dict:
    return {
        "runtime-endpoint": CRI_SOCKET,
        "image-endpoint": CRI_SOCKET,
        "timeout": TIMEOUT,
        "debug": False,
    }


def crictl_yaml() -> str:
    """The text of /etc/crictl.yaml (the same on every node)."""
    return _HEADER + yaml.safe_dump(crictl_config(), sort_keys=False)
