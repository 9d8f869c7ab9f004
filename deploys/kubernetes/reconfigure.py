"""Cluster-level settings reach a running cluster: kubeadm's reconfiguration procedure.

kubeadm reads its configuration once, at `kubeadm init`; later changes of the cluster
file must be carried to the running cluster by hand. Upstream's procedure ("Reconfiguring
a kubeadm cluster", kubernetes/website
content/en/docs/tasks/administer-cluster/kubeadm/kubeadm-reconfigure.md), done here without
an editor:

- ClusterConfiguration: the `kubeadm-config` ConfigMap (key `ClusterConfiguration`) is
  updated (`kubeadm init phase upload-config kubeadm --config`, which replaces that key:
  kubeadm's uploadconfig.go, CreateOrMutateConfigMap), then on each control plane, one at a
  time, `kubeadm init phase certs apiserver` (after moving the old certificate and key
  aside, kept as a backup: kubeadm keeps an existing certificate) when `certSANs` changed,
  and `kubeadm init phase control-plane all --config` rewrites the static pod manifests;
  the kubelet restarts the static pods whose manifest changed, and the run waits until the
  node's control-plane pods are Ready before the next control plane.
- KubeletConfiguration: the `kubelet-config` ConfigMap (key `kubelet`: `kubeadm init phase
  upload-config kubelet --config`), then on each node, one at a time and drained
  (deploys/kubernetes/drain.py: control planes first, uncordoned once Ready again),
  `kubeadm upgrade node phase kubelet-config` (downloads it into
  /var/lib/kubelet/config.yaml) and a kubelet restart.
- KubeProxyConfiguration: the `kube-proxy` ConfigMap (key `config.conf`: `kubeadm init
  phase addon kube-proxy --config`), then its pods restart (`kubectl rollout restart`,
  node by node as the DaemonSet's update strategy allows).
- The scheduler file: its content's hash is part of the name of kube-scheduler's volume in
  the ClusterConfiguration (deploys/kubernetes/kubeadm_config.py), so a changed file
  changes kube-scheduler's manifest, which makes the kubelet restart kube-scheduler: the
  change takes effect in this run, not at the next restart.

What changed is read from the cluster and the nodes, never assumed: the ConfigMaps as the
API server has them (first control plane), /var/lib/kubelet/config.yaml (every node), and
on each control plane the configuration its manifests and certificate were last generated
from, kept in APPLIED_CONFIG (written last, after the manifests and the health wait: a run
killed half-way redoes that control plane on the next run). Only the fields this project
sets are compared: kubeadm fills in defaults for the rest.

Settings a live cluster cannot change are refused, before any host changes, naming the
setting and the reason (`refusals`).
"""

from __future__ import annotations

import json

import yaml
from pyinfra import host
from pyinfra.api import FactBase, OperationError, QuoteString, StringCommand
from pyinfra.operations import server

from deploys import secret
from deploys.context import NodeContext
from deploys.kubernetes import drain
from deploys.kubernetes.kubeadm_config import (
    ADMIN_KUBECONFIG,
    INIT_CONFIG,
    KUBELET_CONF,
    KUBELET_CONFIG,
    KUBERNETES_DIR,
    MANIFESTS_DIR,
    PKI_DIR,
    _yaml,
    cluster_configuration,
    init_configuration,
    kube_proxy_configuration,
    kubectl,
    kubelet_configuration,
)

# On each control plane: the InitConfiguration and ClusterConfiguration its static pod
# manifests and API server certificate were last generated from.
APPLIED_CONFIG = f"{KUBERNETES_DIR}/kubeadm-applied.yaml"
# The ConfigMaps kubeadm writes in kube-system: name -> (data key, kind of its document).
CONFIG_MAPS = {
    "kubeadm-config": ("ClusterConfiguration", "ClusterConfiguration"),
    "kubelet-config": ("kubelet", "KubeletConfiguration"),
    "kube-proxy": ("config.conf", "KubeProxyConfiguration"),
}
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The kubelet looks at /etc/kubernetes/manifests every fileCheckFrequency (20 s by
# default): a manifest moved away for longer than that stops its pod (kubeadm's own
# advice for restarting a control-plane component after `kubeadm certs renew`,
# kubernetes/website .../kubeadm/kubeadm-certs.md).
FILE_CHECK_SECONDS = 20
# What a node is drained for while its kubelet takes the cluster's configuration.
KUBELET_REASON = "kubelet configuration"
_SECTIONS = ("kubelet", "applied", "configmaps", "network")


def _network():
    """The network plugin (deploys/addons/network.py). Imported when used: the add-ons
    import this package (deploys/addons/kubectl.py)."""
    from deploys.addons.network import PLUGIN

    return PLUGIN


class LiveConfiguration(FactBase):
    """What the node runs with, in one round trip: its kubelet configuration, on a control
    plane the configuration its manifests were generated from (APPLIED_CONFIG), and where
    the admin kubeconfig is, the kubeadm ConfigMaps and the network plugin's ConfigMap as
    the API server has them. {"kubelet": dict|None, "applied": {kind: document}|None,
    "running": {kind: document, "network": dict}|None}. Nothing here is secret."""

    def command(self) -> str:
        kubectl = f"kubectl --kubeconfig {ADMIN_KUBECONFIG}"
        maps, network = " ".join(CONFIG_MAPS), _network()
        return "; ".join(
            [
                f"echo '=== kubelet'; cat {KUBELET_CONFIG} 2>/dev/null",
                f"echo '=== applied'; cat {APPLIED_CONFIG} 2>/dev/null",
                f"if [ -f {ADMIN_KUBECONFIG} ]; then echo '=== configmaps'; "
                f"{kubectl} -n kube-system get configmap {maps} --ignore-not-found -o json "
                f"2>/dev/null; echo '=== network'; {kubectl} -n {network.NAMESPACE} get "
                f"configmap {network.CONFIG_MAP} --ignore-not-found -o json 2>/dev/null; fi",
                "true",
            ]
        )

    def process(self, output):
        return parse_live("\n".join(output))


def _sections(text: str) -> dict[str, str]:
    found, name = {}, None
    for line in text.splitlines():
        if line.startswith("=== ") and line[4:] in _SECTIONS:
            name = line[4:]
            found[name] = ""
        elif name is not None:
            found[name] += line + "\n"
    return found


def _documents(text: str) -> dict[str, dict] | None:
    try:
        documents = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        return None
    return {d.get("kind", ""): d for d in documents} or None


def parse_live(text: str) -> dict:
    """LiveConfiguration's value from its command's output (unreadable parts are None)."""
    sections = _sections(text)
    kubelet = _documents(sections.get("kubelet", ""))
    live = {
        "kubelet": (kubelet or {}).get("KubeletConfiguration"),
        "applied": _documents(sections.get("applied", "")),
        "running": None,
    }
    if "configmaps" not in sections:
        return live
    try:
        listed = json.loads(sections["configmaps"] or "{}")
        network = json.loads(sections.get("network") or "{}")
    except ValueError:
        return live
    items = listed.get("items", [listed]) if listed else []
    running: dict = dict.fromkeys(kind for _, kind in CONFIG_MAPS.values())
    for item in items:
        name = item.get("metadata", {}).get("name")
        if name in CONFIG_MAPS:
            key, kind = CONFIG_MAPS[name]
            running[kind] = (_documents(item.get("data", {}).get(key, "")) or {}).get(kind)
    if not running.get("ClusterConfiguration"):
        return live  # not a kubeadm cluster this deploy can read
    running["network"] = _network().live_configuration(network.get("data", {}))
    live["running"] = running
    return live


# --- decisions ------------------------------------------------------------------------


def refusals(running: dict, ctx: NodeContext) -> list[str]:
    """Why the cluster file cannot be applied to the running cluster: one message per
    setting a live cluster cannot change (empty: none)."""
    s, cluster = ctx.settings, running["ClusterConfiguration"]
    networking = cluster.get("networking") or {}
    found = []
    fixed = (
        (
            "pod_subnet",
            networking.get("podSubnet", ""),
            s.pod_subnet,
            "every node's pod range, the pod network plugin and kube-proxy's cluster CIDR "
            "were cut from it, and running pods hold addresses in it",
        ),
        (
            "service_subnet",
            networking.get("serviceSubnet", ""),
            s.service_subnet,
            "every Service keeps the cluster IP it was given from it, and the API server "
            "certificate and CoreDNS hold its addresses",
        ),
        (
            "dns_domain",
            networking.get("dnsDomain", ""),
            s.dns_domain,
            "every pod's DNS search path, CoreDNS and the API server certificate's names "
            "are made from it",
        ),
    )
    for name, live, wanted, why in fixed:
        if live and live != wanted:
            found.append(_refusal(name, live, wanted, why))
    endpoint = cluster.get("controlPlaneEndpoint") or ""
    first = f"{ctx.first_control_plane.address}:{s.api_port}"
    if (endpoint or first) != ctx.api_endpoint:
        found.append(
            _refusal(
                "control_plane_endpoint",
                endpoint or f"(none: {first})",
                ctx.api_endpoint,
                "every kubeconfig, every kubelet's kubelet.conf and the API server "
                "certificate point at it",
            )
        )
    for name, live, wanted, why in _network().live_refusals(running.get("network"), s):
        found.append(_refusal(name, live, wanted, why))
    return found


def _refusal(setting: str, live, wanted, why: str) -> str:
    return (
        f"{setting}: the running cluster has {live!r}, the cluster file says {wanted!r}. A "
        f"running cluster cannot change it ({why}): set {setting} back to {live!r}, or "
        "build a new cluster (deploys/reset.py, then deploys/cluster.py)"
    )


def _args(value) -> list:
    """kubeadm extra arguments as v1beta4's list of {name, value} (v1beta3: a mapping)."""
    if isinstance(value, dict):
        return [{"name": k, "value": str(v)} for k, v in sorted(value.items())]
    return sorted(value or [], key=lambda a: (a.get("name", ""), a.get("value", "")))


def managed(cluster: dict | None) -> dict:
    """The fields of a ClusterConfiguration this project sets and converges (kubeadm
    fills in the others): the image repository, the API server certificate's extra SANs,
    kube-scheduler's arguments and volumes."""
    cluster = cluster or {}
    api_server, scheduler = cluster.get("apiServer") or {}, cluster.get("scheduler") or {}
    return {
        "imageRepository": cluster.get("imageRepository", ""),
        "certSANs": sorted(api_server.get("certSANs") or []),
        "scheduler": {
            "extraArgs": _args(scheduler.get("extraArgs")),
            "extraVolumes": scheduler.get("extraVolumes") or [],
        },
    }


def _fields(wanted: dict, live: dict | None) -> dict:
    """The fields of `wanted` (a component configuration) whose value `live` differs in."""
    live = live or {}
    return {k: v for k, v in wanted.items() if k not in ("apiVersion", "kind") and live.get(k) != v}


def upgrading(running: dict | None, ctx: NodeContext) -> bool:
    """Whether the cluster runs another Kubernetes release than the cluster file pins: the
    upgrade's to carry out (`kubeadm upgrade` rewrites the ConfigMaps and manifests), so
    the reconfiguration waits for it (a run after the upgrade reconfigures)."""
    cluster = (running or {}).get("ClusterConfiguration") or {}
    version = cluster.get("kubernetesVersion", "")
    return bool(version) and version != f"v{ctx.settings.kubernetes_version}"


def cluster_changes(running: dict, ctx: NodeContext) -> list[str]:
    """The kinds of configuration whose ConfigMap differs from the cluster file, in the
    order they are applied; none while the cluster is being upgraded (upgrading)."""
    if upgrading(running, ctx):
        return []
    s, changes = ctx.settings, []
    if managed(running.get("ClusterConfiguration")) != managed(cluster_configuration(ctx)):
        changes.append("ClusterConfiguration")
    if _fields(kubelet_configuration(s), running.get("KubeletConfiguration")):
        changes.append("KubeletConfiguration")
    if _fields(kube_proxy_configuration(s), running.get("KubeProxyConfiguration")):
        changes.append("KubeProxyConfiguration")
    return changes


def applied_documents(ctx: NodeContext) -> list[dict]:
    """What a control plane's manifests and certificate are generated from (and what
    APPLIED_CONFIG keeps): its InitConfiguration (without the init bootstrap token) and
    the ClusterConfiguration."""
    init = {k: v for k, v in init_configuration(ctx).items() if k != "bootstrapTokens"}
    return [init, cluster_configuration(ctx)]


def applied_file(ctx: NodeContext) -> str:
    return _yaml(f"kubeadm configuration applied on {ctx.node.name}", applied_documents(ctx))


def record_commands(ctx: NodeContext) -> list[StringCommand]:
    """On a control plane, right after its init or join (bootstrap_node's `record`): what
    its manifests and certificate were just generated from. A control plane without it
    (set up by an earlier version of this project) is regenerated once."""
    if not ctx.node.is_control_plane:
        return []
    return [secret.write_command(APPLIED_CONFIG, applied_file(ctx))]


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of what this module writes on a control plane that joins
    (or initializes) the cluster: the configuration it was set up from."""
    return {APPLIED_CONFIG: applied_file(ctx)} if ctx.node.is_control_plane else {}


def control_plane_steps(applied: dict | None, ctx: NodeContext) -> list[str]:
    """What this control plane must regenerate: "certs" (the API server certificate) and/or
    "manifests"; [] when what it runs was generated from the wanted configuration. A
    control plane without APPLIED_CONFIG (set up by an earlier version of this project) is
    regenerated once."""
    wanted = managed(cluster_configuration(ctx))
    old = managed((applied or {}).get("ClusterConfiguration")) if applied else None
    if old == wanted:
        return []
    if old is not None and old["certSANs"] == wanted["certSANs"]:
        return ["manifests"]
    return ["certs", "manifests"]


def kubelet_changed(kubelet: dict | None, ctx: NodeContext) -> bool:
    """Whether the node's kubelet runs with another configuration than the cluster file's
    (None: unreadable, nothing to compare)."""
    return kubelet is not None and bool(_fields(kubelet_configuration(ctx.settings), kubelet))


# --- commands -------------------------------------------------------------------------


def _kubeadm(*args: str) -> StringCommand:
    return StringCommand("kubeadm", *map(QuoteString, args))


def upload_commands(change: str) -> list[StringCommand]:
    """On the first control plane: the ConfigMap of `change` from the init configuration
    (and, for kube-proxy, a restart of its pods)."""
    if change == "ClusterConfiguration":
        return [_kubeadm("init", "phase", "upload-config", "kubeadm", "--config", INIT_CONFIG)]
    if change == "KubeletConfiguration":
        return [_kubeadm("init", "phase", "upload-config", "kubelet", "--config", INIT_CONFIG)]
    return [
        _kubeadm("init", "phase", "addon", "kube-proxy", "--config", INIT_CONFIG),
        kubectl("-n", "kube-system", "rollout", "restart", "daemonset/kube-proxy"),
    ]


def backup_command(stamp: str = "$(date -u +%Y%m%dT%H%M%SZ)") -> StringCommand:
    """Move the API server certificate and key into a dated backup directory (kubeadm
    keeps an existing certificate; the old one is kept)."""
    backup = f"{PKI_DIR}/backup-apiserver-{stamp}"
    return StringCommand(
        f"if [ -f {PKI_DIR}/apiserver.crt ]; then b={backup} && mkdir -m 700 -p $b &&",
        f"mv {PKI_DIR}/apiserver.crt {PKI_DIR}/apiserver.key $b/; fi",
    )


def restart_static_pod(component: str) -> StringCommand:
    """Restart a static pod whose manifest does not change (a component re-reading its
    certificates): its manifest leaves the manifests directory for longer than the
    kubelet's file check, then comes back. A run killed in between gets the manifest back
    from the next run's `kubeadm init phase control-plane all`."""
    manifest = f"{MANIFESTS_DIR}/{component}.yaml"
    parked = f"{KUBERNETES_DIR}/{component}.yaml.restarting"
    return StringCommand(
        f"mv -f {manifest} {parked} && sleep {FILE_CHECK_SECONDS + 5} && mv -f {parked} {manifest}"
    )


def wait_control_plane(node: str, timeout: int) -> StringCommand:
    pods = [f"pod/{pod}-{node}" for pod in CONTROL_PLANE_PODS]
    return kubectl(
        "-n", "kube-system", "wait", "--for=condition=Ready", *pods, f"--timeout={timeout}s"
    )


def control_plane_commands(ctx: NodeContext, steps: list[str]) -> list[StringCommand]:
    """Regenerate this control plane from the wanted configuration, wait for its
    control-plane pods, then record what was applied (last: a killed run redoes it)."""
    if not steps:
        return []
    following = f"{APPLIED_CONFIG}.next"
    commands = [secret.write_command(following, applied_file(ctx))]
    if "certs" in steps:
        commands += [
            backup_command(),
            _kubeadm("init", "phase", "certs", "apiserver", "--config", following),
        ]
    commands.append(_kubeadm("init", "phase", "control-plane", "all", "--config", following))
    if "certs" in steps:
        commands.append(restart_static_pod("kube-apiserver"))
    commands += [
        wait_control_plane(ctx.node.name, ctx.settings.ready_timeout),
        StringCommand("mv", "-f", QuoteString(following), QuoteString(APPLIED_CONFIG)),
    ]
    return commands


def kubelet_commands() -> list[StringCommand]:
    """Fetch the kubelet-config ConfigMap into the node's kubelet configuration (with the
    node's own credentials: workers have no admin kubeconfig) and restart the kubelet."""
    return [
        _kubeadm("upgrade", "node", "phase", "kubelet-config", "--kubeconfig", KUBELET_CONF),
        StringCommand("systemctl restart kubelet"),
    ]


# --- operations -----------------------------------------------------------------------


def live(ctx: NodeContext, member: bool) -> dict:
    """The node's LiveConfiguration; nothing is read on a node not in the cluster yet."""
    if not member:
        return {"kubelet": None, "applied": None, "running": None}
    return host.get_fact(LiveConfiguration)


def upload_configuration(ctx: NodeContext, member: bool) -> None:
    """On the first control plane of a running cluster: refuse what cannot change, then
    bring each changed ConfigMap to the cluster file. Runs before any join of this run, so
    joining nodes get the new configuration."""
    state = live(ctx, member) if ctx.is_first_control_plane else {"running": None}
    running = state["running"]
    changes: list[str] = []
    if running is not None:
        refused = refusals(running, ctx)
        if refused:
            raise OperationError(
                f"refused on {ctx.node.name}, before any change: " + "; ".join(refused)
            )
        changes = cluster_changes(running, ctx)
    server.shell(
        name="kubeadm: upload cluster configuration",
        commands=upload_commands("ClusterConfiguration")
        if "ClusterConfiguration" in changes
        else [],
    )
    server.shell(
        name="kubeadm: upload kubelet configuration",
        commands=upload_commands("KubeletConfiguration")
        if "KubeletConfiguration" in changes
        else [],
    )
    server.shell(
        name="kube-proxy: update configuration and restart",
        commands=upload_commands("KubeProxyConfiguration")
        if "KubeProxyConfiguration" in changes
        else [],
    )


def reconfigure_node(ctx: NodeContext, member: bool) -> None:
    """After the joins: each control plane regenerated from the wanted configuration, one
    at a time; each node whose kubelet runs with another configuration drained, its
    configuration fetched, the kubelet restarted, then uncordoned once Ready, one node at a
    time (drain.roll). A node that joined in this run was set up from the ConfigMaps this run
    uploaded (record_commands)."""
    state = live(ctx, member)
    node = ctx.node
    steps = []
    if member and node.is_control_plane and not upgrading(state["running"], ctx):
        steps = control_plane_steps(state["applied"], ctx)
    server.shell(
        name="kubeadm: reconfigure control plane",
        commands=control_plane_commands(ctx, steps),
        _serial=True,
    )
    if not member:
        return  # neither pending nor left drained by a killed run: nothing to roll
    if not kubelet_changed(state["kubelet"], ctx):
        # Nothing to do. A node a killed run left drained (this work's or an upgrade's) is
        # finished by the roll every cluster.py run makes (kubernetes/upgrade.py), once.
        return
    drain.roll(ctx, reason=KUBELET_REASON, pending=True, touch=kubelet_commands)


__all__ = [
    "APPLIED_CONFIG",
    "LiveConfiguration",
    "refusals",
    "cluster_changes",
    "control_plane_steps",
    "kubelet_changed",
    "upload_configuration",
    "reconfigure_node",
]
