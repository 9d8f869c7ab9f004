"""kubeadm configuration rendering, checked structurally for v1beta3 and v1beta4.

Every field of every rendered document must exist in its API version (the field lists
below are written down from the Kubernetes API references: kubeadm-config.v1beta3 and
v1beta4, kubelet-config.v1beta1, kube-proxy-config.v1alpha1, kube-scheduler-config.v1;
the component lists hold the fields the project may use). A schema maps a field name to
None (a value), a nested schema (an object) or a one-element list (the schema of each item).
"""

from __future__ import annotations

import hashlib

import pytest
import yaml

from deploys import versions
from deploys.context import NodeContext
from deploys.kubernetes import kubeadm_config
from deploys.kubernetes.kubeadm_config import (
    INIT_CONFIG,
    JOIN_CONFIG,
    SCHEDULER_CONFIG,
    JoinCredentials,
)
from deploys.settings import Settings, parse_cluster

# Shared by both kubeadm versions.
_API_ENDPOINT = {"advertiseAddress": None, "bindPort": None}
_TAINT = {"key": None, "value": None, "effect": None, "timeAdded": None}
_BOOTSTRAP_TOKEN = {
    "token": None,
    "description": None,
    "ttl": None,
    "expires": None,
    "usages": None,
    "groups": None,
}
_HOST_PATH_MOUNT = {
    "name": None,
    "hostPath": None,
    "mountPath": None,
    "readOnly": None,
    "pathType": None,
}
_IMAGE_META = {"imageRepository": None, "imageTag": None}
_EXTERNAL_ETCD = {"endpoints": None, "caFile": None, "certFile": None, "keyFile": None}
_BOOTSTRAP_TOKEN_DISCOVERY = {
    "token": None,
    "apiServerEndpoint": None,
    "caCertHashes": None,
    "unsafeSkipCAVerification": None,
}
_ENV_VAR = {"name": None, "value": None, "valueFrom": None}
# v1beta4: extra arguments are a list of {name, value}.
_ARG = [{"name": None, "value": None}]


def _kubeadm(v1beta4: bool) -> dict[str, dict]:
    # v1beta3: a string map (values checked apart); v1beta4: a list of {name, value}.
    extra_args = _ARG if v1beta4 else None
    envs = {"extraEnvs": [_ENV_VAR]} if v1beta4 else {}
    component = {"extraArgs": extra_args, "extraVolumes": [_HOST_PATH_MOUNT], **envs}
    registration = {
        "name": None,
        "criSocket": None,
        "taints": [_TAINT],
        "kubeletExtraArgs": extra_args,
        "ignorePreflightErrors": None,
        "imagePullPolicy": None,
        **({"imagePullSerial": None} if v1beta4 else {}),
    }
    timeouts = {
        "controlPlaneComponentHealthCheck": None,
        "kubeletHealthCheck": None,
        "kubernetesAPICall": None,
        "etcdAPICall": None,
        "tlsBootstrap": None,
        "discovery": None,
        "upgradeManifests": None,
    }
    only_v1beta4 = {"dryRun": None, "timeouts": timeouts} if v1beta4 else {}
    api_server = {**component, "certSANs": None}
    if not v1beta4:
        api_server["timeoutForControlPlane"] = None
    local_etcd = {
        **_IMAGE_META,
        "dataDir": None,
        "extraArgs": extra_args,
        "serverCertSANs": None,
        "peerCertSANs": None,
        **envs,
    }
    discovery = {
        "bootstrapToken": _BOOTSTRAP_TOKEN_DISCOVERY,
        "file": {"kubeConfigPath": None},
        "tlsBootstrapToken": None,
        **({} if v1beta4 else {"timeout": None}),
    }
    cluster_v1beta4 = {
        "proxy": {"disabled": None},
        "encryptionAlgorithm": None,
        "certificateValidityPeriod": None,
        "caCertificateValidityPeriod": None,
    }
    return {
        "InitConfiguration": {
            "apiVersion": None,
            "kind": None,
            "bootstrapTokens": [_BOOTSTRAP_TOKEN],
            "nodeRegistration": registration,
            "localAPIEndpoint": _API_ENDPOINT,
            "certificateKey": None,
            "skipPhases": None,
            "patches": {"directory": None},
            **only_v1beta4,
        },
        "ClusterConfiguration": {
            "apiVersion": None,
            "kind": None,
            "etcd": {"local": local_etcd, "external": _EXTERNAL_ETCD},
            "networking": {"serviceSubnet": None, "podSubnet": None, "dnsDomain": None},
            "kubernetesVersion": None,
            "controlPlaneEndpoint": None,
            "apiServer": api_server,
            "controllerManager": component,
            "scheduler": component,
            "dns": {**_IMAGE_META, **({"disabled": None} if v1beta4 else {})},
            "certificatesDir": None,
            "imageRepository": None,
            "featureGates": None,
            "clusterName": None,
            **(cluster_v1beta4 if v1beta4 else {}),
        },
        "JoinConfiguration": {
            "apiVersion": None,
            "kind": None,
            "nodeRegistration": registration,
            "caCertPath": None,
            "discovery": discovery,
            "controlPlane": {"localAPIEndpoint": _API_ENDPOINT, "certificateKey": None},
            "skipPhases": None,
            "patches": {"directory": None},
            **only_v1beta4,
        },
    }


_PLUGIN_SET = {"enabled": [{"name": None, "weight": None}], "disabled": [{"name": None}]}
_EXTENSION_POINTS = (
    "preEnqueue",
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
    "multiPoint",
)
COMPONENTS = {
    "kubelet.config.k8s.io/v1beta1": {
        "KubeletConfiguration": {
            "apiVersion": None,
            "kind": None,
            "cgroupDriver": None,
            "failSwapOn": None,
            "imageGCHighThresholdPercent": None,
            "imageGCLowThresholdPercent": None,
            "containerLogMaxSize": None,
            "containerLogMaxFiles": None,
            "clusterDNS": None,
            "clusterDomain": None,
            "rotateCertificates": None,
            "serverTLSBootstrap": None,
            "maxPods": None,
        }
    },
    "kubeproxy.config.k8s.io/v1alpha1": {
        "KubeProxyConfiguration": {
            "apiVersion": None,
            "kind": None,
            "mode": None,
            "clusterCIDR": None,
            "ipvs": {"scheduler": None, "strictARP": None},
            "iptables": {"masqueradeAll": None},
        }
    },
    "kubescheduler.config.k8s.io/v1": {
        "KubeSchedulerConfiguration": {
            "apiVersion": None,
            "kind": None,
            "parallelism": None,
            "leaderElection": None,
            "clientConnection": {
                "kubeconfig": None,
                "acceptContentTypes": None,
                "contentType": None,
                "qps": None,
                "burst": None,
            },
            "percentageOfNodesToScore": None,
            "podInitialBackoffSeconds": None,
            "podMaxBackoffSeconds": None,
            "profiles": [
                {
                    "schedulerName": None,
                    "percentageOfNodesToScore": None,
                    "plugins": {point: _PLUGIN_SET for point in _EXTENSION_POINTS},
                    "pluginConfig": [{"name": None, "args": None}],
                }
            ],
            "extenders": None,
        }
    },
}
SCHEMAS = {
    "kubeadm.k8s.io/v1beta3": _kubeadm(v1beta4=False),
    "kubeadm.k8s.io/v1beta4": _kubeadm(v1beta4=True),
    **COMPONENTS,
}


def unknown_fields(document: dict) -> list[str]:
    """Dotted paths of every field of `document` its API version and kind do not have."""
    schema = SCHEMAS[document["apiVersion"]][document["kind"]]
    return list(_walk(document, schema, ""))


def _walk(value, schema, path: str):
    if isinstance(schema, list):
        if not isinstance(value, list):
            yield f"{path} (expected a list)"
            return
        for index, item in enumerate(value):
            yield from _walk(item, schema[0], f"{path}[{index}]")
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            yield f"{path} (expected an object)"
            return
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in schema:
                yield where
            else:
                yield from _walk(item, schema[key], where)


# --- the clusters rendered -----------------------------------------------------------

SCHEDULER = {
    "percentage_of_nodes_to_score": 50,
    "profiles": [
        {
            "scheduler_name": "default-scheduler",
            "plugins": {
                "enabled": ["PrioritySort", "DefaultBinder", "NodeResourcesFit", "ImageLocality"],
                "disabled": ["*"],
            },
            "score_weights": {"NodeResourcesFit": 3, "ImageLocality": 1},
        },
        {"scheduler_name": "spread", "plugins": {"disabled": ["ImageLocality"]}},
    ],
}
FULL = {
    "control_plane_endpoint": "10.0.0.10:6443",
    "cert_sans": ["api.example.internal", "10.0.0.10"],
    "scheduler": SCHEDULER,
    "kube_proxy_mode": "ipvs",
}
CREDENTIALS = JoinCredentials(
    token="abcdef.0123456789abcdef",
    ca_cert_hash="sha256:" + "0" * 64,
    certificate_key="f" * 64,
)
# The first release of every supported minor.
RELEASES = [f"1.{minor}.0" for minor in versions.SUPPORTED_MINORS]


def context(node: str, version: str = "1.35.9", **overrides) -> NodeContext:
    cluster = parse_cluster(
        {
            "hosts": [
                {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
                {"name": "cp2", "address": "10.0.0.12", "roles": ["control_plane"]},
                {"name": "cp3", "address": "10.0.0.13", "roles": ["control_plane", "worker"]},
                {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
            ],
            "settings": {
                "kubernetes_version": version,
                "control_plane_endpoint": "10.0.0.10:6443",
                **overrides,
            },
        }
    )
    return NodeContext.from_cluster(cluster, next(n for n in cluster.nodes if n.name == node))


def documents(ctx: NodeContext) -> list[dict]:
    """Every YAML document of every kubeadm file rendered for the node."""
    rendered = kubeadm_config.rendered_files(ctx, CREDENTIALS)
    return [
        doc
        for path, text in rendered.items()
        if path.startswith("/etc/kubernetes/")
        for doc in yaml.safe_load_all(text)
    ]


def by_kind(ctx: NodeContext) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in documents(ctx)}


# --- structure -----------------------------------------------------------------------


@pytest.mark.parametrize("version", RELEASES)
@pytest.mark.parametrize("node", ["cp1", "cp2", "cp3", "w1"])
@pytest.mark.parametrize("overrides", [{}, FULL], ids=["defaults", "full"])
def test_every_field_exists_in_its_api_version(version, node, overrides):
    for doc in documents(context(node, version, **overrides)):
        assert unknown_fields(doc) == [], doc["kind"]


@pytest.mark.parametrize(
    ("version", "api"),
    [
        ("1.27.16", "kubeadm.k8s.io/v1beta3"),
        ("1.30.14", "kubeadm.k8s.io/v1beta3"),
        ("1.31.0", "kubeadm.k8s.io/v1beta4"),
        ("1.35.9", "kubeadm.k8s.io/v1beta4"),
        ("1.36.1", "kubeadm.k8s.io/v1beta4"),
    ],
)
def test_kubeadm_documents_use_the_api_of_the_release(version, api):
    kinds = by_kind(context("cp1", version, **FULL))
    assert {kinds[k]["apiVersion"] for k in ("InitConfiguration", "ClusterConfiguration")} == {api}
    assert by_kind(context("w1", version))["JoinConfiguration"]["apiVersion"] == api


@pytest.mark.parametrize("version", ["1.27.16", "1.29.3", "1.30.14"])
def test_v1beta3_extra_args_are_a_string_map(version):
    kinds = by_kind(context("cp1", version, **FULL))
    registration = kinds["InitConfiguration"]["nodeRegistration"]
    assert registration["kubeletExtraArgs"] == {"node-ip": "10.0.0.11"}
    assert kinds["ClusterConfiguration"]["scheduler"]["extraArgs"] == {"config": SCHEDULER_CONFIG}


@pytest.mark.parametrize("version", ["1.31.0", "1.33.4", "1.35.9", "1.36.1"])
def test_v1beta4_extra_args_are_a_name_value_list(version):
    kinds = by_kind(context("cp1", version, **FULL))
    registration = kinds["InitConfiguration"]["nodeRegistration"]
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.0.0.11"}]
    assert kinds["ClusterConfiguration"]["scheduler"]["extraArgs"] == [
        {"name": "config", "value": SCHEDULER_CONFIG}
    ]


@pytest.mark.parametrize(
    ("api", "args", "shaped"),
    [
        ("kubeadm.k8s.io/v1beta3", {}, {}),
        ("kubeadm.k8s.io/v1beta4", {}, []),
        ("kubeadm.k8s.io/v1beta3", {"a": "1", "b": "2"}, {"a": "1", "b": "2"}),
        (
            "kubeadm.k8s.io/v1beta4",
            {"a": "1", "b": "2"},
            [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}],
        ),
    ],
)
def test_extra_args_shape(api, args, shaped):
    assert kubeadm_config.extra_args(api, args) == shaped


def test_the_schema_catches_a_field_of_the_other_version():
    """The structural check can fail: v1beta4 fields in a v1beta3 document and back."""
    v1beta3 = {"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "InitConfiguration"}
    v1beta4 = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"}
    assert unknown_fields({**v1beta3, "timeouts": {}}) == ["timeouts"]
    assert unknown_fields({**v1beta4, "apiServer": {"timeoutForControlPlane": "4m"}}) == [
        "apiServer.timeoutForControlPlane"
    ]
    assert unknown_fields({**v1beta4, "scheduler": {"extraArgs": {"config": "x"}}}) == [
        "scheduler.extraArgs (expected a list)"
    ]


# --- content ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "files"),
    [
        ("cp1", {INIT_CONFIG, SCHEDULER_CONFIG}),
        ("cp2", {JOIN_CONFIG, SCHEDULER_CONFIG}),
        ("cp3", {JOIN_CONFIG, SCHEDULER_CONFIG}),
        ("w1", {JOIN_CONFIG}),
    ],
)
def test_files_per_node(node, files):
    assert set(kubeadm_config.rendered_files(context(node, scheduler=SCHEDULER))) == files


def test_scheduler_configuration_only_when_configured():
    assert SCHEDULER_CONFIG not in kubeadm_config.rendered_files(context("cp1"))
    assert "scheduler" not in by_kind(context("cp1"))["ClusterConfiguration"]


def test_a_changed_scheduler_file_changes_kube_schedulers_volume():
    """So that kube-scheduler's manifest changes and the kubelet restarts it with the file
    (deploys/kubernetes/reconfigure.py)."""
    names = {
        by_kind(context("cp1", scheduler={"percentage_of_nodes_to_score": p}))[
            "ClusterConfiguration"
        ]["scheduler"]["extraVolumes"][0]["name"]
        for p in (10, 20, 20)
    }
    assert len(names) == 2


def test_cluster_configuration_follows_the_inventory():
    cluster = by_kind(context("cp1", pod_subnet="10.32.0.0/16", **FULL))["ClusterConfiguration"]
    assert cluster["kubernetesVersion"] == "v1.35.9"
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert cluster["controlPlaneEndpoint"] == "10.0.0.10:6443"
    assert cluster["networking"] == {
        "podSubnet": "10.32.0.0/16",
        "serviceSubnet": "10.96.0.0/12",
        "dnsDomain": "cluster.local",
    }
    assert cluster["apiServer"]["certSANs"] == ["api.example.internal", "10.0.0.10"]
    ctx = context("cp1", pod_subnet="10.32.0.0/16", **FULL)
    digest = hashlib.sha256(kubeadm_config.scheduler_file(ctx.settings).encode()).hexdigest()
    assert cluster["scheduler"]["extraVolumes"] == [
        {
            "name": f"scheduler-config-{digest[:10]}",
            "hostPath": SCHEDULER_CONFIG,
            "mountPath": SCHEDULER_CONFIG,
            "readOnly": True,
            "pathType": "File",
        }
    ]


def test_single_control_plane_endpoint_is_its_address():
    cluster = parse_cluster(
        {"hosts": [{"name": "a", "address": "10.1.0.5", "roles": ["control_plane"]}]}
    )
    ctx = NodeContext.from_cluster(cluster, cluster.nodes[0])
    assert by_kind(ctx)["ClusterConfiguration"]["controlPlaneEndpoint"] == "10.1.0.5:6443"


def test_init_configuration_of_the_first_control_plane():
    init = by_kind(context("cp1", api_port=7443))["InitConfiguration"]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.0.0.11", "bindPort": 7443}
    assert init["nodeRegistration"]["name"] == "cp1"
    assert init["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    # kubeadm init always makes a token; this one expires quickly and carries no value here.
    assert init["bootstrapTokens"] == [
        {"description": "created by kubeadm init, unused", "ttl": "15m0s"}
    ]


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_kube_proxy_runs_in_the_chosen_mode(mode):
    proxy = by_kind(context("cp1", kube_proxy_mode=mode))["KubeProxyConfiguration"]
    assert proxy == {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": mode,
    }


def test_kubelet_and_kube_proxy_configuration():
    kinds = by_kind(
        context(
            "cp1",
            image_gc_high_threshold=90,
            image_gc_low_threshold=70,
            container_log_max_size="50Mi",
            container_log_max_files=3,
            kube_proxy_mode="ipvs",
        )
    )
    assert kinds["KubeletConfiguration"] == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "failSwapOn": True,
        "imageGCHighThresholdPercent": 90,
        "imageGCLowThresholdPercent": 70,
        "containerLogMaxSize": "50Mi",
        "containerLogMaxFiles": 3,
    }
    assert kinds["KubeProxyConfiguration"]["mode"] == "ipvs"


@pytest.mark.parametrize(
    ("node", "taint_setting", "taints"),
    [
        ("cp1", True, None),  # kubeadm's default: the control-plane NoSchedule taint
        ("cp2", True, None),
        ("cp1", False, []),
        ("cp2", False, []),
        ("cp3", True, []),  # also a worker: schedulable
        ("w1", True, None),
        ("w1", False, None),
    ],
)
def test_control_plane_taint(node, taint_setting, taints):
    ctx = context(node, control_plane_taint=taint_setting)
    kind = "InitConfiguration" if node == "cp1" else "JoinConfiguration"
    assert by_kind(ctx)[kind]["nodeRegistration"].get("taints") == taints


def test_worker_join_is_pinned_by_the_ca_hash():
    join = by_kind(context("w1"))["JoinConfiguration"]
    assert join["discovery"] == {
        "bootstrapToken": {
            "apiServerEndpoint": "10.0.0.10:6443",
            "token": CREDENTIALS.token,
            "caCertHashes": [CREDENTIALS.ca_cert_hash],
        }
    }
    assert "controlPlane" not in join
    assert join["nodeRegistration"]["kubeletExtraArgs"] == [
        {"name": "node-ip", "value": "10.0.0.21"}
    ]


def test_control_plane_join_carries_its_endpoint_and_the_certificate_key():
    join = by_kind(context("cp2", api_port=7443))["JoinConfiguration"]
    assert join["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "10.0.0.12", "bindPort": 7443},
        "certificateKey": CREDENTIALS.certificate_key,
    }
    assert "unsafeSkipCAVerification" not in join["discovery"]["bootstrapToken"]


def test_join_file_without_credentials_shows_placeholders():
    text = kubeadm_config.rendered_files(context("cp2"))[JOIN_CONFIG]
    join = yaml.safe_load_all(text).__next__()
    assert join["discovery"]["bootstrapToken"]["token"].startswith("<bootstrap token")
    assert join["controlPlane"]["certificateKey"].startswith("<certificate key")


def test_scheduler_configuration():
    scheduler = by_kind(context("cp1", scheduler=SCHEDULER))["KubeSchedulerConfiguration"]
    assert scheduler["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert scheduler["clientConnection"] == {"kubeconfig": "/etc/kubernetes/scheduler.conf"}
    assert scheduler["percentageOfNodesToScore"] == 50
    assert scheduler["profiles"] == [
        {
            "schedulerName": "default-scheduler",
            "plugins": {
                "multiPoint": {
                    "enabled": [
                        {"name": "PrioritySort"},
                        {"name": "DefaultBinder"},
                        {"name": "NodeResourcesFit"},
                        {"name": "ImageLocality"},
                    ],
                    "disabled": [{"name": "*"}],
                },
                "score": {
                    "enabled": [
                        {"name": "NodeResourcesFit", "weight": 3},
                        {"name": "ImageLocality", "weight": 1},
                    ]
                },
            },
        },
        {
            "schedulerName": "spread",
            "plugins": {"multiPoint": {"disabled": [{"name": "ImageLocality"}]}},
        },
    ]


def test_scheduler_configuration_with_only_a_percentage():
    settings = Settings(scheduler={"percentage_of_nodes_to_score": 0})
    assert kubeadm_config.scheduler_document(settings) == {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": "/etc/kubernetes/scheduler.conf"},
        "percentageOfNodesToScore": 0,
    }


# --- hostile values ----------------------------------------------------------------------

HOSTILE = ["; whoami", "a'b\"c", "x\nkind: Evil", "$(reboot)", "{a: b}", "- item", "#"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_values(value):
    """A setting's value comes out quoted (as data), never as YAML structure or another
    document. (The cluster file refuses most of these; the renderer must not rely on it.)"""
    first = context("cp1")
    ctx = NodeContext(first.node, first.nodes, Settings(dns_domain=value, cert_sans=[value]))
    docs = list(yaml.safe_load_all(kubeadm_config.init_file(ctx)))
    assert [d["kind"] for d in docs] == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    ]
    assert docs[1]["networking"]["dnsDomain"] == value
    assert docs[1]["apiServer"]["certSANs"][0] == value
