"""The lab's stand-in control plane (a test double) in the cluster's later life: the
ConfigMaps kubeadm keeps, read as the deploy reads them (reconfigure.LiveConfiguration),
the phases the reconfiguration and the removal call, in kubeadm's output formats."""

from __future__ import annotations

import datetime
import json

import yaml

from deploys.kubernetes import certificates, kubeadm_config, reconfigure
from tests.unit.test_stand_in_control_plane import Cluster, call, cluster_doc, contexts

ADMIN = {"/etc/kubernetes/admin.conf": True}
INIT = kubeadm_config.INIT_CONFIG


def built(doc=None) -> Cluster:
    cluster = Cluster(doc or cluster_doc(workers=1))
    assert cluster.init()["exit"] == 0
    return cluster


def live(cluster: Cluster) -> dict:
    """The LiveConfiguration the deploy would read on cp1 of this stand-in cluster."""
    maps = cluster.kubectl(
        "-n", "kube-system", "get", "configmap", *reconfigure.CONFIG_MAPS,
        "--ignore-not-found", "-o", "json",
    )["stdout"]  # fmt: skip
    return reconfigure.parse_live(f"=== configmaps\n{maps}\n=== network\n")


def kubeadm(cluster: Cluster, node: str, *argv, files=None, exists=None) -> dict:
    return call(cluster.plane, "kubeadm", node, list(argv), files, {**ADMIN, **(exists or {})})


def test_the_kubeadm_configmaps_are_what_init_was_given():
    cluster = built()
    running = live(cluster)["running"]
    ctx = cluster.ctx["cp1"]
    assert running["ClusterConfiguration"] == kubeadm_config.cluster_configuration(ctx)
    assert running["KubeProxyConfiguration"]["mode"] == "iptables"
    assert reconfigure.cluster_changes(running, ctx) == []
    assert reconfigure.refusals(running, ctx) == []


def test_uploads_change_the_configmaps_the_deploy_reads():
    cluster = built()
    doc = cluster_doc(workers=1)
    doc["settings"].update(cert_sans=["api.example.com"], image_gc_high_threshold=70,
                           image_gc_low_threshold=60, kube_proxy_mode="nftables")  # fmt: skip
    ctx = contexts(doc)["cp1"]
    running = live(cluster)["running"]
    assert reconfigure.cluster_changes(running, ctx) == [
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    ]
    text = {INIT: kubeadm_config.init_file(ctx)}
    for change in ("kubeadm", "kubelet"):
        answer = kubeadm(cluster, "cp1", "init", "phase", "upload-config", change, "--config",
                         INIT, files=text)  # fmt: skip
        assert answer["exit"] == 0, answer
    answer = kubeadm(cluster, "cp1", "init", "phase", "addon", "kube-proxy", "--config", INIT,
                     files=text)  # fmt: skip
    assert answer["stdout"] == "[addons] Applied essential addon: kube-proxy\n"
    assert reconfigure.cluster_changes(live(cluster)["running"], ctx) == []
    restarted = cluster.kubectl("-n", "kube-system", "rollout", "restart", "daemonset/kube-proxy")
    assert restarted["stdout"] == "daemonset.apps/kube-proxy restarted\n"


def test_the_phases_regenerate_certificate_and_manifests():
    cluster = built()
    doc = cluster_doc(workers=1)
    doc["settings"].update(cert_sans=["api.example.com"],
                           scheduler={"percentage_of_nodes_to_score": 50})  # fmt: skip
    ctx = contexts(doc)["cp1"]
    files = {"/next": reconfigure.applied_file(ctx)}
    certs = kubeadm(cluster, "cp1", "init", "phase", "certs", "apiserver", "--config", "/next",
                    files=files)  # fmt: skip
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(
        certs["writes"]["/etc/kubernetes/pki/apiserver.crt"][1].encode()
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "api.example.com" in names.get_values_for_type(x509.DNSName)
    kept = kubeadm(cluster, "cp1", "init", "phase", "certs", "apiserver", "--config", "/next",
                   files=files, exists={"/etc/kubernetes/pki/apiserver.crt": True})  # fmt: skip
    assert "Using existing apiserver certificate" in kept["stdout"] and not kept.get("writes")
    manifests = kubeadm(cluster, "cp1", "init", "phase", "control-plane", "all", "--config",
                        "/next", files=files)["writes"]  # fmt: skip
    scheduler = yaml.safe_load(manifests["/etc/kubernetes/manifests/kube-scheduler.yaml"][1])
    (container,) = scheduler["spec"]["containers"]
    assert "--config=/etc/kubernetes/kube-scheduler-config.yaml" in container["command"]
    assert scheduler["spec"]["volumes"][0]["name"].startswith("scheduler-config-")


def test_a_node_fetches_the_kubelet_configuration():
    cluster = built()
    answer = kubeadm(cluster, "w1", "upgrade", "node", "phase", "kubelet-config",
                     exists={"/etc/kubernetes/kubelet.conf": True})  # fmt: skip
    written = answer["writes"]["/var/lib/kubelet/config.yaml"][1]
    assert yaml.safe_load(written)["imageGCHighThresholdPercent"] == 85
    refused = kubeadm(cluster, "w1", "upgrade", "node", "phase", "kubelet-config")
    assert refused["exit"] == 1 and "kubelet.conf: no such file" in refused["stderr"]


def test_an_etcd_member_is_removed_once_and_never_the_last():
    cluster = built(cluster_doc(control_planes=2, workers=0, endpoint="10.0.0.10:6443"))
    assert cluster.join("cp2")["exit"] == 0
    assert cluster.plane.state["cluster"]["etcd_members"] == ["cp1", "cp2"]
    removed = kubeadm(cluster, "cp2", "reset", "phase", "remove-etcd-member")
    assert removed["stdout"] == "[reset] Removing member cp2 from the etcd cluster\n"
    again = kubeadm(cluster, "cp2", "reset", "phase", "remove-etcd-member")
    assert "No etcd member found" in again["stdout"]
    last = kubeadm(cluster, "cp1", "reset", "phase", "remove-etcd-member")
    assert last["exit"] == 1 and "only member" in last["stderr"]
    assert cluster.plane.state["nodes"].keys() == {"cp1", "cp2"}  # not a full reset
    json.dumps(cluster.plane.state)  # the state stays serialisable


def test_certificates_expire_a_year_after_they_were_issued_and_renew():
    cluster = built()
    text = kubeadm(cluster, "cp1", "certs", "check-expiration")["stdout"]
    found = certificates.parse_expiry(text.splitlines())
    assert len(found) == 11 and "ca" not in found
    name, moment = certificates.earliest(found)
    days = (moment - datetime.datetime.now(datetime.UTC)).days
    assert 363 <= days <= 365
    renewed = kubeadm(cluster, "cp1", "certs", "renew", "all")["stdout"]
    assert "Done renewing certificates." in renewed
    refused = kubeadm(cluster, "w1", "certs", "check-expiration")
    assert refused["exit"] == 1  # a worker has no control-plane certificates
