"""flannel: the pod network plugin (see deploys/addons/network.py for what a plugin
provides), rendered from the project's own manifest template.

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
import ipaddress
import json
import re
from collections.abc import Iterator

import yaml
from pyinfra.api import QuoteString, StringCommand, deploy
from pyinfra.operations import files, server

from deploys.addons.kubectl import ADDONS_DIR, apply, kubectl
from deploys.context import NodeContext
from deploys.settings import IMAGE_REPOSITORY, Node, Settings
from deploys.templating import render

NAME = "flannel"
MANIFEST = f"{ADDONS_DIR}/flannel.yaml"
# Readiness: a ready pod of this DaemonSet, in this namespace, on every node.
NAMESPACE = "kube-flannel"
DAEMONSET = "kube-flannel-ds"
BACKENDS = ("vxlan", "host-gw", "wireguard")
# flannel's configuration in the cluster: ConfigMap kube-flannel-cfg, key net-conf.json
# (upstream's kube-flannel.yml); flanneld reads it only when it starts.
CONFIG_MAP = "kube-flannel-cfg"
NET_CONF_KEY = "net-conf.json"
# UDP ports each backend's traffic between nodes uses (host-gw: plain routing, none).
BACKEND_PORTS = {"vxlan": ((8472, 8472),), "wireguard": ((51820, 51821),)}  # IPv4, IPv6 tunnels
_RELEASE = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+")
_CNI_PLUGIN_RELEASE = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+(-flannel[0-9]+)?")

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


def ports(node: Node, settings: Settings) -> tuple[tuple[int, int, str], ...]:
    """(first, last, protocol) of the ports every node serves for the pod network."""
    return tuple(
        (first, last, "udp") for first, last in BACKEND_PORTS.get(settings.flannel_backend, ())
    )


def summary(settings: Settings) -> str:
    """The pod network, in the summary printed at the end of a run."""
    s = settings
    return f"flannel {s.flannel_version} ({s.flannel_backend}, pod network {s.pod_subnet})"


def check_settings(s: Settings) -> Iterator[tuple[str, str]]:
    """(setting, problem) for every flannel setting that must be refused."""
    if s.flannel_backend not in BACKENDS:
        yield "flannel_backend", f"{s.flannel_backend!r} is not one of {list(BACKENDS)}"
    if not _RELEASE.fullmatch(s.flannel_version):
        yield "flannel_version", f"{s.flannel_version!r} is not a release like 'v0.27.4'"
    if not _CNI_PLUGIN_RELEASE.fullmatch(s.flannel_cni_plugin_version):
        yield (
            "flannel_cni_plugin_version",
            f"{s.flannel_cni_plugin_version!r} is not a tag like 'v1.8.0-flannel1'",
        )
    repository = s.flannel_image_repository
    if repository and not IMAGE_REPOSITORY.fullmatch(repository):
        yield (
            "flannel_image_repository",
            f"{repository!r} is not a registry prefix like 'ghcr.io/flannel-io'",
        )
    try:
        if ipaddress.ip_network(s.pod_subnet, strict=True).version != 4:
            yield "pod_subnet", f"{s.pod_subnet}: flannel's network must be IPv4"
    except ValueError:
        pass  # not a network at all: the cluster's own check says so


def live_configuration(data: dict) -> dict | None:
    """flannel's running network configuration, from its ConfigMap's data (None: none)."""
    try:
        conf = json.loads(data.get(NET_CONF_KEY, ""))
    except ValueError:
        return None
    return conf if isinstance(conf, dict) else None


def live_refusals(live: dict | None, s: Settings) -> Iterator[tuple[str, str, str, str]]:
    """(setting, running value, wanted value, why) for each flannel setting the running
    pod network cannot change (its network is pod_subnet, refused with the cluster's)."""
    backend = ((live or {}).get("Backend") or {}).get("Type", "")
    if backend and backend != s.flannel_backend:
        yield (
            "flannel_backend",
            backend,
            s.flannel_backend,
            "flanneld reads its backend only when it starts and every node's flanneld must "
            "switch together (the tunnel devices and their ports differ); this deploy has no "
            "plan for that restart",
        )


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} flannel writes on this node: the manifest, on the first
    control plane only."""
    return {MANIFEST: manifest(ctx)} if ctx.is_first_control_plane else {}


@deploy("flannel")
def converge(ctx: NodeContext):
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
