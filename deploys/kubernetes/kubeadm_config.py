"""kubeadm's configuration, rendered per node from the inventory.

Pure functions build each document as data (`init_documents`, `join_document`, ...) and
`rendered_files` turns them into the files this concern writes on a node; the deploy and
the offline renderer (deploys/render.py) both call it. Every value reaches YAML through
the YAML serializer, so whatever a setting holds comes out quoted, never as structure.

The kubeadm API version follows the Kubernetes version (deploys/versions.py): v1beta3 below
1.31, v1beta4 from 1.31. The shapes differ where the two APIs differ: `extraArgs` and
`kubeletExtraArgs` are a mapping in v1beta3 and a list of {name, value} in v1beta4.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import yaml
from pyinfra.api import QuoteString, StringCommand
from pyinfra.operations import files

from deploys import versions
from deploys.context import NodeContext
from deploys.runtime.config import CRI_SOCKET
from deploys.settings import Settings

KUBERNETES_DIR = "/etc/kubernetes"
# The cluster-admin kubeconfig `kubeadm init` writes (and a joining control plane gets);
# kubectl on the first control plane uses it (deploys/addons/kubectl.py).
ADMIN_KUBECONFIG = f"{KUBERNETES_DIR}/admin.conf"
# `kubeadm init --config`: Init-, Cluster-, Kubelet- and KubeProxyConfiguration.
INIT_CONFIG = f"{KUBERNETES_DIR}/kubeadm-init.yaml"
# `kubeadm join --config`: written just before the join (it holds the join secrets) and
# removed right after it.
JOIN_CONFIG = f"{KUBERNETES_DIR}/kubeadm-join.yaml"
# KubeSchedulerConfiguration, mounted into kube-scheduler on every control plane.
SCHEDULER_CONFIG = f"{KUBERNETES_DIR}/kube-scheduler-config.yaml"
SCHEDULER_KUBECONFIG = f"{KUBERNETES_DIR}/scheduler.conf"
# What kubeadm itself writes, read and changed by the day-2 work (upgrade, reconfigure,
# removal): the kubelet's kubeconfig and configuration, the certificates, the static pods.
KUBELET_CONF = f"{KUBERNETES_DIR}/kubelet.conf"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
PKI_DIR = f"{KUBERNETES_DIR}/pki"
MANIFESTS_DIR = f"{KUBERNETES_DIR}/manifests"
APISERVER_MANIFEST = f"{MANIFESTS_DIR}/kube-apiserver.yaml"
ETCD_MANIFEST = f"{MANIFESTS_DIR}/etcd.yaml"
# `kubeadm init` always creates a bootstrap token; this one only lives briefly, because
# every join gets a fresh token created when it runs.
INIT_TOKEN_TTL = "15m0s"
FILE_MODE = "600"


def kubectl(*args: str) -> StringCommand:
    """`kubectl --kubeconfig admin.conf ARGS...` (as root on a control plane), every argument
    shell-quoted: the one way the deploy runs kubectl (add-ons, bootstrap, drains)."""
    return StringCommand("kubectl", "--kubeconfig", ADMIN_KUBECONFIG, *map(QuoteString, args))


@dataclass(frozen=True)
class JoinCredentials:
    """What a joining node needs from the cluster; secret except the CA hash."""

    token: str  # bootstrap token, "abcdef.0123456789abcdef"
    ca_cert_hash: str  # "sha256:<hex>" of the cluster CA's public key
    certificate_key: str  # decrypts the uploaded control-plane certificates; "" for workers


# Stand-ins for the renderer: the real values only exist while a run joins a node.
PLACEHOLDER_CREDENTIALS = JoinCredentials(
    token="<bootstrap token: created when the node joins>",
    ca_cert_hash="<CA certificate hash: read when the node joins>",
    certificate_key="<certificate key: created when the node joins>",
)


def extra_args(api_version: str, args: dict[str, str]) -> dict[str, str] | list[dict[str, str]]:
    """kubeadm extra arguments in the shape of `api_version`: a mapping in v1beta3, a list
    of {name, value} in v1beta4."""
    if api_version == "kubeadm.k8s.io/v1beta3":
        return dict(args)
    return [{"name": name, "value": value} for name, value in args.items()]


def node_registration(ctx: NodeContext) -> dict:
    """NodeRegistrationOptions of this node (the same for init and join)."""
    api = versions.kubeadm_api_version(ctx.settings.kubernetes_version)
    registration = {
        "name": ctx.node.name,
        "criSocket": CRI_SOCKET,
        # The inventory address, not whatever the default route picks (Vagrant's NAT).
        "kubeletExtraArgs": extra_args(api, {"node-ip": ctx.node.address}),
    }
    if ctx.node.is_control_plane and (ctx.node.is_worker or not ctx.settings.control_plane_taint):
        registration["taints"] = []  # unset: kubeadm's control-plane NoSchedule taint
    return registration


def _local_api_endpoint(ctx: NodeContext) -> dict:
    return {"advertiseAddress": ctx.node.address, "bindPort": ctx.settings.api_port}


def init_configuration(ctx: NodeContext) -> dict:
    return {
        "apiVersion": versions.kubeadm_api_version(ctx.settings.kubernetes_version),
        "kind": "InitConfiguration",
        "bootstrapTokens": [
            {"description": "created by kubeadm init, unused", "ttl": INIT_TOKEN_TTL}
        ],
        "localAPIEndpoint": _local_api_endpoint(ctx),
        "nodeRegistration": node_registration(ctx),
    }


def cluster_configuration(ctx: NodeContext) -> dict:
    s = ctx.settings
    api = versions.kubeadm_api_version(s.kubernetes_version)
    config = {
        "apiVersion": api,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": f"v{s.kubernetes_version}",
        "imageRepository": s.image_repository,
        "controlPlaneEndpoint": ctx.api_endpoint,
        "networking": {
            "podSubnet": s.pod_subnet,
            "serviceSubnet": s.service_subnet,
            "dnsDomain": s.dns_domain,
        },
    }
    sans = list(s.cert_sans)
    if ctx.api_load_balancer != "none":  # the load balancer's name or VIP
        sans += [ctx.api_endpoint.rpartition(":")[0]]
    if sans:
        config["apiServer"] = {"certSANs": list(dict.fromkeys(sans))}
    if s.scheduler:
        config["scheduler"] = {
            "extraArgs": extra_args(api, {"config": SCHEDULER_CONFIG}),
            "extraVolumes": [
                {
                    "name": scheduler_volume(scheduler_file(s)),
                    "hostPath": SCHEDULER_CONFIG,
                    "mountPath": SCHEDULER_CONFIG,
                    "readOnly": True,
                    "pathType": "File",
                }
            ],
        }
    return config


def kubelet_configuration(settings: Settings) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "failSwapOn": True,
        "imageGCHighThresholdPercent": settings.image_gc_high_threshold,
        "imageGCLowThresholdPercent": settings.image_gc_low_threshold,
        "containerLogMaxSize": settings.container_log_max_size,
        "containerLogMaxFiles": settings.container_log_max_files,
    }


def kube_proxy_configuration(settings: Settings) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": settings.kube_proxy_mode,
    }


def init_documents(ctx: NodeContext) -> list[dict]:
    """What `kubeadm init --config` reads on the first control plane."""
    return [
        init_configuration(ctx),
        cluster_configuration(ctx),
        kubelet_configuration(ctx.settings),
        kube_proxy_configuration(ctx.settings),
    ]


def join_document(ctx: NodeContext, credentials: JoinCredentials) -> dict:
    """The JoinConfiguration of this node: discovery pinned by the CA certificate hash, and
    for a control plane its own API endpoint and the certificate key."""
    config = {
        "apiVersion": versions.kubeadm_api_version(ctx.settings.kubernetes_version),
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": ctx.api_endpoint,
                "token": credentials.token,
                "caCertHashes": [credentials.ca_cert_hash],
            }
        },
        "nodeRegistration": node_registration(ctx),
    }
    if ctx.node.is_control_plane:
        config["controlPlane"] = {
            "localAPIEndpoint": _local_api_endpoint(ctx),
            "certificateKey": credentials.certificate_key,
        }
    return config


def scheduler_document(settings: Settings) -> dict:
    """The KubeSchedulerConfiguration of the `scheduler` setting: per profile, the enabled
    and disabled plugins (at every extension point) and the score weights."""
    scheduler = settings.scheduler
    config: dict = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": SCHEDULER_KUBECONFIG},
    }
    if "percentage_of_nodes_to_score" in scheduler:
        config["percentageOfNodesToScore"] = scheduler["percentage_of_nodes_to_score"]
    profiles = []
    for profile in scheduler.get("profiles", []):
        plugins = profile.get("plugins", {})
        multi_point = {
            kind: [{"name": name} for name in plugins[kind]]
            for kind in ("enabled", "disabled")
            if plugins.get(kind)
        }
        points = {"multiPoint": multi_point} if multi_point else {}
        weights = profile.get("score_weights", {})
        if weights:
            points["score"] = {
                "enabled": [{"name": name, "weight": weight} for name, weight in weights.items()]
            }
        entry = {"schedulerName": profile["scheduler_name"]}
        if points:
            entry["plugins"] = points
        profiles.append(entry)
    if profiles:
        config["profiles"] = profiles
    return config


def scheduler_volume(text: str) -> str:
    """kube-scheduler's volume name for the scheduler file `text`. It changes with the
    file, so a changed file changes the ClusterConfiguration and kube-scheduler's manifest,
    and the kubelet restarts kube-scheduler with it (deploys/kubernetes/reconfigure.py)."""
    return f"scheduler-config-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _yaml(header: str, documents: list[dict]) -> str:
    body = yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)
    return f"# {header}\n# Rendered by pyinfra-kubeadm from the inventory.\n{body}"


def init_file(ctx: NodeContext) -> str:
    return _yaml(f"kubeadm init configuration of {ctx.node.name}", init_documents(ctx))


def join_file(ctx: NodeContext, credentials: JoinCredentials) -> str:
    return _yaml(
        f"kubeadm join configuration of {ctx.node.name}; root only: it holds join secrets",
        [join_document(ctx, credentials)],
    )


def scheduler_file(settings: Settings) -> str:
    return _yaml("kube-scheduler configuration", [scheduler_document(settings)])


def configuration_files(ctx: NodeContext) -> dict[str, str | None]:
    """The kubeadm files this concern keeps on this node: {path: content}, content None for
    a file the node must not have (the init configuration lives on the first control plane
    only, the scheduler configuration on control planes when it is configured)."""
    return {
        INIT_CONFIG: init_file(ctx) if ctx.is_first_control_plane else None,
        SCHEDULER_CONFIG: (
            scheduler_file(ctx.settings)
            if ctx.node.is_control_plane and ctx.settings.scheduler
            else None
        ),
    }


def joins(ctx: NodeContext) -> bool:
    """Whether this node joins an existing cluster (every node but the first control plane)."""
    return not ctx.is_first_control_plane


def rendered_files(ctx: NodeContext, credentials: JoinCredentials | None = None) -> dict[str, str]:
    """{remote path: content} of every kubeadm file the deploy writes on this node: the
    configuration files, and for a joining node the join configuration it writes just
    before joining (with `credentials`, PLACEHOLDER_CREDENTIALS unless given)."""
    rendered = {path: text for path, text in configuration_files(ctx).items() if text is not None}
    if joins(ctx):
        rendered[JOIN_CONFIG] = join_file(ctx, credentials or PLACEHOLDER_CREDENTIALS)
    return rendered


def write_configuration(ctx: NodeContext) -> None:
    """Converge the configuration files: written root-only where the node needs them,
    absent elsewhere. Every node runs the same operations (see deploys/kubernetes), one per
    file, each called from its own line (pyinfra tells operations apart by call site)."""
    wanted = configuration_files(ctx)
    _converge_file(INIT_CONFIG, wanted[INIT_CONFIG])
    _converge_file(SCHEDULER_CONFIG, wanted[SCHEDULER_CONFIG])


def _converge_file(path: str, text: str | None) -> None:
    name = f"kubeadm: render {path.rsplit('/', 1)[-1]}"
    if text is None:
        files.file(name=name, path=path, present=False)
    else:
        files.put(
            name=name,
            src=io.StringIO(text),
            dest=path,
            user="root",
            group="root",
            mode=FILE_MODE,
        )
