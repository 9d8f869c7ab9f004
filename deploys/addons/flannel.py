"""flannel: the pod network, rendered from the project's own manifest template.

The manifest is written on the first control plane and applied from there only when its
rendered content changed, so a converged cluster is never re-applied.
"""

from __future__ import annotations

import io
import json

from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys.addons.kubectl import ADDONS_DIR, apply
from deploys.context import NodeContext
from deploys.templating import render

MANIFEST = f"{ADDONS_DIR}/flannel.yaml"
NAMESPACE = "kube-flannel"
DAEMONSET = "kube-flannel-ds"

# The CNI configuration flannel installs on every node (/etc/cni/net.d/10-flannel.conflist).
CNI_CONF = {
    "name": "cbr0",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


def images(ctx: NodeContext) -> dict[str, str]:
    """The two images of the pinned release, from the configured registry prefix."""
    s = ctx.settings
    return {
        "flannel": f"{s.flannel_image_repository}/flannel:{s.flannel_version}",
        "cni_plugin": f"{s.flannel_image_repository}/flannel-cni-plugin:"
        f"{s.flannel_cni_plugin_version}",
    }


def net_conf(ctx: NodeContext) -> dict:
    """flannel's network configuration: the cluster's pod network and the chosen backend."""
    s = ctx.settings
    backend = {"Type": s.flannel_backend}
    return {"Network": s.pod_subnet, "EnableNFTables": False, "Backend": backend}


def flanneld_args(ctx: NodeContext) -> list[str]:
    """flanneld's arguments. Each node sends pod traffic over the interface that holds the
    first control plane's address (that node itself) or that routes to it (every other
    node), not over the default route: on hosts with a NAT interface first (Vagrant) the
    default route's address is the same on every node and would break the overlay."""
    address = ctx.first_control_plane.address
    return ["--ip-masq", "--kube-subnet-mgr", f"--iface={address}", f"--iface-can-reach={address}"]


def manifest(ctx: NodeContext) -> str:
    """The complete flannel manifest of this cluster (Namespace, RBAC, ConfigMap, DaemonSet)."""
    image = images(ctx)
    return render(
        "flannel/kube-flannel.yaml.j2",
        version=ctx.settings.flannel_version,
        namespace=NAMESPACE,
        flannel_image=image["flannel"],
        cni_plugin_image=image["cni_plugin"],
        cni_conf=json.dumps(CNI_CONF, indent=2),
        net_conf=json.dumps(net_conf(ctx), indent=2),
        flanneld_args=flanneld_args(ctx),
    )


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} flannel writes on this node: the manifest, on the first
    control plane only."""
    return {MANIFEST: manifest(ctx)} if ctx.is_first_control_plane else {}


@deploy("flannel")
def converge_flannel(ctx: NodeContext):
    written = files.put(
        name="flannel: render manifest",
        src=io.StringIO(manifest(ctx)),
        dest=MANIFEST,
        user="root",
        group="root",
        mode="600",
    )
    server.shell(name="flannel: apply manifest", commands=[apply(MANIFEST)], _if=written.did_change)
