"""The lab's stand-in control plane (tests/lab/stand_in_control_plane.py, a test double),
off the lab: fed the files the deploy renders and the arguments it passes, it answers in
the formats the deploy parses (join command, certificate key, `kubectl get -o json`), and
fails joins the way kubeadm does."""

from __future__ import annotations

import json
import re

import pytest

from deploys.addons import flannel, ready
from deploys.context import NodeContext
from deploys.kubernetes import bootstrap, kubeadm_config
from deploys.settings import parse_cluster
from tests.lab import stand_in_control_plane as cp

EXISTS_NONE = {
    path: False
    for path in (
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
    )
}


def cluster_doc(control_planes: int = 1, workers: int = 2, endpoint: str = "") -> dict:
    hosts = [
        {"name": f"cp{i}", "address": f"10.0.0.{10 + i}", "roles": ["control_plane"]}
        for i in range(1, control_planes + 1)
    ] + [
        {"name": f"w{i}", "address": f"10.0.0.{20 + i}", "roles": ["worker"]}
        for i in range(1, workers + 1)
    ]
    settings = {"control_plane_endpoint": endpoint} if endpoint else {}
    return {"hosts": hosts, "settings": settings}


def contexts(doc: dict) -> dict[str, NodeContext]:
    cluster = parse_cluster(doc)
    return {n.name: NodeContext.from_cluster(cluster, n) for n in cluster.nodes}


def call(
    plane,
    tool,
    node,
    argv,
    files=None,
    exists=None,
    kubeconfig=None,
    version="1.35.9",
    kubelet_running=False,
):
    context = {
        "kubelet_port_in_use": kubelet_running,
        "files": files or {},
        "exists": {**EXISTS_NONE, **(exists or {})},
        "kubelet_version": f"v{version}",
        "runtime_version": "containerd://1.6.20",
    }
    if kubeconfig is not None:
        context["kubeconfig"] = kubeconfig
    request = {"argv": argv, "node": node, "version": version, "context": context}
    return cp.answer(plane, tool, request)


class Cluster:
    """A stand-in cluster driven like the deploy drives it."""

    def __init__(self, doc: dict):
        self.plane = cp.ControlPlane()
        self.ctx = contexts(doc)
        self.written: dict[str, dict] = {}

    def init(self, name: str = "cp1", version: str = "1.35.9") -> dict:
        text = kubeadm_config.init_file(self.ctx[name])
        argv = ["init", "--config", kubeadm_config.INIT_CONFIG, "--skip-token-print"]
        files = {kubeadm_config.INIT_CONFIG: text}
        answer = call(self.plane, "kubeadm", name, argv, files, version=version)
        self.written[name] = answer.get("writes", {})
        return answer

    @property
    def admin(self) -> str:
        return self.written["cp1"]["/etc/kubernetes/admin.conf"][1]

    def credentials(self, control_plane: bool) -> kubeadm_config.JoinCredentials:
        admin = {"/etc/kubernetes/admin.conf": True}
        token = call(
            self.plane,
            "kubeadm",
            "cp1",
            ["token", "create", "--ttl", "1h0m0s", "--print-join-command"],
            exists=admin,
        )
        text = token["stdout"]
        if control_plane:
            upload = call(
                self.plane,
                "kubeadm",
                "cp1",
                ["init", "phase", "upload-certs", "--upload-certs"],
                exists=admin,
            )
            text += upload["stdout"]
        return bootstrap.parse_credentials(text, control_plane)

    def join(
        self, name: str, credentials=None, exists=None, kubelet_running=False, version="1.35.9"
    ) -> dict:
        ctx = self.ctx[name]
        credentials = credentials or self.credentials(ctx.node.is_control_plane)
        text = kubeadm_config.join_file(ctx, credentials)
        answer = call(
            self.plane,
            "kubeadm",
            name,
            ["join", "--config", kubeadm_config.JOIN_CONFIG],
            {kubeadm_config.JOIN_CONFIG: text},
            exists,
            kubelet_running=kubelet_running,
            version=version,
        )
        self.written[name] = answer.get("writes", {})
        return answer

    def kubectl(self, *argv, files=None) -> dict:
        argv = ["--kubeconfig", "/etc/kubernetes/admin.conf", *argv]
        return call(self.plane, "kubectl", "cp1", argv, files, kubeconfig=self.admin)

    def status(self):
        outputs = [self.kubectl("get", "nodes", "-o", "json")["stdout"]]
        outputs += [
            self.kubectl("-n", ns, "get", "pods", "-o", "json")["stdout"] for ns in ready.NAMESPACES
        ]
        return ready.ClusterStatus().process("\n".join(outputs).splitlines())

    def apply_flannel(self) -> dict:
        text = flannel.manifest(self.ctx["cp1"])
        return self.kubectl("apply", "-f", flannel.MANIFEST, files={flannel.MANIFEST: text})


@pytest.fixture
def built() -> Cluster:
    cluster = Cluster(cluster_doc())
    assert cluster.init()["exit"] == 0
    for name in ("w1", "w2"):
        assert cluster.join(name)["exit"] == 0
    return cluster


def test_init_writes_what_later_steps_read(built):
    files = built.written["cp1"]
    for path in (
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/var/lib/kubelet/config.yaml",
    ):
        assert path in files
    assert files["/etc/kubernetes/admin.conf"][0] == "600"
    assert "server: https://10.0.0.11:6443" in built.admin


def test_init_honours_its_configuration():
    doc = cluster_doc(workers=1)
    doc["settings"].update(image_repository="mirror.example/k8s", pod_subnet="10.50.0.0/16")
    cluster = Cluster(doc)
    cluster.init()
    manifest = cluster.written["cp1"]["/etc/kubernetes/manifests/kube-apiserver.yaml"][1]
    assert "mirror.example/k8s/kube-apiserver:v1.35.9" in manifest
    assert cluster.plane.state["nodes"]["cp1"]["pod_cidr"].startswith("10.50.")
    assert "failSwapOn: true" in cluster.written["cp1"]["/var/lib/kubelet/config.yaml"][1]


def test_ca_hash_in_the_join_command_is_the_ca_public_key_hash(built):
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = built.written["cp1"]["/etc/kubernetes/pki/ca.crt"][1]
    spki = (
        x509.load_pem_x509_certificate(pem.encode())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert built.credentials(False).ca_cert_hash == f"sha256:{hashlib.sha256(spki).hexdigest()}"


def test_nodes_are_not_ready_until_the_pod_network_is_applied(built):
    assert "node cp1 is not Ready" in ready.problems(built.status(), ["cp1", "w1", "w2"])
    applied = built.apply_flannel()
    assert applied["exit"] == 0 and "daemonset.apps/kube-flannel-ds created" in applied["stdout"]
    assert ready.problems(built.status(), ["cp1", "w1", "w2"]) == []


def test_a_second_apply_is_unchanged(built):
    built.apply_flannel()
    lines = built.apply_flannel()["stdout"].splitlines()
    assert lines and all(line.endswith(" unchanged") for line in lines)


def test_a_stale_heartbeat_makes_a_node_not_ready(built):
    built.apply_flannel()
    built.plane.state["nodes"]["w2"]["heartbeat"] -= cp.HEARTBEAT_GRACE + 1
    problems = ready.problems(built.status(), ["cp1", "w1", "w2"])
    assert "node w2 is not Ready" in problems
    assert not [p for p in problems if "cp1" in p or "w1" in p]


def test_flannel_selector_check_reads_the_live_selector(built):
    text = flannel.manifest(built.ctx["cp1"])
    built.apply_flannel()
    template = flannel._LIVE_SELECTOR
    got = built.kubectl(
        "--namespace",
        "kube-flannel",
        "get",
        "daemonset",
        "kube-flannel-ds",
        "--ignore-not-found",
        "--output",
        f"go-template={template}",
    )
    (daemonset,) = [
        d for d in __import__("yaml").safe_load_all(text) if d and d["kind"] == "DaemonSet"
    ]
    assert got["stdout"] == flannel.selector_labels(daemonset["spec"]["selector"]["matchLabels"])


def test_waits_answer_condition_met(built):
    built.apply_flannel()
    waited = built.kubectl("wait", "--for=condition=Ready", "node/cp1", "node/w1", "--timeout=5s")
    assert waited["stdout"] == "node/cp1 condition met\nnode/w1 condition met\n"
    rollout = built.kubectl(
        "-n", "kube-flannel", "rollout", "status", "daemonset/kube-flannel-ds", "--timeout=5s"
    )
    assert rollout["stdout"] == 'daemon set "kube-flannel-ds" successfully rolled out\n'


def test_wait_times_out_like_kubectl(built):
    waited = built.kubectl("wait", "--for=condition=Ready", "node/w1", "--timeout=1s")
    assert waited["exit"] == 1
    assert waited["stderr"] == "error: timed out waiting for the condition on nodes/w1\n"


@pytest.mark.parametrize("field", ["token", "ca_cert_hash"])
def test_a_join_with_a_wrong_secret_fails_like_kubeadm(field):
    cluster = Cluster(cluster_doc(workers=1))
    cluster.init()
    good = cluster.credentials(False)
    wrong = {"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:" + "0" * 64}
    answer = cluster.join(
        "w1", credentials=kubeadm_config.JoinCredentials(**{**good.__dict__, field: wrong[field]})
    )
    assert answer["exit"] == 1 and not answer.get("writes")
    expected = {
        "token": "could not find a JWS signature in the cluster-info ConfigMap for token ID "
        '"abcdef"',
        "ca_cert_hash": "none of the public keys",
    }[field]
    assert "couldn't validate the identity of the API Server" in answer["stderr"]
    assert expected in answer["stderr"]
    assert "w1" not in cluster.plane.state["nodes"]


def test_a_joined_node_cannot_join_again(built):
    answer = built.join("w1", exists={"/etc/kubernetes/kubelet.conf": True})
    assert answer["exit"] == 1
    assert "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]" in answer["stderr"]


def test_a_worker_left_with_an_earlier_joins_state_rejoins_after_reset_and_node_delete(built):
    """kubelet.conf removed: kubeadm join refuses the CA certificate and the running kubelet
    (as the real one does); `kubeadm reset -f` stops the kubelet and removes what the join
    wrote; the Node, still Ready, has to be deleted before the join passes."""
    leftovers = {"/etc/kubernetes/pki/ca.crt": True}
    refused = built.join("w1", exists=leftovers, kubelet_running=True)
    assert refused["exit"] == 1
    assert "[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]" in refused["stderr"]
    assert "[ERROR Port-10250]: Port 10250 is in use" in refused["stderr"]
    reset = call(built.plane, "kubeadm", "w1", ["reset", "-f"])
    assert reset["stop"] == ["kubelet"]
    for path in ("/etc/kubernetes/pki/", "/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/"):
        assert path in reset["removes"]
    built.apply_flannel()
    still_ready = built.join("w1")
    assert still_ready["exit"] == 1
    assert 'a Node with name "w1" and status "Ready" already exists' in still_ready["stderr"]
    deleted = built.kubectl("delete", "node", "w1", "--ignore-not-found")
    assert deleted["stdout"] == 'node "w1" deleted\n'
    assert built.kubectl("delete", "node", "w1", "--ignore-not-found")["stdout"] == ""
    assert built.join("w1")["exit"] == 0
    assert "w1" in built.plane.state["nodes"]


def test_control_planes_join_with_an_uploaded_certificate_key():
    cluster = Cluster(cluster_doc(control_planes=3, workers=1, endpoint="10.0.0.100:6443"))
    cluster.init()
    for name in ("cp2", "cp3", "w1"):
        assert cluster.join(name)["exit"] == 0, name
    assert "/etc/kubernetes/admin.conf" in cluster.written["cp2"]
    roles = {n: v["roles"] for n, v in cluster.plane.state["nodes"].items()}
    assert roles == {
        "cp1": ["control-plane"],
        "cp2": ["control-plane"],
        "cp3": ["control-plane"],
        "w1": [],
    }


def test_a_control_plane_join_with_an_unknown_certificate_key_fails():
    cluster = Cluster(cluster_doc(control_planes=3, workers=0, endpoint="10.0.0.100:6443"))
    cluster.init()
    good = cluster.credentials(True)
    bad = kubeadm_config.JoinCredentials(good.token, good.ca_cert_hash, "f" * 64)
    answer = cluster.join("cp2", credentials=bad)
    assert answer["exit"] == 1 and 'Secret "kubeadm-certs" was not found' in answer["stderr"]


def test_a_kubeconfig_of_another_cluster_is_unauthorized(built):
    other = Cluster(cluster_doc(workers=0))
    other.init()
    argv = ["--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes", "-o", "json"]
    answer = call(built.plane, "kubectl", "cp1", argv, kubeconfig=other.admin)
    assert answer["exit"] == 1 and "Unauthorized" in answer["stderr"]


def test_before_init_kubectl_cannot_connect():
    plane = cp.ControlPlane()
    answer = call(plane, "kubectl", "cp1", ["get", "nodes", "-o", "json"], kubeconfig="")
    assert answer["exit"] == 1 and "was refused" in answer["stderr"]
    assert ready.ClusterStatus().process([]) is None


def test_cordon_drain_and_delete_answer_like_kubectl(built):
    built.apply_flannel()
    assert built.kubectl("cordon", "w1")["stdout"] == "node/w1 cordoned\n"
    assert built.kubectl("cordon", "w1")["stdout"] == "node/w1 already cordoned\n"
    refused = built.kubectl("drain", "w2")
    assert refused["exit"] == 1 and "--ignore-daemonsets" in refused["stderr"]
    drained = built.kubectl("drain", "w2", "--ignore-daemonsets", "--delete-emptydir-data")
    assert drained["stdout"].endswith("node/w2 drained\n")
    assert built.kubectl("delete", "node", "w2")["stdout"] == 'node "w2" deleted\n'
    nodes = json.loads(built.kubectl("get", "nodes", "-o", "json")["stdout"])
    assert [n["metadata"]["name"] for n in nodes["items"]] == ["cp1", "w1"]
    assert nodes["items"][1]["spec"]["unschedulable"] is True


def test_state_survives_a_restart_of_the_service(tmp_path):
    path = tmp_path / "state.json"
    cluster = Cluster(cluster_doc(workers=0))
    cluster.plane = cp.ControlPlane(path)
    cluster.init()
    assert cp.ControlPlane(path).state["nodes"].keys() == {"cp1"}
    assert path.stat().st_mode & 0o777 == 0o600


def test_pods_take_time_to_start_and_nodes_to_turn_ready(built, monkeypatch):
    built.plane.startup = 3.0
    built.apply_flannel()
    assert "node w1 is not Ready" in ready.problems(built.status(), ["cp1", "w1", "w2"])
    later = cp.now() + 3.5
    monkeypatch.setattr(cp, "now", lambda: later)
    for node in built.plane.state["nodes"].values():
        node["heartbeat"] = later
    assert ready.problems(built.status(), ["cp1", "w1", "w2"]) == []


PDB = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"""
WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
"""


def test_a_disruption_budget_blocks_a_drain_until_its_timeout(built):
    built.apply_flannel()
    built.kubectl("apply", "-f", "web.yaml", files={"web.yaml": WEB})
    built.kubectl("apply", "-f", "pdb.yaml", files={"pdb.yaml": PDB})
    on_w1 = [
        p["metadata"]["name"]
        for p in json.loads(built.kubectl("get", "pods", "-o", "json")["stdout"])["items"]
        if p["spec"].get("nodeName") == "w1" and p["metadata"]["name"].startswith("web-")
    ]
    assert on_w1
    blocked = built.kubectl("drain", "w1", "--ignore-daemonsets", "--timeout=0s")
    assert blocked["exit"] == 1
    assert f'error when evicting pods/"{on_w1[0]}" -n "default"' in blocked["stderr"]
    assert "global timeout reached" in blocked["stderr"]
    assert "disruption budget" in blocked["stderr"]
    assert built.plane.state["nodes"]["w1"]["unschedulable"] is True  # it stays cordoned
    built.kubectl("delete", "pdb", "web")
    assert built.kubectl("drain", "w1", "--ignore-daemonsets")["stdout"].endswith("drained\n")


def test_annotations_and_a_wait_for_the_kubelet_version(built):
    built.apply_flannel()
    assert built.kubectl("annotate", "node", "w1", "a/b=x")["stdout"] == "node/w1 annotated\n"
    again = built.kubectl("annotate", "node", "w1", "a/b=y")
    assert again["exit"] == 1 and "--overwrite" in again["stderr"]
    built.kubectl("annotate", "node/w1", "a/b=y", "--overwrite")
    node = json.loads(built.kubectl("get", "node", "w1", "-o", "json")["stdout"])
    assert node["metadata"]["annotations"]["a/b"] == "y"
    built.kubectl("annotate", "node", "w1", "a/b-")
    node = json.loads(built.kubectl("get", "node", "w1", "-o", "json")["stdout"])
    assert "a/b" not in node["metadata"]["annotations"]
    path = "--for=jsonpath={.status.nodeInfo.kubeletVersion}"
    met = built.kubectl("wait", f"{path}=v1.35.9", "node/w1", "--timeout=1s")
    assert met["stdout"] == "node/w1 condition met\n"
    other = built.kubectl("wait", f"{path}=v1.36.0", "node/w1", "--timeout=0s")
    assert other["exit"] == 1 and "timed out" in other["stderr"]


def test_kubeadm_upgrade_goes_one_minor_at_a_time_like_kubeadm():
    from deploys.kubernetes.upgrade import ControlPlaneVersion

    doc = cluster_doc(workers=1)
    doc["settings"]["kubernetes_version"] = "1.33.7"
    cluster = Cluster(doc)
    assert cluster.init(version="1.33.7")["exit"] == 0
    assert cluster.join("w1", version="1.33.7")["exit"] == 0
    admin = {"/etc/kubernetes/admin.conf": True}

    def kubeadm(node, *words, version):
        return call(cluster.plane, "kubeadm", node, list(words), exists=admin, version=version)

    skipped = kubeadm("cp1", "upgrade", "plan", "v1.35.9", version="1.35.9")
    assert skipped["exit"] == 1
    assert "kubeadm can upgrade only 1 minor version at a time" in skipped["stderr"]
    ahead = kubeadm("cp1", "upgrade", "apply", "-y", "v1.34.3", version="1.33.7")
    assert "higher than the kubeadm minor release (34 > 33)" in ahead["stderr"]
    planned = kubeadm("cp1", "upgrade", "plan", "v1.34.3", version="1.34.3")
    assert "kubeadm upgrade apply v1.34.3" in planned["stdout"]
    applied = kubeadm("cp1", "upgrade", "apply", "-y", "v1.34.3", version="1.34.3")
    assert 'SUCCESS! Your cluster was upgraded to "v1.34.3"' in applied["stdout"]
    _, manifest = applied["writes"]["/etc/kubernetes/manifests/kube-apiserver.yaml"]
    grep = re.findall(r"kube-apiserver:v[0-9][0-9.]*", manifest)  # the fact's command
    assert ControlPlaneVersion().process(grep[:1]) == "1.34.3"
    assert cluster.plane.state["cluster"]["version"] == "v1.34.3"
    old = kubeadm("w1", "upgrade", "node", version="1.33.7")
    assert old["exit"] == 1 and "upgrade kubeadm first" in old["stderr"]
    node = kubeadm("w1", "upgrade", "node", version="1.34.3")
    assert node["exit"] == 0 and "/var/lib/kubelet/config.yaml" in node["writes"]
    assert not any("manifests" in path for path in node["writes"])  # a worker
