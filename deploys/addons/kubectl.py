"""kubectl on the first control plane, as root with the admin kubeconfig kubeadm wrote."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand

from deploys.kubernetes.kubeadm_config import ADMIN_KUBECONFIG, KUBERNETES_DIR, kubectl

__all__ = ["ADDONS_DIR", "ADMIN_KUBECONFIG", "apply", "kubectl"]

# Root-only directory holding the manifests the add-ons apply.
ADDONS_DIR = f"{KUBERNETES_DIR}/addons"


def apply(manifest: str, first: StringCommand | None = None) -> StringCommand:
    """Apply a manifest file, after the command `first` if given; if either fails, remove
    the file so the next run writes and applies it again instead of finding it unchanged."""
    undo = StringCommand("(", "rm", "-f", QuoteString(manifest), "&&", "false", ")")
    command = kubectl("apply", "-f", manifest)
    if first is not None:
        command = StringCommand("{", first, "&&", command, ";", "}")
    return StringCommand(command, "||", undo)
