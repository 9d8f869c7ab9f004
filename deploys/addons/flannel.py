"""flannel: the pod network, rendered from the project's own manifest template.

The manifest is written on the first control plane and applied from there only when its
rendered content changed, so a converged cluster is never re-applied.

A DaemonSet's selector cannot change: applying over a kube-flannel-ds that selects other
labels fails (one this project rendered before its labels became upstream's selected
`k8s-app` too). Before applying, such a DaemonSet is deleted with its pods left running
(orphaned, so the pod network stays up); the applied one adopts them and replaces them one
node at a time.
"""

from __future__ import annotations

import io
import json

import yaml
from pyinfra.api import QuoteString, StringCommand, deploy
from pyinfra.operations import files, server

from deploys.addons.kubectl import ADDONS_DIR, apply, kubectl
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


def selector_labels(labels: dict[str, str]) -> str:
    """Labels as the selector check prints them: "key=value " each, sorted by key."""
    return "".join(f"{key}={value} " for key, value in sorted(labels.items()))


# The selector of the live DaemonSet, printed like selector_labels() (Go templates range
# over a map in key order); nothing when there is no DaemonSet.
_LIVE_SELECTOR = "{{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}} {{end}}"


def replace_other_selector(text: str) -> StringCommand:
    """Delete kube-flannel-ds, orphaning its pods, when its selector is not the one of the
    manifest `text`; a no-op when there is none or it is the same."""
    (daemonset,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "DaemonSet"]
    wanted = selector_labels(daemonset["spec"]["selector"]["matchLabels"])
    where = ("--namespace", NAMESPACE)
    live = kubectl(*where, "get", "daemonset", DAEMONSET, "--ignore-not-found",
                   "--output", f"go-template={_LIVE_SELECTOR}")  # fmt: skip
    delete = kubectl(*where, "delete", "daemonset", DAEMONSET, "--cascade=orphan")
    return StringCommand(
        "selector=$(", live, ")", "&&", "{", '[ -z "$selector" ]', "||",
        '[ "$selector" =', QuoteString(wanted), "]", "||", delete, ";", "}",
    )  # fmt: skip


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} flannel writes on this node: the manifest, on the first
    control plane only."""
    return {MANIFEST: manifest(ctx)} if ctx.is_first_control_plane else {}


@deploy("flannel")
def converge_flannel(ctx: NodeContext):
    text = manifest(ctx)
    written = files.put(
        name="flannel: render manifest",
        src=io.StringIO(text),
        dest=MANIFEST,
        user="root",
        group="root",
        mode="600",
    )
    server.shell(
        name="flannel: apply manifest",
        commands=[apply(MANIFEST, first=replace_other_selector(text))],
        _if=written.did_change,
    )
