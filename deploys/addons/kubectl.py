"""kubectl on the first control plane, as root with the admin kubeconfig kubeadm wrote."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
# Root-only directory holding the manifests the add-ons apply.
ADDONS_DIR = "/etc/kubernetes/addons"


def kubectl(*args: str) -> StringCommand:
    """`kubectl --kubeconfig admin.conf ARGS...`, every argument shell-quoted."""
    return StringCommand("kubectl", "--kubeconfig", ADMIN_KUBECONFIG, *map(QuoteString, args))


def apply(manifest: str) -> StringCommand:
    """Apply a manifest file; if that fails, remove the file so the next run writes and
    applies it again instead of finding it unchanged."""
    undo = StringCommand("(", "rm", "-f", QuoteString(manifest), "&&", "false", ")")
    return StringCommand(kubectl("apply", "-f", manifest), "||", undo)
