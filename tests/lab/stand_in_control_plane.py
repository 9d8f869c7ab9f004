"""The stand-in control plane of the lab (a test double, not Kubernetes): one small cluster
state that every lab node shares, answering the stand-in kubeadm, kubectl and kubelet
(tests/lab/stand_in_tools.py) over HTTP from the lab's bridge.

Why on the bridge rather than on the first control plane: the state outlives any node
(a power-cycled, reset or removed first control plane), every node reaches it without
SSH between nodes, one process serialises the parallel joins, and tests read it directly.

The state holds the cluster (version, endpoint, CA and its hash, kubelet configuration),
the nodes (roles, versions, cordons, last kubelet heartbeat), the bootstrap tokens, the
uploaded-certs keys and the applied objects. Pods are derived from it on each read, the
way controllers would make them: static pods on control planes, kube-proxy and every
applied DaemonSet on each node, CoreDNS and applied Deployments on schedulable nodes. A
node is Ready while its kubelet posts heartbeats and a pod network (a DaemonSet in the
kube-flannel namespace) is applied; its pods are Running and ready while it is.

Output follows the real tools': `kubectl ... -o json` (List of objects), apply/delete/
wait/cordon/drain lines, kubeadm's join command, upload-certs key and error messages.

    python3 stand_in_control_plane.py --listen 10.213.47.1:6443 --state state.json
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

try:  # run as the lab's service: the stand-in tools' source sits next to this file
    from stand_in_tools import flag
except ImportError:  # imported as tests.lab.stand_in_control_plane
    from tests.lab.stand_in_tools import flag

# A node whose kubelet has not posted for this long is NotReady (node-monitor-grace-period).
HEARTBEAT_GRACE = 40.0
POD_NETWORK_NAMESPACE = "kube-flannel"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBEADM_APIS = ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")
KNOWN_KINDS = {
    "InitConfiguration": KUBEADM_APIS,
    "ClusterConfiguration": KUBEADM_APIS,
    "JoinConfiguration": KUBEADM_APIS,
    "KubeletConfiguration": ("kubelet.config.k8s.io/v1beta1",),
    "KubeProxyConfiguration": ("kubeproxy.config.k8s.io/v1alpha1",),
}
CERTIFICATE_KEY_TTL = 2 * 3600  # kubeadm deletes the kubeadm-certs Secret after two hours
TOKEN_TTL = 24 * 3600
CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
}
# kubectl's resource names: kind -> (plural, group)
RESOURCES = {
    "Namespace": ("namespaces", ""),
    "ServiceAccount": ("serviceaccounts", ""),
    "ConfigMap": ("configmaps", ""),
    "Secret": ("secrets", ""),
    "Service": ("services", ""),
    "Pod": ("pods", ""),
    "Node": ("nodes", ""),
    "ClusterRole": ("clusterroles", "rbac.authorization.k8s.io"),
    "ClusterRoleBinding": ("clusterrolebindings", "rbac.authorization.k8s.io"),
    "Role": ("roles", "rbac.authorization.k8s.io"),
    "RoleBinding": ("rolebindings", "rbac.authorization.k8s.io"),
    "DaemonSet": ("daemonsets", "apps"),
    "Deployment": ("deployments", "apps"),
    "PodDisruptionBudget": ("poddisruptionbudgets", "policy"),
}
ALIASES = {
    "no": "Node",
    "po": "Pod",
    "ds": "DaemonSet",
    "deploy": "Deployment",
    "ns": "Namespace",
    "cm": "ConfigMap",
    "sa": "ServiceAccount",
    "svc": "Service",
    "pdb": "PodDisruptionBudget",
}
PREFLIGHT_HINT = (
    "[preflight] If you know what you are doing, you can make a check non-fatal with "
    "`--ignore-preflight-errors=...`\n"
)
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher\n"


class Failure(Exception):
    """A command that fails the way the real tool does: its stderr and exit status."""

    def __init__(self, stderr: str, status: int = 1, stdout: str = ""):
        super().__init__(stderr)
        self.stderr, self.status, self.stdout = stderr, status, stdout


def now() -> float:
    return time.time()


def timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def short_hash(*parts: str, length: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the characters Kubernetes names use
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("-")[0].split("."))


# --- PKI ---------------------------------------------------------------------------------


def _pem_pair(key, cert) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization

    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def _certificate(subject: str, issuer_key=None, issuer_name=None, organization: str = ""):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650 if issuer_key is None else 365))
        .add_extension(x509.BasicConstraints(ca=issuer_key is None, path_length=None), True)
    )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def new_ca() -> dict:
    """The cluster CA: {"cert", "key", "hash"}, hash as kubeadm pins it (sha256 of the
    certificate's SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives import serialization

    key, cert = _certificate("kubernetes")
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem_cert, pem_key = _pem_pair(key, cert)
    return {"cert": pem_cert, "key": pem_key, "hash": "sha256:" + hashlib.sha256(spki).hexdigest()}


def client_certificate(ca: dict, user: str, organization: str = "") -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_cert = x509.load_pem_x509_certificate(ca["cert"].encode())
    ca_key = serialization.load_pem_private_key(ca["key"].encode(), None)
    key, cert = _certificate(user, ca_key, ca_cert.subject, organization)
    return _pem_pair(key, cert)


def kubeconfig(ca: dict, server: str, user: str, organization: str = "") -> str:
    cert, key = client_certificate(ca, user, organization)
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    config = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {"certificate-authority-data": b64(ca["cert"]), "server": server},
                "name": "kubernetes",
            }
        ],
        "contexts": [
            {"context": {"cluster": "kubernetes", "user": user}, "name": f"{user}@kubernetes"}
        ],
        "current-context": f"{user}@kubernetes",
        "kind": "Config",
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- the state ---------------------------------------------------------------------------


def empty_state() -> dict:
    return {
        "cluster": None,
        "nodes": {},
        "tokens": {},
        "certificate_keys": {},
        "objects": {},
        "applied_at": {},  # object key -> when it was created
    }


class ControlPlane:
    """The cluster state and the commands that read and change it. Thread-safe; persisted
    to `path` (if given) after every change."""

    def __init__(self, path: Path | None = None, startup: float = 0.0):
        """startup: seconds a pod takes to start after its node and owner exist, and a node
        to turn Ready after the pod network was applied (a real cluster always takes some)."""
        self.path = path
        self.startup = startup
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.state = empty_state()
        if path and path.is_file():
            self.state = json.loads(path.read_text())

    def save(self) -> None:
        if self.path:
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(self.state, indent=1))
            partial.chmod(0o600)
            partial.rename(self.path)
        self.changed.notify_all()

    def reset(self) -> None:
        with self.lock:
            self.state = empty_state()
            self.save()

    # --- derived state -----------------------------------------------------------------

    def cluster(self) -> dict:
        cluster = self.state["cluster"]
        if cluster is None:
            raise Failure(
                "The connection to the server localhost:8080 was refused - did you specify "
                "the right host or port?\n"
            )
        return cluster

    def pod_network(self) -> bool:
        """Whether the pod network runs: a DaemonSet in its namespace applied `startup` ago."""
        applied = self.state.setdefault("applied_at", {})
        return any(
            o["kind"] == "DaemonSet"
            and o["metadata"].get("namespace") == POD_NETWORK_NAMESPACE
            and now() - applied.get(key, 0) >= self.startup
            for key, o in self.state["objects"].items()
        )

    def node_condition(self, node: dict) -> tuple[str, str, str]:
        """Ready's (status, reason, message)."""
        if now() - node["heartbeat"] > HEARTBEAT_GRACE:
            return "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."
        if not self.pod_network():
            return (
                "False",
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false "
                "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin "
                "not initialized",
            )
        return "True", "KubeletReady", "kubelet is posting ready status"

    def node_ready(self, name: str) -> bool:
        node = self.state["nodes"].get(name)
        return bool(node) and self.node_condition(node)[0] == "True"

    def node_object(self, name: str) -> dict:
        node = self.state["nodes"][name]
        status, reason, message = self.node_condition(node)
        since = timestamp(node["created"])
        pressure = [
            {
                "type": t,
                "status": "False",
                "reason": r,
                "message": m,
                "lastHeartbeatTime": timestamp(node["heartbeat"]),
                "lastTransitionTime": since,
            }
            for t, r, m in (
                (
                    "MemoryPressure",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }
        if "control-plane" in node["roles"]:
            labels["node-role.kubernetes.io/control-plane"] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        spec = {"podCIDR": node["pod_cidr"], "podCIDRs": [node["pod_cidr"]]}
        taints = list(node["taints"])
        if node.get("unschedulable"):
            spec["unschedulable"] = True
            taints.append(
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "effect": "NoSchedule",
                    "timeAdded": timestamp(node["cordoned"]),
                }
            )
        if status != "True":
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
        if taints:
            spec["taints"] = taints
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    **node.get("annotations", {}),
                },
                "creationTimestamp": since,
                "labels": labels,
                "name": name,
                "uid": node["uid"],
            },
            "spec": spec,
            "status": {
                "addresses": [
                    {"address": node["address"], "type": "InternalIP"},
                    {"address": name, "type": "Hostname"},
                ],
                "conditions": pressure
                + [
                    {
                        "type": "Ready",
                        "status": status,
                        "reason": reason,
                        "message": message,
                        "lastHeartbeatTime": timestamp(node["heartbeat"]),
                        "lastTransitionTime": since,
                    }
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "containerRuntimeVersion": node["runtime_version"],
                    "kernelVersion": node.get("kernel", ""),
                    "kubeletVersion": node["kubelet_version"],
                    "operatingSystem": "linux",
                    "osImage": node.get("os_image", ""),
                },
            },
        }

    def schedulable(self) -> list[str]:
        """Nodes a Deployment's pods may land on: Ready, not cordoned, workers first (the
        control-plane taint is tolerated by CoreDNS only)."""
        nodes = self.state["nodes"]
        ready = [n for n in nodes if self.node_ready(n) and not nodes[n].get("unschedulable")]
        untainted = [n for n in ready if not nodes[n]["taints"]]
        return untainted or ready

    def pods(self) -> list[dict]:
        """Every pod, as the controllers and kubelets would have made them."""
        pods = []
        cluster = self.state["cluster"]
        if cluster is None:
            return pods
        repo, version = cluster["image_repository"], cluster["version"]
        for name, node in self.state["nodes"].items():
            if "control-plane" in node["roles"]:
                for component in STATIC_PODS:
                    image = f"{repo}/{component}:{version}"
                    if component == "etcd":
                        image = f"{repo}/etcd:3.6.5-0"
                    pods.append(
                        self._pod(
                            "kube-system",
                            f"{component}-{name}",
                            name,
                            image,
                            {"component": component, "tier": "control-plane"},
                            ("Node", name),
                        )
                    )
            pods.append(
                self._pod(
                    "kube-system",
                    f"kube-proxy-{short_hash('kube-proxy', name)}",
                    name,
                    f"{repo}/kube-proxy:{version}",
                    {"k8s-app": "kube-proxy"},
                    ("DaemonSet", "kube-proxy"),
                )
            )
            for obj in self._objects("DaemonSet"):
                meta = obj["metadata"]
                pods.append(
                    self._workload_pod(
                        obj, f"{meta['name']}-{short_hash(meta['name'], name)}", name
                    )
                )
        # CoreDNS tolerates the control-plane taint; it needs the pod network to start.
        places = [
            n
            for n in self.state["nodes"]
            if self.node_ready(n) and not self.state["nodes"][n].get("unschedulable")
        ]
        template = short_hash("coredns", length=10)
        for replica in range(2):
            pod = self._pod(
                "kube-system",
                f"coredns-{template}-{short_hash('coredns', str(replica))}",
                places[replica % len(places)] if places else None,
                f"{repo}/coredns/coredns:v1.12.1",
                {"k8s-app": "kube-dns"},
                ("ReplicaSet", f"coredns-{template}"),
                host_network=False,
            )
            pods.append(pod)
        workers = self.schedulable()
        for obj in self._objects("Deployment"):
            meta = obj["metadata"]
            template = short_hash(meta["name"], json.dumps(obj["spec"], sort_keys=True), length=10)
            for replica in range(int(obj["spec"].get("replicas", 1))):
                pods.append(
                    self._workload_pod(
                        obj,
                        f"{meta['name']}-{template}-{short_hash(meta['name'], str(replica))}",
                        workers[replica % len(workers)] if workers else None,
                        owner=("ReplicaSet", f"{meta['name']}-{template}"),
                    )
                )
        return pods

    def _objects(self, kind: str) -> list[dict]:
        return [o for o in self.state["objects"].values() if o["kind"] == kind]

    def _workload_pod(self, obj: dict, name: str, node: str | None, owner=None) -> dict:
        template = obj["spec"].get("template", {})
        host_network = bool(template.get("spec", {}).get("hostNetwork"))
        containers = template.get("spec", {}).get("containers") or [{"name": "c", "image": "?"}]
        labels = dict(template.get("metadata", {}).get("labels") or {})
        return self._pod(
            obj["metadata"]["namespace"],
            name,
            node,
            containers[0].get("image", "?"),
            labels,
            owner or (obj["kind"], obj["metadata"]["name"]),
            host_network,
        )

    def _pod(self, namespace, name, node, image, labels, owner, host_network=True) -> dict:
        """A pod on `node`: host-network pods (static pods, kube-proxy, flannel) run once the
        kubelet runs, others once the node is Ready (pod network); on a node whose kubelet
        stopped posting they keep running but are not ready."""
        record = self.state["nodes"].get(node) if node else None
        alive = bool(record) and now() - record["heartbeat"] <= HEARTBEAT_GRACE
        owner_key = next(
            (
                k
                for k, o in self.state["objects"].items()
                if o["kind"] == owner[0] and o["metadata"]["name"] == owner[1]
            ),
            "",
        )
        since = max(
            record["created"] if record else 0, self.state.get("applied_at", {}).get(owner_key, 0)
        )
        started = bool(record) and (host_network or self.pod_network())
        started = started and now() - since >= self.startup
        phase = "Running" if started else "Pending"
        ready = "True" if started and alive else "False"
        conditions = [
            {"type": t, "status": ready} for t in ("Initialized", "Ready", "ContainersReady")
        ]
        conditions.append({"type": "PodScheduled", "status": "True" if node else "False"})
        kind, owner_name = owner
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "labels": labels,
                "name": name,
                "namespace": namespace,
                "ownerReferences": [{"kind": kind, "name": owner_name, "controller": True}],
                "uid": short_hash("pod", namespace, name, length=12),
            },
            "spec": {"containers": [{"image": image, "name": name.split("-")[0]}]},
            "status": {"conditions": conditions, "phase": phase},
        }
        if node:
            pod["spec"]["nodeName"] = node
            pod["status"]["hostIP"] = self.state["nodes"][node]["address"]
        return pod

    def object_ready(self, obj: dict, condition: str) -> bool:
        """Whether `obj` meets `condition`: a condition name, or "jsonpath={.a.b}=value"."""
        if condition.startswith("jsonpath="):
            path, _, wanted = condition.removeprefix("jsonpath=").partition("}=")
            value = obj
            for part in path.strip("{.").split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return str(value) == wanted
        kind = obj["kind"]
        if kind == "Node":
            return condition == "Ready" and self.node_ready(obj["metadata"]["name"])
        if kind == "Pod":
            return condition == "Ready" and pod_ready(obj)
        if kind in ("Deployment", "DaemonSet"):
            pods = self.owned_pods(obj)
            return bool(pods) and all(pod_ready(p) for p in pods)
        return False

    def owned_pods(self, obj: dict) -> list[dict]:
        meta = obj["metadata"]
        prefix = f"{meta['name']}-"
        return [
            p
            for p in self.pods()
            if p["metadata"]["namespace"] == meta["namespace"]
            and p["metadata"]["name"].startswith(prefix)
            and p["metadata"]["ownerReferences"][0]["kind"] in (obj["kind"], "ReplicaSet")
        ]

    # --- registration ----------------------------------------------------------------

    def _register(
        self, name: str, address: str, roles: list[str], taints: list, context: dict
    ) -> None:
        nodes = self.state["nodes"]
        index = len(nodes) if name not in nodes else list(nodes).index(name)
        subnet = self.state["cluster"]["pod_subnet"]
        base = subnet.split("/")[0].split(".")
        pod_cidr = f"{base[0]}.{base[1]}.{index}.0/24"
        nodes[name] = {
            "address": address,
            "roles": roles,
            "taints": taints,
            "pod_cidr": pod_cidr,
            "kubelet_version": context.get("kubelet_version", ""),
            "runtime_version": context.get("runtime_version", ""),
            "os_image": context.get("os_image", ""),
            "kernel": context.get("kernel", ""),
            "created": now(),
            "heartbeat": now(),
            "uid": short_hash("node", name, str(now()), length=12),
        }

    def heartbeat(self, request: dict) -> dict:
        with self.lock:
            node = self.state["nodes"].get(request.get("node", ""))
            if node is None:
                return {"registered": False}
            node["heartbeat"] = now()
            for key in ("kubelet_version", "runtime_version"):
                if request.get("context", {}).get(key):
                    node[key] = request["context"][key]
            self.save()
            return {"registered": True}


# --- kubeadm ----------------------------------------------------------------------------


def parse_documents(text: str, path: str) -> dict[str, dict]:
    """kubeadm's configuration documents by kind; unknown kinds or versions fail."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise Failure(f"error converting YAML to JSON: {exc}\n") from None
    found = {}
    for document in documents:
        kind, api = document.get("kind"), document.get("apiVersion")
        if kind not in KNOWN_KINDS or api not in KNOWN_KINDS[kind]:
            raise Failure(
                f'no kind "{kind}" is registered for version "{api}" in scheme '
                '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"\n'
            )
        found[kind] = document
    return found


def preflight(errors: list[str], phase: str = "preflight") -> None:
    if errors:
        lines = "".join(f"\t[ERROR {e}\n" for e in errors)
        raise Failure(
            f"error execution phase {phase}: [preflight] Some fatal errors occurred:\n{lines}"
            f"{PREFLIGHT_HINT}{STACK_HINT}",
            stdout="[preflight] Running pre-flight checks\n",
        )


def _file_checks(context: dict, paths: list[str]) -> list[str]:
    exists = context.get("exists", {})
    return [
        f"FileAvailable-{p.replace('/', '-')}]: {p} already exists" for p in paths if exists.get(p)
    ]


def _kubelet_args(registration: dict) -> dict:
    args = registration.get("kubeletExtraArgs") or {}
    if isinstance(args, list):
        return {a["name"]: a["value"] for a in args}
    return dict(args)


def _node_files(ca: dict, server: str, name: str, kubelet_config: str, registration: dict) -> dict:
    node_ip = _kubelet_args(registration).get("node-ip", "")
    flags = f"--container-runtime-endpoint={registration.get('criSocket', '')}"
    if node_ip:
        flags += f" --node-ip={node_ip}"
    return {
        "/etc/kubernetes/pki/ca.crt": ("644", ca["cert"]),
        "/etc/kubernetes/kubelet.conf": (
            "600",
            kubeconfig(ca, server, f"system:node:{name}", "system:nodes"),
        ),
        "/var/lib/kubelet/config.yaml": ("644", kubelet_config),
        "/var/lib/kubelet/kubeadm-flags.env": ("644", f'KUBELET_KUBEADM_ARGS="{flags}"\n'),
    }


def _control_plane_files(cluster: dict, ca: dict, server: str, advertise: str) -> dict:
    files = {"/etc/kubernetes/pki/ca.key": ("600", ca["key"])}
    for conf, user, org in (
        ("admin.conf", "kubernetes-admin", "kubeadm:cluster-admins"),
        ("super-admin.conf", "kubernetes-super-admin", "system:masters"),
        ("controller-manager.conf", "system:kube-controller-manager", ""),
        ("scheduler.conf", "system:kube-scheduler", ""),
    ):
        files[f"/etc/kubernetes/{conf}"] = ("600", kubeconfig(ca, server, user, org))
    for component in STATIC_PODS:
        image = f"{cluster['image_repository']}/{component}:{cluster['version']}"
        manifest = _static_pod(component, image, {"advertise-address": advertise}, [])
        files[f"/etc/kubernetes/manifests/{component}.yaml"] = ("600", manifest)
    return files


class Kubeadm:
    def __init__(self, plane: ControlPlane, version: str, request: dict):
        self.plane, self.version, self.request = plane, version, request
        self.context = request.get("context", {})
        self.argv = request["argv"]

    def config_text(self) -> tuple[str, str]:
        path = flag(self.argv, "--config")
        text = self.context.get("files", {}).get(path)
        if text is None:
            raise Failure(
                f"unable to read config from {path!r} : open {path}: no such file or directory\n"
            )
        return path, text

    def check_version(self, wanted: str) -> None:
        mine = version_tuple(self.version)
        target = version_tuple(wanted)
        if target[:2] > mine[:2] or (target[:2] == mine[:2] and target > mine):
            raise Failure(
                f"this version of kubeadm only supports deploying clusters with the control "
                f"plane version <= v{self.version}. Current version: {wanted}\n"
            )
        if target[:2] < (mine[0], mine[1] - 1):
            raise Failure(
                f"this version of kubeadm only supports deploying clusters with the control "
                f"plane version >= v{mine[0]}.{mine[1] - 1}.0. Current version: {wanted}\n"
            )

    def check_kubelet(self, control_plane_version: str) -> list[str]:
        kubelet = self.context.get("kubelet_version", "")
        if kubelet and version_tuple(kubelet)[:2] > version_tuple(control_plane_version)[:2]:
            return [
                "KubeletVersion]: the kubelet version is higher than the control plane "
                "version. This is not a supported version skew and may lead to a "
                f'malfunctional cluster. Kubelet version: "{kubelet.lstrip("v")}" Control '
                f'plane version: "{control_plane_version.lstrip("v")}"'
            ]
        return []

    def init(self) -> dict:
        path, text = self.config_text()
        docs = parse_documents(text, path)
        init = docs.get("InitConfiguration", {})
        cluster_doc = docs.get("ClusterConfiguration", {})
        registration = init.get("nodeRegistration", {})
        name = registration.get("name") or self.request["node"]
        endpoint = init.get("localAPIEndpoint", {})
        advertise = endpoint.get("advertiseAddress", "")
        port = endpoint.get("bindPort", 6443)
        version = cluster_doc.get("kubernetesVersion", f"v{self.version}")
        self.check_version(version)
        errors = self.check_kubelet(version)
        errors += _file_checks(
            self.context,
            [
                "/etc/kubernetes/manifests/kube-apiserver.yaml",
                "/etc/kubernetes/manifests/etcd.yaml",
                "/etc/kubernetes/kubelet.conf",
            ],
        )
        preflight(errors)
        state = self.plane.state
        if state["cluster"] is not None:
            raise Failure(
                "stand-in control plane: this lab already has a cluster (initialized on "
                f"{state['cluster']['first']}); `kubeadm reset -f` there or restart the lab\n"
            )
        control_plane_endpoint = cluster_doc.get("controlPlaneEndpoint", "")
        networking = cluster_doc.get("networking", {})
        ca = new_ca()
        state["cluster"] = {
            "first": name,
            "version": version,
            "image_repository": cluster_doc.get("imageRepository", "registry.k8s.io"),
            "control_plane_endpoint": control_plane_endpoint,
            "endpoint": control_plane_endpoint or f"{advertise}:{port}",
            "pod_subnet": networking.get("podSubnet", "10.244.0.0/16"),
            "service_subnet": networking.get("serviceSubnet", "10.96.0.0/12"),
            "ca": ca,
            "kubelet_config": yaml.safe_dump(
                docs.get(
                    "KubeletConfiguration",
                    {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"},
                ),
                sort_keys=False,
            ),
            "kube_proxy_mode": docs.get("KubeProxyConfiguration", {}).get("mode", ""),
            **lifecycle_state(docs, name),
        }
        cluster = state["cluster"]
        taints = registration.get("taints", [CONTROL_PLANE_TAINT])
        node_ip = _kubelet_args(registration).get("node-ip", advertise)
        self.plane._register(name, node_ip, ["control-plane"], taints, self.context)
        # The token `kubeadm init` always creates.
        for token in init.get("bootstrapTokens") or [{}]:
            self._new_token(token.get("ttl", "24h0m0s"), token.get("description", ""))
        server = f"https://{cluster['endpoint']}"
        files = {
            **_node_files(ca, server, name, cluster["kubelet_config"], registration),
            **_control_plane_files(cluster, ca, server, advertise),
        }
        self.plane.save()
        stdout = (
            f"[init] Using Kubernetes version: {version}\n"
            "[preflight] Running pre-flight checks\n"
            '[certs] Generating "ca" certificate and key\n'
            '[kubeconfig] Writing "admin.conf" kubeconfig file\n'
            + "".join(
                f'[control-plane] Creating static Pod manifest for "{c}"\n' for c in STATIC_PODS[1:]
            )
            + '[etcd] Creating static Pod manifest for local etcd in "/etc/kubernetes/manifests"\n'
            "[kubelet-start] Starting the kubelet\n"
            "\nYour Kubernetes control-plane has initialized successfully!\n"
        )
        return {"stdout": stdout, "writes": files, "restart": ["kubelet"]}

    def _new_token(self, ttl: str, description: str) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        token_id = "".join(secrets.choice(alphabet) for _ in range(6))
        secret = "".join(secrets.choice(alphabet) for _ in range(16))
        self.plane.state.setdefault("issued_secrets", []).append(f"{token_id}.{secret}")
        self.plane.state["tokens"][token_id] = {
            "secret": secret,
            "expires": now() + parse_duration(ttl),
            "description": description,
        }
        return f"{token_id}.{secret}"

    def require_admin(self) -> dict:
        if not self.context.get("exists", {}).get("/etc/kubernetes/admin.conf"):
            raise Failure(
                "failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file "
                "or directory\n" + STACK_HINT
            )
        return self.plane.cluster()

    def token(self) -> dict:
        action = self.argv[1] if len(self.argv) > 1 else "list"
        cluster = self.require_admin()
        tokens = self.plane.state["tokens"]
        if action == "create":
            token = self._new_token(
                flag(self.argv, "--ttl", "24h0m0s"), flag(self.argv, "--description")
            )
            self.plane.save()
            if "--print-join-command" in self.argv:
                return {
                    "stdout": f"kubeadm join {cluster['endpoint']} --token {token} "
                    f"--discovery-token-ca-cert-hash {cluster['ca']['hash']} \n"
                }
            return {"stdout": token + "\n"}
        if action == "delete":
            out = []
            for token_id in self.argv[2:]:
                token_id = token_id.split(".")[0]
                if tokens.pop(token_id, None) is None:
                    raise Failure(f'bootstrap token "{token_id}" not found\n')
                out.append(f'bootstrap token "{token_id}" deleted\n')
            self.plane.save()
            return {"stdout": "".join(out)}
        if action == "list":
            rows = ["TOKEN   TTL   EXPIRES   USAGES   DESCRIPTION   EXTRA GROUPS"]
            for token_id, token in tokens.items():
                left = max(0, int(token["expires"] - now()))
                rows.append(
                    f"{token_id}.<redacted>   {left // 3600}h{left % 3600 // 60}m   "
                    f"{timestamp(token['expires'])}   authentication,signing   "
                    f"{token['description'] or '<none>'}   "
                    "system:bootstrappers:kubeadm:default-node-token"
                )
            return {"stdout": "\n".join(rows) + "\n"}
        raise Failure(f'unknown command "{action}" for "kubeadm token"\n')

    def upload_certs(self) -> dict:
        cluster = self.require_admin()
        key = secrets.token_hex(32)
        self.plane.state.setdefault("issued_secrets", []).append(key)
        self.plane.state["certificate_keys"][key] = {"expires": now() + CERTIFICATE_KEY_TTL}
        self.plane.save()
        del cluster
        return {
            "stdout": '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the '
            '"kube-system" Namespace\n[upload-certs] Using certificate key:\n' + key + "\n"
        }

    def join(self) -> dict:
        path, text = self.config_text()
        docs = parse_documents(text, path)
        join = docs.get("JoinConfiguration")
        if join is None:
            raise Failure(f"no JoinConfiguration found in {path}\n")
        registration = join.get("nodeRegistration", {})
        name = registration.get("name") or self.request["node"]
        control_plane = join.get("controlPlane")
        checks = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt"]
        if control_plane is not None:
            checks += ["/etc/kubernetes/manifests/kube-apiserver.yaml"]
        errors = _file_checks(self.context, checks)
        if self.context.get("kubelet_port_in_use"):
            errors.append("Port-10250]: Port 10250 is in use")
        preflight(errors)
        bootstrap = join.get("discovery", {}).get("bootstrapToken", {})
        endpoint = bootstrap.get("apiServerEndpoint", "")
        cluster = self.plane.state["cluster"]
        prefix = (
            "error execution phase preflight: couldn't validate the identity of the API Server: "
        )
        if cluster is None or endpoint != cluster["endpoint"]:
            raise Failure(
                f'{prefix}Get "https://{endpoint}/api/v1/namespaces/kube-public/configmaps/'
                f'cluster-info?timeout=10s": dial tcp {endpoint}: connect: connection refused\n'
                + STACK_HINT
            )
        token_id, _, token_secret = str(bootstrap.get("token", "")).partition(".")
        token = self.plane.state["tokens"].get(token_id)
        if not token or token["secret"] != token_secret or token["expires"] < now():
            raise Failure(
                f"{prefix}could not find a JWS signature in the cluster-info ConfigMap for "
                f'token ID "{token_id}"\n' + STACK_HINT
            )
        if cluster["ca"]["hash"] not in (bootstrap.get("caCertHashes") or []):
            raise Failure(
                f"{prefix}cluster CA found in cluster-info ConfigMap is invalid: none of the "
                f'public keys "{cluster["ca"]["hash"]}" are pinned\n' + STACK_HINT
            )
        preflight(self.check_kubelet(cluster["version"]))
        ca = cluster["ca"]
        server = f"https://{cluster['endpoint']}"
        files = _node_files(ca, server, name, cluster["kubelet_config"], registration)
        roles, taints = [], []
        if control_plane is not None:
            if not cluster["control_plane_endpoint"]:
                raise Failure(
                    "error execution phase preflight: \nOne or more conditions for hosting a new "
                    "control plane instance is not satisfied.\n\nunable to add a new control "
                    "plane instance to a cluster that doesn't have a stable "
                    "controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a "
                    "stable controlPlaneEndpoint address.\n" + STACK_HINT
                )
            key = self.plane.state["certificate_keys"].get(control_plane.get("certificateKey", ""))
            if not key or key["expires"] < now():
                raise Failure(
                    "error execution phase control-plane-prepare/download-certs: error "
                    'downloading certs: error downloading the secret: Secret "kubeadm-certs" '
                    'was not found in the "kube-system" Namespace. This Secret might have '
                    "expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a "
                    "control plane to generate a new one\n" + STACK_HINT
                )
            advertise = control_plane.get("localAPIEndpoint", {}).get("advertiseAddress", "")
            files.update(_control_plane_files(cluster, ca, server, advertise))
            cluster.setdefault("etcd_members", []).append(name)
            roles = ["control-plane"]
            taints = registration.get("taints", [CONTROL_PLANE_TAINT])
        existing = self.plane.state["nodes"].get(name)
        if existing and self.plane.node_condition(existing)[0] == "True":
            raise Failure(
                f'error execution phase kubelet-start: a Node with name "{name}" and status '
                '"Ready" already exists in the cluster. You must delete the existing Node or '
                "change the name of this new joining Node\n" + STACK_HINT
            )
        node_ip = _kubelet_args(registration).get("node-ip", self.context.get("address", ""))
        self.plane._register(name, node_ip, roles, taints, self.context)
        self.plane.save()
        what = "control-plane" if roles else "worker"
        stdout = (
            "[preflight] Running pre-flight checks\n"
            '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
            '"kube-system"...\n'
            '[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"\n'
            "[kubelet-start] Starting the kubelet\n"
            "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap\n\n"
            "This node has joined the cluster"
            + (" and a new control plane instance was created" if roles else "")
            + ":\n"
            f"* Certificate signing request was sent to apiserver and a response was received.\n"
            f"(stand-in: joined as a {what})\n"
        )
        return {"stdout": stdout, "writes": files, "restart": ["kubelet"]}

    def reset(self) -> dict:
        name = self.request["node"]
        cluster = self.plane.state["cluster"]
        if cluster and cluster["first"] == name and len(self.plane.state["nodes"]) <= 1:
            self.plane.state = empty_state()  # the last control plane: the cluster is gone
        self.plane.save()
        return {
            "stdout": "[reset] Stopping the kubelet service\n[reset] Deleting contents of "
            "directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]\n",
            "stop": ["kubelet"],
            "removes": [
                "/etc/kubernetes/manifests/",
                "/etc/kubernetes/pki/",
                "/var/lib/kubelet/",
                "/etc/kubernetes/admin.conf",
                "/etc/kubernetes/super-admin.conf",
                "/etc/kubernetes/kubelet.conf",
                "/etc/kubernetes/controller-manager.conf",
                "/etc/kubernetes/scheduler.conf",
                "/etc/kubernetes/bootstrap-kubelet.conf",
            ],
        }

    def upgrade_policy(self, cluster_version: str, wanted: str) -> None:
        """kubeadm's EnforceVersionPolicies (cmd/kubeadm/app/phases/upgrade/policy.go): one
        minor at a time, never past kubeadm's own minor; minor downgrades refused."""
        new, now_, mine = (version_tuple(v) for v in (wanted, cluster_version, self.version))
        errors = []
        if new[1] > now_[1] + 1:
            errors.append(
                f'Specified version to upgrade to "{wanted}" is too high; kubeadm can upgrade '
                "only 1 minor version at a time"
            )
        if new[1] < now_[1] - 1:
            errors.append(
                f'Specified version to downgrade to "{wanted}" is too low; kubeadm can '
                "downgrade only 1 minor version at a time"
            )
        if new[1] > mine[1]:
            errors.append(
                f'Specified version to upgrade to "{wanted}" is at least one minor release '
                f"higher than the kubeadm minor release ({new[1]} > {mine[1]}). Such an "
                "upgrade is not supported"
            )
        if errors:
            raise Failure(
                "[upgrade/version] FATAL: the --version argument is invalid due to these fatal "
                "errors:\n\n"
                + "".join(f"\t- {e}\n" for e in errors)
                + "\nPlease fix the misalignments highlighted above and try upgrading again\n"
                + STACK_HINT
            )

    def _manifests(self, cluster: dict, node: dict) -> dict:
        """This control plane's static pod manifests at the cluster's version."""
        server = f"https://{cluster['endpoint']}"
        files = _control_plane_files(cluster, cluster["ca"], server, node.get("address", ""))
        return {p: v for p, v in files.items() if p.startswith("/etc/kubernetes/manifests/")}

    def upgrade(self) -> dict:
        """kubeadm upgrade plan|apply|node, the version of the control plane moving with
        `apply` only (kubeadm-upgrade docs: apply on the first control plane, node on the
        others and on workers, which rewrites the kubelet configuration)."""
        action = [a for a in self.argv if not a.startswith("-")][1:2]
        cluster = self.require_admin() if action != ["node"] else self.plane.cluster()
        words = [a for a in self.argv if not a.startswith("-")][2:]
        wanted = words[0] if words else f"v{self.version}"
        name = self.request["node"]
        node = self.plane.state["nodes"].get(name, {})
        control_plane = "control-plane" in node.get("roles", [])
        if action == ["plan"]:
            self.upgrade_policy(cluster["version"], wanted)
            return {
                "stdout": "[preflight] Running pre-flight checks.\n"
                "[upgrade] Fetching available versions to upgrade to\n"
                f"[upgrade/versions] Cluster version: {cluster['version']}\n"
                f"[upgrade/versions] kubeadm version: v{self.version}\n"
                "Upgrade to the latest version in the stable series:\n\n"
                "COMPONENT                 NODE      CURRENT   TARGET\n"
                f"kube-apiserver            {name}   {cluster['version']}   {wanted}\n\n"
                f"You can now apply the upgrade by executing the following command:\n\n"
                f"\tkubeadm upgrade apply {wanted}\n"
            }
        if action == ["apply"]:
            if not control_plane:
                raise Failure("stand-in kubeadm: upgrade apply runs on a control plane\n")
            self.upgrade_policy(cluster["version"], wanted)
            cluster["version"] = wanted
            node["upgraded"] = wanted
            self.plane.save()
            return {
                "stdout": "[upgrade/version] You have chosen to change the cluster version to "
                f'"{wanted}"\n'
                '[upgrade/staticpods] Writing new Static Pod manifests to "/etc/kubernetes/tmp"\n'
                f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{wanted}". Enjoy!\n',
                "writes": self._manifests(cluster, node),
            }
        if action == ["node"]:
            if version_tuple(cluster["version"])[:2] > version_tuple(self.version)[:2]:
                raise Failure(
                    f"stand-in kubeadm: the cluster runs {cluster['version']}, newer than this "
                    f"kubeadm v{self.version}: upgrade kubeadm first\n"
                )
            writes = {"/var/lib/kubelet/config.yaml": ("644", cluster["kubelet_config"])}
            if control_plane:
                writes.update(self._manifests(cluster, node))
                node["upgraded"] = cluster["version"]
                self.plane.save()
            return {
                "stdout": "[upgrade] Reading configuration from the cluster...\n"
                + (
                    "[upgrade] Upgrading your Static Pod-hosted control plane instance\n"
                    if control_plane
                    else ""
                )
                + "[upgrade] The configuration for this node was successfully updated!\n",
                "writes": writes,
            }
        raise Failure(f'unknown command "{" ".join(action)}" for "kubeadm upgrade"\n')

    def run(self) -> dict:
        argv = self.argv
        words = [a for a in argv if not a.startswith("-")]
        lifecycle = KubeadmLifecycle(self).run(words)
        if lifecycle is not None:
            return lifecycle
        if words[:1] == ["upgrade"]:
            return self.upgrade()
        if words[:1] == ["init"] and words[1:3] == ["phase", "upload-certs"]:
            return self.upload_certs()
        if words[:1] == ["init"]:
            return self.init()
        if words[:1] == ["join"]:
            return self.join()
        if words[:1] == ["token"]:
            return self.token()
        if words[:1] == ["reset"]:
            return self.reset()
        raise Failure(f"stand-in kubeadm: {' '.join(words[:3])!r} is not implemented\n")


# --- the cluster's lifecycle: reconfiguration, removal (deploys/kubernetes/reconfigure.py,
# removal.py) -----------------------------------------------------------------------------


def lifecycle_state(docs: dict, first: str) -> dict:
    """What `kubeadm init` keeps of its configuration for the later phases: the documents
    kubeadm uploads to its ConfigMaps, and the stacked etcd members."""
    return {
        "cluster_configuration": yaml.safe_dump(docs.get("ClusterConfiguration", {})),
        "kube_proxy_config": yaml.safe_dump(
            docs.get(
                "KubeProxyConfiguration",
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                },
            )
        ),
        "etcd_members": [first],
    }


def kubeadm_config_maps(cluster: dict | None) -> list[dict]:
    """The ConfigMaps kubeadm keeps in kube-system (kubeadm-config: ClusterConfiguration,
    kubelet-config: kubelet, kube-proxy: config.conf), as `kubectl get` shows them."""
    if not cluster or "cluster_configuration" not in cluster:
        return []
    # `kubeadm upgrade apply` moves the version in kubeadm-config with the cluster's.
    configuration = yaml.safe_load(cluster["cluster_configuration"]) or {}
    configuration["kubernetesVersion"] = cluster["version"]
    data = {
        "kubeadm-config": {"ClusterConfiguration": yaml.safe_dump(configuration)},
        "kubelet-config": {"kubelet": cluster["kubelet_config"]},
        "kube-proxy": {"config.conf": cluster["kube_proxy_config"]},
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "kube-system"},
            "data": values,
        }
        for name, values in data.items()
    ]


def server_certificate(ca: dict, subject: str, names: list[str]) -> tuple[str, str]:
    """A serving certificate signed by the cluster CA for `names` (DNS names and IPs)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(ca["cert"].encode())
    ca_key = serialization.load_pem_private_key(ca["key"].encode(), None)
    sans = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem_cert, pem_key = _pem_pair(key, cert)
    return pem_cert, pem_key


def _static_pod(component: str, image: str, flags: dict, volumes: list) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": component,
            "namespace": "kube-system",
            "labels": {"component": component, "tier": "control-plane"},
            "annotations": {"stand-in": "test double: never run"},
        },
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "name": component,
                    "image": image,
                    "command": [component, *(f"--{k}={v}" for k, v in sorted(flags.items()))],
                    "volumeMounts": [
                        {"name": v["name"], "mountPath": v["mountPath"], "readOnly": True}
                        for v in volumes
                    ],
                }
            ],
            "volumes": [
                {
                    "name": v["name"],
                    "hostPath": {"path": v["hostPath"], "type": v.get("pathType", "")},
                }
                for v in volumes
            ],
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False)


class KubeadmLifecycle:
    """The phases the reconfiguration and the removal call, as kubeadm 1.35 answers them:
    `init phase upload-config kubeadm|kubelet`, `init phase addon kube-proxy`, `init phase
    certs apiserver`, `init phase control-plane all`, `upgrade node phase kubelet-config`,
    `reset phase remove-etcd-member`."""

    def __init__(self, kubeadm: Kubeadm):
        self.kubeadm, self.plane = kubeadm, kubeadm.plane

    def run(self, words: list[str]) -> dict | None:
        phase = " ".join(words[:4])
        if phase in ("init phase upload-config kubeadm", "init phase upload-config kubelet"):
            return self.upload_config(words[3])
        if phase == "init phase addon kube-proxy":
            return self.kube_proxy()
        if phase == "init phase certs apiserver":
            return self.certs_apiserver()
        if phase == "init phase control-plane all":
            return self.control_plane()
        if phase == "upgrade node phase kubelet-config":
            return self.kubelet_config()
        if " ".join(words[:3]) == "reset phase remove-etcd-member":
            return self.remove_etcd_member()
        if words[:2] == ["certs", "check-expiration"]:
            return self.check_expiration()
        if words[:3] == ["certs", "renew", "all"]:
            return self.renew()
        return None

    # The certificates kubeadm makes on a control plane: issued at its init or join (or
    # last renewal), valid one year; the CAs ten years from the cluster's creation.
    LEAVES = ("admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
              "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
              "front-proxy-client", "scheduler.conf", "super-admin.conf")  # fmt: skip

    def _control_plane_node(self) -> dict:
        name = self.kubeadm.request["node"]
        node = self.plane.state["nodes"].get(name)
        if node is None or "control-plane" not in node["roles"]:
            raise Failure(
                "error: failed to load certificate: open /etc/kubernetes/pki/apiserver.crt: no "
                "such file or directory\n" + STACK_HINT
            )
        return node

    def check_expiration(self) -> dict:
        node = self._control_plane_node()
        issued = node.get("certs_renewed", node["created"])
        first = min(n["created"] for n in self.plane.state["nodes"].values())

        def row(seconds: float) -> tuple[str, str]:
            moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
            left = int((seconds - now()) // 86400)
            return moment.strftime("%b %d, %Y %H:%M UTC"), f"{left}d" if left < 365 else "9y"

        lines = [
            '[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in '
            'namespace "kube-system"...',
            "",
            "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE "
            "AUTHORITY   EXTERNALLY MANAGED",
        ]
        expires, left = row(issued + 365 * 86400)
        for leaf in self.LEAVES:
            ca = "etcd-ca" if leaf.startswith("etcd") or leaf == "apiserver-etcd-client" else "ca"
            lines.append(f"{leaf:<26} {expires}   {left:<15} {ca:<23} no")
        expires, left = row(first + 3650 * 86400)
        lines += ["", "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   "
                  "EXTERNALLY MANAGED"]  # fmt: skip
        lines += [
            f"{ca:<23} {expires}   {left:<15} no" for ca in ("ca", "etcd-ca", "front-proxy-ca")
        ]
        return {"stdout": "\n".join(lines) + "\n"}

    def renew(self) -> dict:
        node = self._control_plane_node()
        node["certs_renewed"] = now()
        self.plane.save()
        return {
            "stdout": "".join(f"certificate for {leaf} renewed\n" for leaf in self.LEAVES)
            + "\nDone renewing certificates. You must restart the kube-apiserver, "
            "kube-controller-manager, kube-scheduler and etcd, so that they can use the new "
            "certificates.\n"
        }

    def _documents(self) -> dict[str, dict]:
        path, text = self.kubeadm.config_text()
        return parse_documents(text, path)

    def upload_config(self, what: str) -> dict:
        cluster = self.kubeadm.require_admin()
        docs = self._documents()
        if what == "kubeadm":
            cluster["cluster_configuration"] = yaml.safe_dump(docs["ClusterConfiguration"])
            cluster["image_repository"] = docs["ClusterConfiguration"].get(
                "imageRepository", cluster["image_repository"]
            )
            stdout = (
                '[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" '
                'in the "kube-system" Namespace\n'
            )
        else:
            cluster["kubelet_config"] = yaml.safe_dump(
                docs["KubeletConfiguration"], sort_keys=False
            )
            stdout = (
                '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system '
                "with the configuration for the kubelets in the cluster\n"
            )
        self.plane.save()
        return {"stdout": stdout}

    def kube_proxy(self) -> dict:
        cluster = self.kubeadm.require_admin()
        proxy = self._documents().get("KubeProxyConfiguration", {})
        cluster["kube_proxy_config"] = yaml.safe_dump(proxy)
        cluster["kube_proxy_mode"] = proxy.get("mode", "")
        self.plane.save()
        return {"stdout": "[addons] Applied essential addon: kube-proxy\n"}

    def certs_apiserver(self) -> dict:
        docs = self._documents()
        cluster = self.plane.cluster()
        if self.kubeadm.context.get("exists", {}).get("/etc/kubernetes/pki/apiserver.crt"):
            return {"stdout": "[certs] Using existing apiserver certificate and key on disk\n"}
        init = docs.get("InitConfiguration", {})
        name = init.get("nodeRegistration", {}).get("name") or self.kubeadm.request["node"]
        advertise = init.get("localAPIEndpoint", {}).get("advertiseAddress", "")
        cluster_doc = docs["ClusterConfiguration"]
        domain = cluster_doc.get("networking", {}).get("dnsDomain", "")
        sans = (cluster_doc.get("apiServer") or {}).get("certSANs", [])
        names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 f"kubernetes.default.svc.{domain}", name, advertise, *sans]  # fmt: skip
        cert, key = server_certificate(cluster["ca"], "kube-apiserver", [n for n in names if n])
        return {
            "stdout": '[certs] Generating "apiserver" certificate and key\n'
            f"[certs] apiserver serving cert is signed for DNS names and IPs {names}\n",
            "writes": {
                "/etc/kubernetes/pki/apiserver.crt": ("644", cert),
                "/etc/kubernetes/pki/apiserver.key": ("600", key),
            },
        }

    def control_plane(self) -> dict:
        docs = self._documents()
        cluster_doc = docs["ClusterConfiguration"]
        advertise = docs.get("InitConfiguration", {}).get("localAPIEndpoint", {})
        repo = cluster_doc.get("imageRepository", "registry.k8s.io")
        version = cluster_doc.get("kubernetesVersion", f"v{self.kubeadm.version}")
        writes, out = {}, []
        for key, component in (("apiServer", "kube-apiserver"),
                               ("controllerManager", "kube-controller-manager"),
                               ("scheduler", "kube-scheduler")):  # fmt: skip
            section = cluster_doc.get(key) or {}
            flags = _kubelet_args({"kubeletExtraArgs": section.get("extraArgs")})
            if component == "kube-apiserver":
                flags["advertise-address"] = advertise.get("advertiseAddress", "")
            text = _static_pod(
                component, f"{repo}/{component}:{version}", flags, section.get("extraVolumes") or []
            )
            writes[f"/etc/kubernetes/manifests/{component}.yaml"] = ("600", text)
            out.append(f'[control-plane] Creating static Pod manifest for "{component}"\n')
        return {"stdout": "".join(out), "writes": writes}

    def kubelet_config(self) -> dict:
        cluster = self.plane.cluster()
        if not self.kubeadm.context.get("exists", {}).get("/etc/kubernetes/kubelet.conf"):
            raise Failure(
                "error execution phase kubelet-config: failed to load kubeconfig: open "
                "/etc/kubernetes/kubelet.conf: no such file or directory\n" + STACK_HINT
            )
        return {
            "stdout": '[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in '
            'namespace "kube-system"...\n[kubelet-start] Writing kubelet configuration to file '
            '"/var/lib/kubelet/config.yaml"\n[upgrade/kubelet-config] The kubelet configuration '
            "for this node was successfully upgraded!\n",
            "writes": {"/var/lib/kubelet/config.yaml": ("644", cluster["kubelet_config"])},
        }

    def remove_etcd_member(self) -> dict:
        cluster = self.plane.cluster()
        name = self.kubeadm.request["node"]
        members = cluster.setdefault("etcd_members", [])
        if name not in members:
            return {"stdout": "[reset] No etcd member found for this node\n"}
        if len(members) == 1:
            raise Failure(
                "error execution phase remove-etcd-member: cannot remove the only member of "
                "the etcd cluster\n" + STACK_HINT
            )
        members.remove(name)
        self.plane.save()
        return {"stdout": f"[reset] Removing member {name} from the etcd cluster\n"}


def parse_duration(text: str) -> float:
    """Go durations as kubeadm takes them: 1h0m0s, 15m0s, 24h, 600s."""
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


# --- kubectl ----------------------------------------------------------------------------


def resource_name(kind: str) -> str:
    plural, group = RESOURCES.get(kind, (kind.lower() + "s", ""))
    singular = kind.lower()
    return f"{singular}.{group}" if group else singular


def resolve_kind(word: str) -> str:
    word = word.split(".")[0].lower()
    if word in ALIASES:
        return ALIASES[word]
    for kind, (plural, _) in RESOURCES.items():
        if word in (kind.lower(), plural):
            return kind
    raise Failure(f'error: the server doesn\'t have a resource type "{word}"\n')


def go_template(template: str, obj: dict | None) -> str:
    """The one template shape the deploy uses: range over a map, key=value pairs."""
    if obj is None:
        return ""
    match = re.fullmatch(
        r"\{\{range \$(\w+), \$(\w+) := \.([\w.]+)\}\}(.*)\{\{end\}\}", template, re.S
    )
    if not match:
        raise Failure(f"stand-in kubectl: go-template {template!r} is not implemented\n")
    key, value, path, body = match.groups()
    node = obj
    for part in path.split("."):
        node = (node or {}).get(part)
    out = []
    for k, v in sorted((node or {}).items()):
        out.append(body.replace(f"{{{{${key}}}}}", str(k)).replace(f"{{{{${value}}}}}", str(v)))
    return "".join(out)


class Kubectl:
    def __init__(self, plane: ControlPlane, request: dict):
        self.plane, self.request = plane, request
        self.context = request.get("context", {})
        argv = list(request["argv"])
        self.namespace = "default"
        self.options: dict[str, str] = {}
        self.flags: set[str] = set()
        self.words: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg in (
                "-n",
                "--namespace",
                "-o",
                "--output",
                "-f",
                "--filename",
                "--kubeconfig",
                "--timeout",
                "--for",
                "--field-selector",
                "-l",
                "--selector",
                "--grace-period",
            ):
                self.options[arg.lstrip("-")] = argv[i + 1] if i + 1 < len(argv) else ""
                i += 2
                continue
            if arg.startswith("--") and "=" in arg:
                name, value = arg[2:].split("=", 1)
                self.options[name] = value
            elif arg.startswith("-"):
                self.flags.add(arg.lstrip("-"))
            else:
                self.words.append(arg)
            i += 1
        for short, long in (
            ("n", "namespace"),
            ("o", "output"),
            ("f", "filename"),
            ("l", "selector"),
        ):
            if short in self.options:
                self.options[long] = self.options.pop(short)
        self.namespace = self.options.get("namespace", "default")

    def authenticate(self) -> dict:
        cluster = self.plane.cluster()
        config = self.context.get("kubeconfig")
        if config is None:
            raise Failure(
                "The connection to the server localhost:8080 was refused - did you specify the "
                "right host or port?\n"
            )
        ca = base64.b64encode(cluster["ca"]["cert"].encode()).decode()
        if ca not in config:
            raise Failure("error: You must be logged in to the server (Unauthorized)\n")
        return cluster

    def all_objects(self) -> list[dict]:
        objects = [self.plane.node_object(n) for n in self.plane.state["nodes"]]
        objects += self.plane.pods()
        objects += kubeadm_config_maps(self.plane.state["cluster"])
        objects += [copy.deepcopy(o) for o in self.plane.state["objects"].values()]
        return objects

    def select(self, kind: str, names: list[str], all_namespaces: bool = False) -> list[dict]:
        found = [o for o in self.all_objects() if o["kind"] == kind]
        if kind not in CLUSTER_SCOPED and not all_namespaces:
            found = [o for o in found if o["metadata"].get("namespace") == self.namespace]
        selector = self.options.get("field-selector", "")
        if selector == "status.phase!=Succeeded":
            found = [o for o in found if o.get("status", {}).get("phase") != "Succeeded"]
        if names:
            by_name = {o["metadata"]["name"]: o for o in found}
            missing = [n for n in names if n not in by_name]
            if (
                missing
                and "ignore-not-found" not in self.options
                and "ignore-not-found" not in self.flags
            ):
                plural, group = RESOURCES.get(kind, (kind.lower() + "s", ""))
                resource = f"{plural}.{group}" if group else plural
                raise Failure(
                    f'Error from server (NotFound): {resource} "{missing[0]}" not found\n'
                )
            return [by_name[n] for n in names if n in by_name]
        return found

    def targets(self) -> list[tuple[str, list[str]]]:
        """(kind, names) from `TYPE NAME...` or `TYPE/NAME ...`."""
        words = self.words[1:]
        if words and "/" in words[0]:
            pairs: dict[str, list[str]] = {}
            for word in words:
                kind, name = word.split("/", 1)
                pairs.setdefault(resolve_kind(kind), []).append(name)
            return list(pairs.items())
        if not words:
            raise Failure("error: You must specify the type of resource to get.\n")
        return [(resolve_kind(words[0]), words[1:])]

    def get(self) -> dict:
        self.authenticate()
        (kind, names), *_ = self.targets()
        items = self.select(kind, names, "all-namespaces" in self.flags or "A" in self.flags)
        output = self.options.get("output", "")
        if output.startswith("go-template="):
            return {"stdout": "".join(go_template(output.split("=", 1)[1], i) for i in items)}
        if output == "json":
            if names and len(items) == 1:
                return {"stdout": json.dumps(items[0], indent=4) + "\n"}
            if names and not items:
                return {"stdout": ""}
            document = {
                "apiVersion": "v1",
                "items": items,
                "kind": "List",
                "metadata": {"resourceVersion": ""},
            }
            return {"stdout": json.dumps(document, indent=4) + "\n"}
        if output == "name":
            return {
                "stdout": "".join(f"{resource_name(kind)}/{i['metadata']['name']}\n" for i in items)
            }
        if not items:
            where = "" if kind in CLUSTER_SCOPED else f" in {self.namespace} namespace"
            return {"stderr": f"No resources found{where}.\n"}
        return {"stdout": self.table(kind, items)}

    def table(self, kind: str, items: list[dict]) -> str:
        if kind == "Node":
            rows = [("NAME", "STATUS", "ROLES", "AGE", "VERSION")]
            for item in items:
                ready = item["status"]["conditions"][-1]["status"] == "True"
                status = "Ready" if ready else "NotReady"
                if item["spec"].get("unschedulable"):
                    status += ",SchedulingDisabled"
                roles = [
                    k.split("/", 1)[1]
                    for k in item["metadata"]["labels"]
                    if k.startswith("node-role.kubernetes.io/")
                ]
                rows.append(
                    (
                        item["metadata"]["name"],
                        status,
                        ",".join(roles) or "<none>",
                        "1m",
                        item["status"]["nodeInfo"]["kubeletVersion"],
                    )
                )
        elif kind == "Pod":
            rows = [("NAME", "READY", "STATUS", "RESTARTS", "AGE")]
            for item in items:
                ready = "1/1" if pod_ready(item) else "0/1"
                rows.append((item["metadata"]["name"], ready, item["status"]["phase"], "0", "1m"))
        else:
            rows = [("NAME",)] + [(i["metadata"]["name"],) for i in items]
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        return "".join(
            "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n"
            for r in rows
        )

    def apply(self) -> dict:
        self.authenticate()
        path = self.options.get("filename", "")
        text = self.context.get("files", {}).get(path)
        if text is None:
            raise Failure(f'error: the path "{path}" does not exist\n')
        try:
            documents = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            raise Failure(
                f"error: error parsing {path}: error converting YAML to JSON: {exc}\n"
            ) from None
        objects, out = self.plane.state["objects"], []
        for document in documents:
            kind, meta = document.get("kind"), document.get("metadata") or {}
            if not kind or not meta.get("name"):
                raise Failure(
                    f'error: error validating "{path}": error validating data: '
                    "kind or name not set\n"
                )
            if kind not in CLUSTER_SCOPED:
                meta.setdefault("namespace", self.namespace)
                if f"Namespace//{meta['namespace']}" not in objects and meta["namespace"] not in (
                    "default",
                    "kube-system",
                ):
                    raise Failure(
                        f'Error from server (NotFound): error when creating "{path}": namespaces '
                        f'"{meta["namespace"]}" not found\n',
                        stdout="".join(out),
                    )
            key = f"{kind}/{meta.get('namespace', '')}/{meta['name']}"
            old = objects.get(key)
            selector = document.get("spec", {}).get("selector")
            if (
                old
                and kind in ("DaemonSet", "Deployment")
                and old["spec"].get("selector") != selector
            ):
                raise Failure(
                    f'The {kind} "{meta["name"]}" is invalid: spec.selector: Invalid value: '
                    f"{json.dumps(document.get('spec', {}).get('selector'))}: "
                    "field is immutable\n",
                    stdout="".join(out),
                )
            verb = "created" if old is None else ("unchanged" if old == document else "configured")
            objects[key] = document
            if old is None:
                self.plane.state.setdefault("applied_at", {})[key] = now()
            out.append(f"{resource_name(kind)}/{meta['name']} {verb}\n")
        self.plane.save()
        return {"stdout": "".join(out)}

    def delete(self) -> dict:
        self.authenticate()
        out = []
        for kind, names in self.targets():
            for obj in self.select(kind, names):
                name = obj["metadata"]["name"]
                if kind == "Node":
                    self.plane.state["nodes"].pop(name, None)
                else:
                    key = f"{kind}/{obj['metadata'].get('namespace', '')}/{name}"
                    self.plane.state["objects"].pop(key, None)
                    self.plane.state["applied_at"].pop(key, None)
                out.append(f'{resource_name(kind)} "{name}" deleted\n')
        self.plane.save()
        return {"stdout": "".join(out)}

    def cordon(self, on: bool) -> dict:
        self.authenticate()
        out = []
        for name in self.words[1:]:
            node = self.plane.state["nodes"].get(name)
            if node is None:
                raise Failure(f'Error from server (NotFound): nodes "{name}" not found\n')
            verb = "cordoned" if on else "uncordoned"
            if bool(node.get("unschedulable")) == on:
                out.append(f"node/{name} already {verb}\n")
                continue
            node["unschedulable"] = on
            node["cordoned"] = now()
            out.append(f"node/{name} {verb}\n")
        self.plane.save()
        return {"stdout": "".join(out)}

    def annotate(self) -> dict:
        """`annotate node NAME key=value [--overwrite]` and `key-` (nodes only)."""
        self.authenticate()
        words = self.words[1:]
        if words and "/" in words[0]:
            kind, name = words[0].split("/", 1)
            words = [kind, name, *words[1:]]
        if len(words) < 3:
            raise Failure("error: at least one annotation update is required\n")
        kind, names, changes = resolve_kind(words[0]), words[1:2], words[2:]
        if kind != "Node":
            raise Failure("stand-in kubectl: annotate is implemented for nodes only\n")
        out = []
        for name in names:
            node = self.plane.state["nodes"].get(name)
            if node is None:
                raise Failure(f'Error from server (NotFound): nodes "{name}" not found\n')
            annotations = node.setdefault("annotations", {})
            for change in changes:
                if change.endswith("-"):
                    annotations.pop(change[:-1], None)
                    continue
                key, _, value = change.partition("=")
                if key in annotations and "overwrite" not in self.flags:
                    raise Failure(
                        f"error: --overwrite is false but found the following declared "
                        f"annotation(s): '{key}' already has a value ({annotations[key]})\n"
                    )
                annotations[key] = value
            out.append(f"node/{name} annotated\n")
        self.plane.save()
        return {"stdout": "".join(out)}

    def disruption_blocked(self, pod: dict, everything: list[dict]) -> bool:
        """Whether evicting `pod` would violate a PodDisruptionBudget of its namespace (one
        that selects it with matchLabels): its healthy pods minus minAvailable, or
        maxUnavailable minus the unhealthy ones, leaves no disruption allowed."""
        namespace, labels = pod["metadata"]["namespace"], pod["metadata"].get("labels") or {}
        for budget in self.plane._objects("PodDisruptionBudget"):
            if budget["metadata"].get("namespace") != namespace:
                continue
            wanted = (budget.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
            if not wanted or any(labels.get(k) != v for k, v in wanted.items()):
                continue
            selected = [
                p
                for p in everything
                if p["metadata"]["namespace"] == namespace
                and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
            ]
            healthy = sum(1 for p in selected if pod_ready(p))
            spec = budget["spec"]
            if "minAvailable" in spec:
                allowed = healthy - int(spec["minAvailable"])
            else:
                allowed = int(spec.get("maxUnavailable", 1)) - (len(selected) - healthy)
            if allowed <= 0:
                return True
        return False

    def drain(self) -> dict:
        """kubectl drain: DaemonSet pods refused without --ignore-daemonsets; cordon; every
        other pod on the node evicted unless a PodDisruptionBudget forbids it, retried until
        --timeout (kubectl's messages: pkg/drain/drain.go). Stand-in simplification: pods
        are derived from the state, so once the node is cordoned its workload pods show on
        other nodes even while a budget blocks their eviction."""
        self.authenticate()
        name = self.words[1] if len(self.words) > 1 else ""
        node = self.plane.state["nodes"].get(name)
        if node is None:
            raise Failure(f'Error from server (NotFound): nodes "{name}" not found\n')
        everything = self.plane.pods()
        on_node = [p for p in everything if p["spec"].get("nodeName") == name]
        daemon = [
            p
            for p in on_node
            if p["metadata"]["ownerReferences"][0]["kind"] in ("DaemonSet", "Node")
        ]
        if daemon and "ignore-daemonsets" not in self.flags:
            listed = ", ".join(
                f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemon
            )
            raise Failure(
                f'error: unable to drain node "{name}" due to error: cannot delete '
                f"DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {listed}, "
                "continuing command...\n"
            )
        out = [
            f"node/{name} cordoned\n"
            if not node.get("unschedulable")
            else f"node/{name} already cordoned\n"
        ]
        node["unschedulable"], node["cordoned"] = True, now()
        self.plane.save()
        evicted = [p for p in on_node if p not in daemon]
        if daemon:
            listed = ", ".join(
                f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemon
            )
            out.append(f"Warning: ignoring DaemonSet-managed Pods: {listed}\n")
        out += [
            f"evicting pod {p['metadata']['namespace']}/{p['metadata']['name']}\n" for p in evicted
        ]
        timeout = parse_duration(self.options.get("timeout", "0s"))
        deadline = now() + timeout
        errors: list[str] = []
        while True:
            blocked = [p for p in evicted if self.disruption_blocked(p, everything)]
            if not blocked:
                break
            errors += [
                f'error when evicting pods/"{p["metadata"]["name"]}" -n '
                f'"{p["metadata"]["namespace"]}" (will retry after 5s): Cannot evict pod as it '
                "would violate the pod's disruption budget.\n"
                for p in blocked
            ]
            if now() >= deadline:
                reached = [
                    f'error when evicting pods/"{p["metadata"]["name"]}" -n '
                    f'"{p["metadata"]["namespace"]}": global timeout reached: {int(timeout)}s'
                    for p in blocked
                ]
                raise Failure(
                    "".join(dict.fromkeys(errors))
                    + f'error: unable to drain node "{name}" due to error: '
                    f"[{', '.join(reached)}], continuing command...\n"
                    f"There are pending nodes to be drained:\n {name}\n"
                    + "".join(f"{r}\n" for r in reached),
                    stdout="".join(out),
                )
            self.plane.changed.wait(min(max(deadline - now(), 0.01), 1.0))
        out += [f"pod/{p['metadata']['name']} evicted\n" for p in evicted]
        out.append(f"node/{name} drained\n")
        return {"stdout": "".join(out)}

    def wait(self) -> dict:
        self.authenticate()
        condition = self.options.get("for", "")
        if not condition.startswith(("condition=", "jsonpath=")):
            raise Failure(f"stand-in kubectl: wait --for={condition} is not implemented\n")
        if condition.startswith("condition="):
            condition = condition.split("=", 1)[1]
        timeout = parse_duration(self.options.get("timeout", "30s"))
        deadline = now() + timeout
        targets = self.targets()
        with self.plane.lock:
            while True:
                objects = [o for kind, names in targets for o in self.select(kind, names)]
                if not objects and "all" in self.flags:
                    return {"stderr": "error: no matching resources found\n", "exit": 1}
                pending = [o for o in objects if not self.plane.object_ready(o, condition)]
                if not pending:
                    return {
                        "stdout": "".join(
                            f"{resource_name(o['kind'])}/{o['metadata']['name']} condition met\n"
                            for o in objects
                        )
                    }
                left = deadline - now()
                if left <= 0:
                    first = pending[0]
                    plural = RESOURCES.get(first["kind"], (first["kind"].lower() + "s", ""))[0]
                    raise Failure(
                        "error: timed out waiting for the condition on "
                        f"{plural}/{first['metadata']['name']}\n"
                    )
                self.plane.changed.wait(min(left, 1.0))

    def rollout_restart(self) -> dict:
        """`kubectl rollout restart daemonset/NAME`: the pods are recreated (recorded); kube-proxy,
        a DaemonSet kubeadm made, included."""
        self.words = self.words[1:]
        with self.plane.lock:  # `rollout` runs unlocked (its `status` waits)
            return self._restart()

    def _restart(self) -> dict:
        out = []
        for kind, names in self.targets():
            for name in names:
                if kind != "DaemonSet" or (name != "kube-proxy" and not self.select(kind, [name])):
                    raise Failure(
                        f'Error from server (NotFound): daemonsets.apps "{name}" not found\n'
                    )
                self.plane.state.setdefault("restarted", {})[f"{self.namespace}/{name}"] = now()
                out.append(f"daemonset.apps/{name} restarted\n")
        self.plane.save()
        return {"stdout": "".join(out)}

    def rollout(self) -> dict:
        self.authenticate()
        if self.words[1:2] == ["restart"]:
            return self.rollout_restart()
        if self.words[1:2] != ["status"]:
            raise Failure("stand-in kubectl: only `rollout status|restart` is implemented\n")
        self.words = self.words[1:]
        (kind, names), *_ = self.targets()
        timeout = parse_duration(self.options.get("timeout", "0s")) or 600
        deadline = now() + timeout
        with self.plane.lock:
            while True:
                (obj,) = self.select(kind, names[:1])
                pods = self.plane.owned_pods(obj)
                ready = [p for p in pods if pod_ready(p)]
                if pods and len(ready) == len(pods):
                    word = "daemon set" if kind == "DaemonSet" else "deployment"
                    return {"stdout": f'{word} "{names[0]}" successfully rolled out\n'}
                if now() >= deadline:
                    raise Failure("error: timed out waiting for the condition\n")
                self.plane.changed.wait(1.0)

    def run(self) -> dict:
        verb = self.words[0] if self.words else ""
        if verb == "version":
            return {"stdout": f"Client Version: v{self.request.get('version', '')}\n"}
        handlers = {
            "get": self.get,
            "apply": self.apply,
            "delete": self.delete,
            "wait": self.wait,
            "rollout": self.rollout,
            "drain": self.drain,
            "cordon": lambda: self.cordon(True),
            "uncordon": lambda: self.cordon(False),
            "annotate": self.annotate,
        }
        if verb not in handlers:
            raise Failure(f"stand-in kubectl: {verb!r} is not implemented\n")
        return handlers[verb]()


# --- HTTP -------------------------------------------------------------------------------


def answer(plane: ControlPlane, tool: str, request: dict) -> dict:
    """The stand-in's answer to one invocation: stdout, stderr, exit, files to write,
    services to restart."""
    try:
        if tool == "kubeadm":
            with plane.lock:
                result = Kubeadm(plane, request.get("version", ""), request).run()
        elif tool == "kubectl":
            command = Kubectl(plane, request)
            if command.words[:1] in (["wait"], ["rollout"]):
                result = command.run()  # takes the lock while it waits
            else:
                with plane.lock:
                    result = command.run()
        elif tool == "heartbeat":
            result = plane.heartbeat(request)
        else:
            raise Failure(f"stand-in control plane: no tool {tool!r}\n")
    except Failure as failure:
        return {"stdout": failure.stdout, "stderr": failure.stderr, "exit": failure.status}
    result.setdefault("exit", 0)
    return result


class Handler(BaseHTTPRequestHandler):
    plane: ControlPlane

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/v1/state":
            with self.plane.lock:
                state = copy.deepcopy(self.plane.state)
                state["pods"] = self.plane.pods()
                state["ready"] = {n: self.plane.node_ready(n) for n in state["nodes"]}
            if state["cluster"]:
                state["cluster"]["ca"] = {"hash": state["cluster"]["ca"]["hash"]}  # no key
            self._send(200, state)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/v1/reset":
            self.plane.reset()
            self._send(200, {})
            return
        tool = self.path.removeprefix("/v1/")
        self._send(200, answer(self.plane, tool, request))

    def log_message(self, format, *args):  # noqa: A002
        pass


def serve(address: str, port: int, state: Path | None, startup: float) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"plane": ControlPlane(state, startup)})
    return ThreadingHTTPServer((address, port), handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="address:port")
    parser.add_argument("--state", type=Path, required=True, help="JSON file of the state")
    parser.add_argument(
        "--startup-seconds",
        type=float,
        default=3.0,
        help="how long pods take to start, nodes to turn Ready (default 3)",
    )
    args = parser.parse_args()
    address, port = args.listen.rsplit(":", 1)
    server = serve(address, int(port), args.state, args.startup_seconds)
    print(f"stand-in control plane on {args.listen}, state {args.state}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
