"""Cluster-level settings reaching a running cluster (deploys/kubernetes/reconfigure.py),
against recorded hosts: the running cluster is the LiveConfiguration fact as a run of the
cluster file left it (tests/deploy/live.py), changed where a test says the cluster runs
something else. kubeadm and the API server cannot run here: what they answer is the fact's
recorded value, the commands are checked as the deploy sends them."""

from __future__ import annotations

import json

import pytest
import yaml
from pyinfra.api import OperationError

from deploys import kubernetes
from deploys.kubernetes import reconfigure
from tests.deploy import harness, live
from tests.deploy.test_kubernetes import RESPONSES

RECONFIGURE_CP = "kubeadm: reconfigure control plane"
KUBELET = "kubernetes: roll node"  # deploys/kubernetes/drain.py
UPLOAD_CLUSTER = "kubeadm: upload cluster configuration"
UPLOAD_KUBELET = "kubeadm: upload kubelet configuration"
KUBE_PROXY = "kube-proxy: update configuration and restart"
HA = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {"name": "cp2", "address": "10.0.0.12", "roles": ["control_plane"]},
        {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
    ],
    "settings": {"control_plane_endpoint": "10.0.0.10:6443"},
}


def cluster_with(base=None, **settings) -> dict:
    base = base or harness.DEFAULT_CLUSTER
    return {**base, "settings": {**base["settings"], **settings}}


def run(cluster, host_facts, os="ubuntu-24.04", responses=()) -> harness.Run:
    return harness.run(
        kubernetes.converge,
        os=os,
        cluster=cluster,
        converged=True,
        host_facts=host_facts,
        responses=[*responses, *RESPONSES],
    )


def changed(result: harness.Run) -> dict[str, list[str]]:
    return {host: result.changed(host) for host in result.ops}


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("pod_subnet", "10.32.0.0/16", "pod range"),
        ("service_subnet", "10.112.0.0/12", "cluster IP"),
        ("dns_domain", "example.internal", "DNS search path"),
        ("control_plane_endpoint", "10.0.0.99:6443", "kubelet.conf"),
        ("flannel_backend", "host-gw", "flanneld reads its backend only when it starts"),
    ],
)
def test_a_setting_a_live_cluster_cannot_change_is_refused(setting, value, reason):
    """The cluster runs with the defaults; the cluster file changes one fixed setting."""
    with pytest.raises(OperationError) as refused:
        run(cluster_with(**{setting: value}), live.as_left())
    message = str(refused.value)
    assert message.startswith("refused on cp1, before any change: ")
    assert f"{setting}: the running cluster has " in message
    assert f"the cluster file says '{value}'" in message
    assert reason in message
    assert f"set {setting} back to " in message and "deploys/reset.py" in message


def test_every_refusal_in_one_report():
    cluster = cluster_with(pod_subnet="10.32.0.0/16", dns_domain="example.internal")
    with pytest.raises(OperationError) as refused:
        run(cluster, live.as_left())
    assert "pod_subnet: " in str(refused.value) and "dns_domain: " in str(refused.value)


def test_a_cluster_without_an_endpoint_keeps_its_first_control_planes_address():
    """kubeadm keeps controlPlaneEndpoint empty when init had none: the first control
    plane's address and port are the endpoint, and the cluster file means the same."""
    facts = live.running_with(running={"ClusterConfiguration": {"controlPlaneEndpoint": ""}})
    assert changed(run(None, facts)) == {"cp1": [], "w1": [], "w2": []}
    with pytest.raises(OperationError, match="control_plane_endpoint: the running cluster has"):
        run(cluster_with(control_plane_endpoint="10.0.0.99:6443"), facts)


def test_a_cluster_the_api_server_does_not_answer_for_is_left_alone():
    facts = live.as_left()
    facts["cp1"][live.FACT]["running"] = None
    assert changed(run(cluster_with(pod_subnet="10.32.0.0/16"), facts))["cp1"] == []


# --- what converges ---------------------------------------------------------------------


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_a_converged_cluster_changes_nothing(os_release):
    result = run(HA, live.as_left(HA), os=os_release)
    assert result.missing_facts == {}
    assert changed(result) == {"cp1": [], "cp2": [], "w1": []}


def test_cert_sans_regenerate_the_api_server_certificate_on_each_control_plane():
    wanted = cluster_with(HA, cert_sans=["api.example.com", "10.0.0.10"])
    result = run(wanted, live.as_left(HA))
    assert changed(result) == {
        "cp1": [UPLOAD_CLUSTER, RECONFIGURE_CP],
        "cp2": [RECONFIGURE_CP],
        "w1": [],
    }
    assert result.op("cp1", UPLOAD_CLUSTER).commands == [
        "kubeadm init phase upload-config kubeadm --config /etc/kubernetes/kubeadm-init.yaml"
    ]
    for host in ("cp1", "cp2"):
        op = result.op(host, RECONFIGURE_CP)
        assert op.serial  # one control plane at a time
        write, backup, certs, manifests, restart, wait, record = op.commands
        assert write.endswith("mv -f /etc/kubernetes/kubeadm-applied.yaml.next.part "
                              "/etc/kubernetes/kubeadm-applied.yaml.next")  # fmt: skip
        assert "mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key $b/" in (
            backup
        )
        assert "b=/etc/kubernetes/pki/backup-apiserver-$(date -u" in backup
        assert certs == (
            "kubeadm init phase certs apiserver --config /etc/kubernetes/kubeadm-applied.yaml.next"
        )
        assert manifests == (
            "kubeadm init phase control-plane all --config "
            "/etc/kubernetes/kubeadm-applied.yaml.next"
        )
        assert restart.startswith("mv -f /etc/kubernetes/manifests/kube-apiserver.yaml ")
        assert f"pod/kube-apiserver-{host} " in wait and "--timeout=600s" in wait
        assert record == (
            "mv -f /etc/kubernetes/kubeadm-applied.yaml.next /etc/kubernetes/kubeadm-applied.yaml"
        )
        (text,) = [t for c, t in result.stdin[host] if "kubeadm-applied.yaml.next" in c]
        init, cluster = yaml.safe_load_all(text.split("\n", 2)[2])
        assert (
            init["localAPIEndpoint"]["advertiseAddress"]
            == HA["hosts"][int(host[-1]) - 1]["address"]
        )
        assert "bootstrapTokens" not in init
        assert cluster["apiServer"]["certSANs"] == ["api.example.com", "10.0.0.10"]


def test_the_scheduler_file_restarts_kube_scheduler_through_its_manifest():
    """A changed scheduler file changes the name of kube-scheduler's volume, so the
    ClusterConfiguration and kube-scheduler's manifest change: no certificate is touched."""
    before = cluster_with(scheduler={"percentage_of_nodes_to_score": 50})
    after = cluster_with(scheduler={"percentage_of_nodes_to_score": 70})
    result = run(after, live.as_left(before))
    assert changed(result) == {
        "cp1": [UPLOAD_CLUSTER, RECONFIGURE_CP],
        "w1": [],
        "w2": [],
    }
    commands = result.op("cp1", RECONFIGURE_CP).commands
    assert not [c for c in commands if "certs" in c or "manifests/kube-apiserver" in c]
    assert "kubeadm init phase control-plane all" in commands[1]
    (text,) = [t for c, t in result.stdin["cp1"] if "kubeadm-applied.yaml.next" in c]
    _, cluster = yaml.safe_load_all(text.split("\n", 2)[2])
    (volume,) = cluster["scheduler"]["extraVolumes"]
    (old,) = live.as_left(before)["cp1"][live.FACT]["applied"]["ClusterConfiguration"]["scheduler"][
        "extraVolumes"
    ]
    assert volume["name"].startswith("scheduler-config-") and volume["name"] != old["name"]


def test_kubelet_configuration_reaches_every_node_one_at_a_time():
    wanted = cluster_with(HA, image_gc_high_threshold=70, image_gc_low_threshold=60)
    drains = []
    result = run(
        wanted, live.as_left(HA), responses=[(r" drain ", 0, lambda c: drains.append(c) or "")]
    )
    assert changed(result) == {
        "cp1": [UPLOAD_KUBELET, KUBELET],
        "cp2": [KUBELET],
        "w1": [KUBELET],
    }
    assert result.op("cp1", UPLOAD_KUBELET).commands == [
        "kubeadm init phase upload-config kubelet --config /etc/kubernetes/kubeadm-init.yaml"
    ]
    for host in ("cp1", "cp2", "w1"):
        assert result.op(host, KUBELET).commands == [
            "call _drain",
            "kubeadm upgrade node phase kubelet-config --kubeconfig /etc/kubernetes/kubelet.conf",
            "systemctl restart kubelet",
            "call _finish",
        ]
    # drained from the first control plane, one node at a time, control planes first
    assert drains == [
        f"kubectl --kubeconfig /etc/kubernetes/admin.conf drain {node} --ignore-daemonsets "
        "--delete-emptydir-data --timeout=300s"
        for node in ("cp1", "cp2", "w1")
    ]


@pytest.mark.parametrize("reason", ["kubelet configuration", "upgrade to 1.35.9"])
def test_a_node_left_drained_is_finished_once(reason):
    """A killed run left w1 drained (by this work or by an upgrade): the next run finishes
    it once, through the roll every run makes (deploys/kubernetes/upgrade.py)."""
    states = {"w1": {"unschedulable": True, "drain": reason, "ready": True, "kubelet": ""}}
    facts = live.as_left()
    facts["cp1"]["deploys.kubernetes.drain.NodeStates"] = states
    result = run(None, facts)
    assert result.op("w1", KUBELET).commands == ["call _finish"]  # one roll, not drained again


def test_kube_proxy_mode_updates_its_configmap_and_restarts_its_pods():
    result = run(cluster_with(kube_proxy_mode="nftables"), live.as_left())
    assert changed(result) == {"cp1": [KUBE_PROXY], "w1": [], "w2": []}
    assert result.op("cp1", KUBE_PROXY).commands == [
        "kubeadm init phase addon kube-proxy --config /etc/kubernetes/kubeadm-init.yaml",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system rollout restart "
        "daemonset/kube-proxy",
    ]


def test_a_run_killed_after_the_configmaps_finishes_on_the_next():
    """The ConfigMaps were updated, then the run was killed before cp2 was regenerated
    and before w1's kubelet: the next run does only what is left."""
    wanted = cluster_with(
        HA, cert_sans=["api.example.com"], image_gc_high_threshold=70, image_gc_low_threshold=60
    )
    facts = live.as_left(wanted)
    old = live.as_left(HA)
    facts["cp2"][live.FACT]["applied"] = old["cp2"][live.FACT]["applied"]
    facts["w1"][live.FACT]["kubelet"] = old["w1"][live.FACT]["kubelet"]
    result = run(wanted, facts)
    assert changed(result) == {"cp1": [], "cp2": [RECONFIGURE_CP], "w1": [KUBELET]}
    assert "kubeadm init phase certs apiserver" in "\n".join(
        result.op("cp2", RECONFIGURE_CP).commands
    )


def test_a_control_plane_set_up_before_the_applied_file_is_regenerated_once():
    facts = live.as_left()
    facts["cp1"][live.FACT]["applied"] = None
    assert changed(run(None, facts))["cp1"] == [RECONFIGURE_CP]


def test_a_joining_control_plane_records_what_it_was_set_up_from():
    """In its join's operation, right after the join: a run killed later keeps it."""
    facts = {**live.as_left(HA), "cp2": harness.load_facts("ubuntu-24.04")}
    result = run(HA, facts)
    assert RECONFIGURE_CP not in result.changed("cp2")
    join = result.op("cp2", "kubeadm: join control plane").commands
    assert join[-1].endswith(
        "mv -f /etc/kubernetes/kubeadm-applied.yaml.part /etc/kubernetes/kubeadm-applied.yaml"
    )
    (text,) = [t for c, t in result.stdin["cp2"] if c == join[-1]]
    assert "advertiseAddress: 10.0.0.12" in text


def test_the_first_control_plane_records_right_after_init():
    result = harness.run(kubernetes.converge, cluster=HA, responses=RESPONSES)
    init = result.op("cp1", "kubeadm: initialize cluster").commands
    assert "kubeadm init --config" in init[0] and "kubeadm-applied.yaml" in init[1]
    assert result.op("w1", "kubeadm: join worker").commands[-1].startswith("kubeadm config")


def test_a_cluster_on_another_release_is_left_to_its_upgrade():
    """kubeadm upgrade rewrites the ConfigMaps and manifests at the new release; the
    reconfiguration must not write them at either release meanwhile."""
    facts = live.running_with(
        HA, running={"ClusterConfiguration": {"kubernetesVersion": "v1.34.3"}}
    )
    facts["cp2"][live.FACT]["applied"] = None  # would be regenerated otherwise
    result = run(cluster_with(HA, cert_sans=["api.example.com"]), facts)
    assert result.changed("cp1") == [] and result.changed("cp2") == []


# --- decisions --------------------------------------------------------------------------


def test_live_configuration_is_parsed_from_its_command_output():
    cluster = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nimageRepository: r\n"
    proxy = "kind: KubeProxyConfiguration\nmode: ipvs\n"
    configmaps = {
        "kind": "List",
        "items": [
            {"metadata": {"name": "kubeadm-config"}, "data": {"ClusterConfiguration": cluster}},
            {"metadata": {"name": "kube-proxy"}, "data": {"config.conf": proxy}},
        ],
    }
    text = "\n".join(
        [
            "=== kubelet",
            "kind: KubeletConfiguration\nimageGCHighThresholdPercent: 85",
            "=== applied",
            "=== configmaps",
            json.dumps(configmaps),
            "=== network",
            json.dumps({"data": {"net-conf.json": '{"Backend": {"Type": "vxlan"}}'}}),
        ]
    )
    parsed = reconfigure.parse_live(text)
    assert parsed["kubelet"]["imageGCHighThresholdPercent"] == 85
    assert parsed["applied"] is None
    assert parsed["running"]["ClusterConfiguration"]["imageRepository"] == "r"
    assert parsed["running"]["KubeProxyConfiguration"]["mode"] == "ipvs"
    assert parsed["running"]["KubeletConfiguration"] is None
    assert parsed["running"]["network"] == {"Backend": {"Type": "vxlan"}}


@pytest.mark.parametrize(
    "text",
    [
        "",  # a worker: no admin kubeconfig
        "=== kubelet\n=== applied\n=== configmaps\n=== network\n",  # the API server is down
        "=== configmaps\n{not json\n=== network\n",
        "=== kubelet\n: : :\n",
    ],
)
def test_unreadable_live_configuration_is_none(text):
    parsed = reconfigure.parse_live(text)
    assert parsed["running"] is None
    assert parsed["kubelet"] is None


def test_v1beta3_extra_arguments_compare_equal_to_v1beta4():
    as_map = {"scheduler": {"extraArgs": {"config": "/etc/kubernetes/kube-scheduler-config.yaml"}}}
    as_list = {
        "scheduler": {
            "extraArgs": [{"name": "config", "value": "/etc/kubernetes/kube-scheduler-config.yaml"}]
        }
    }
    assert reconfigure.managed(as_map) == reconfigure.managed(as_list)
