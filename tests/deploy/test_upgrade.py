"""Upgrades through the Kubernetes concern against recorded hosts of a converged cluster:
a patch, one minor, two minors, an HA cluster, a run interrupted after each step, a
downgrade refused, containerd 1.x refused for 1.36.

The hosts are the converged recorded facts with the installed packages and the API
server's version of the older release; kubectl's answers come from a test double of the
nodes (tests/deploy/test_drain.py's Api). kubeadm upgrade itself is not run here: its
stand-in is (tests/unit/test_stand_in_control_plane.py).
"""

from __future__ import annotations

import pytest
from pyinfra.api import OperationError

from deploys import kubernetes
from deploys.preflight import _containerd_problems
from deploys.settings import Settings
from tests.deploy import harness, live
from tests.deploy.test_drain import Api
from tests.deploy.test_kubernetes import HA, RESPONSES

NODES = ("cp1", "w1", "w2")
CP_VERSION = "deploys.kubernetes.upgrade.ControlPlaneVersion"
REPO_34 = "deploys.kubernetes.upgrade.RepositoryVersions(url=https://pkgs.k8s.io/core:/stable:/v1.34/deb/)"
STEP = "kubeadm: upgrade control plane"
ROLL = "kubernetes: roll node"


def at(version: str) -> dict:
    return {"deb.DebPackages": {p: [f"{version}-1.1"] for p in ("kubeadm", "kubelet", "kubectl")}}


def upgraded(
    cluster=None, running="1.35.2", target="1.35.9", host_facts=None, api=None, **settings
):
    doc = cluster or harness.DEFAULT_CLUSTER
    doc = {**doc, "settings": {**doc.get("settings", {}), "kubernetes_version": target, **settings}}
    names = [h["name"] for h in doc["hosts"]]
    api = api or Api(names)
    facts = {**at(running), CP_VERSION: running, REPO_34: ["1.34.3-1.1", "1.34.10-1.1"]}
    # the running cluster's configuration as the cluster file made it (reconfigure.py)
    left = live.as_left(doc)
    own = {
        n: {**left.get(n, {}), **(host_facts or {}).get(n, {})}
        for n in {*left, *(host_facts or {})}
    }
    from deploys.kubernetes import drain

    states = drain.NodeStates().process(api.listing().splitlines())
    own.setdefault("cp1", {})["deploys.kubernetes.drain.NodeStates"] = states
    result = harness.run(
        kubernetes.converge,
        cluster=doc,
        converged=True,
        facts=facts,
        host_facts=own,
        responses=[*api.responses(), *RESPONSES],
    )
    return result, api


def test_a_patch_upgrade():
    result, api = upgraded()
    assert not any(result.failed(n) for n in NODES)
    snapshot = result.op("cp1", "kubernetes: save etcd snapshot").commands
    assert "etcdctl" in snapshot[0] and "etcd-before-v1.35.9" in snapshot[0]
    path = snapshot[0].split("&& mv ")[1].split()[1]
    assert f"etcd snapshot on cp1: {path}" in result.log  # the plan
    assert f"etcd snapshot saved: {path}" in result.log  # after it was taken
    step = result.op("cp1", STEP).commands
    assert step[-2:] == ["kubeadm upgrade plan v1.35.9", "kubeadm upgrade apply -y v1.35.9"]
    assert "kubeadm=1.35.9-1.1" in step[3]
    assert result.op("w1", STEP).commands == []
    assert result.op("w1", STEP).serial
    worker = result.op("w1", ROLL).commands
    assert worker[0] == "call _drain" and worker[-1] == "call _finish"
    assert "kubeadm upgrade node" in worker
    assert any("kubelet=1.35.9-1.1 kubectl=1.35.9-1.1" in c for c in worker)
    assert "kubeadm upgrade node" not in result.op("cp1", ROLL).commands
    # the run's order: the control plane's apply before any drain; one node at a time
    order = result.op_names("cp1")
    assert order.index("kubernetes: save etcd snapshot") < order.index(STEP) < order.index(ROLL)
    assert [c for c in api.calls if c.startswith(("drain", "uncordon"))] == [
        "drain cp1",
        "uncordon cp1",
        "drain w1",
        "uncordon w1",
        "drain w2",
        "uncordon w2",
    ]
    # the packages installed at the start leave members alone; the source is the target's
    assert result.op("w1", "kubernetes: install kubeadm, kubelet and kubectl").commands == []


def test_one_minor():
    result, _ = upgraded(running="1.34.3")
    step = result.op("cp1", STEP).commands
    assert "/v1.35/deb/" in step[0] and step[-1] == "kubeadm upgrade apply -y v1.35.9"


def test_two_minors_walk_the_newest_patch_of_the_middle_one():
    result, _ = upgraded(running="1.33.7")
    steps = [op.commands for op in result.ops["cp1"] if op.name == STEP]
    assert [s[-1] for s in steps] == [
        "kubeadm upgrade apply -y v1.34.10",
        "kubeadm upgrade apply -y v1.35.9",
    ]
    assert "/v1.34/deb/" in steps[0][0] and "kubeadm=1.34.10-1.1" in steps[0][3]
    # the plan is printed first, with every step and every node
    assert "upgrade plan: Kubernetes 1.33.7 -> 1.35.9" in result.log
    assert "1.34.10: kubeadm 1.34.10-1.1; on cp1 kubeadm upgrade apply" in result.log
    assert "w2: drain, kubelet and kubectl 1.35.9-1.1" in result.log


def test_an_upgrade_path_picks_the_middle_release():
    result, _ = upgraded(running="1.33.7", upgrade_path=["1.34.2"])
    steps = [op.commands for op in result.ops["cp1"] if op.name == STEP]
    assert steps[0][-1] == "kubeadm upgrade apply -y v1.34.2"


def test_ha_control_planes_one_at_a_time():
    result, api = upgraded(cluster=HA)
    assert result.op("cp1", STEP).commands[-1] == "kubeadm upgrade apply -y v1.35.9"
    for name in ("cp2", "cp3"):
        assert result.op(name, STEP).commands[-1] == "kubeadm upgrade node"
        assert result.op(name, STEP).serial
        assert result.op(name, "kubernetes: save etcd snapshot").commands == []
    assert [c for c in api.calls if c.startswith("drain")] == [
        "drain cp1",
        "drain cp2",
        "drain cp3",
        "drain w1",
    ]


def test_interrupted_after_the_apply_the_rest_follows():
    """Killed after cp1's apply and w1's kubelet: cp1's API server is at the target, cp2's
    not, w1's packages are, and the API server reports w1's new kubelet."""
    api = Api(["cp1", "cp2", "cp3", "w1"])
    facts = {"cp1": {CP_VERSION: "1.35.9"}, "w1": at("1.35.9")}
    result, api = upgraded(cluster=HA, host_facts=facts, api=api)
    assert result.op("cp1", STEP).commands == []  # no second apply
    assert result.op("cp1", "kubernetes: save etcd snapshot").commands == []
    assert result.op("cp2", STEP).commands[-1] == "kubeadm upgrade node"
    assert "w1" not in [c.split()[1] for c in api.calls if c.startswith("drain")]


def test_interrupted_while_a_node_was_drained_it_is_finished():
    api = Api(["cp1", "w1", "w2"], drained=["w1"])
    facts = {n: {CP_VERSION: "1.35.9", **at("1.35.9")} for n in NODES}
    result, api = upgraded(running="1.35.9", host_facts=facts, api=api)
    assert result.op("w1", ROLL).commands == ["call _finish"]
    # (the harness runs the deploy twice for converged facts: both runs finish w1 alone)
    assert set(api.calls) == {"ready w1", "uncordon w1", "annotate w1"}
    assert result.changed("w2") == []


def test_a_converged_upgraded_cluster_changes_nothing():
    facts = {n: {CP_VERSION: "1.35.9", **at("1.35.9")} for n in NODES}
    result, api = upgraded(running="1.35.9", host_facts=facts)
    assert all(result.changed(n) == [] for n in NODES)
    assert api.calls == []


def test_a_drain_failure_stops_the_run_then_the_next_run_resumes():
    api = Api(list(NODES), blocked=["w1"])
    result, api = upgraded(api=api)
    assert result.failed("w1") and "shop/web-1" in result.log
    assert not any("kubeadm upgrade node" in c for c in result.commands("w1"))
    api.blocked.clear()
    done = {"cp1": {CP_VERSION: "1.35.9", **at("1.35.9")}}
    again, api = upgraded(host_facts=done, api=api)
    assert not any(again.failed(n) for n in NODES)
    assert not api.cordoned and not api.drained


@pytest.mark.parametrize("installed", ["1.36.1", "1.35.10"])
def test_a_downgrade_is_refused(installed):
    with pytest.raises(OperationError, match="downgrade"):
        upgraded(running="1.35.9", host_facts={"w2": at(installed)})


def test_a_downgrade_of_the_control_plane_is_refused():
    with pytest.raises(OperationError, match="downgrade"):
        upgraded(running="1.35.9", host_facts={"cp1": {CP_VERSION: "1.36.0"}})


def test_to_136_with_containerd_1_is_refused_by_preflight():
    """1.35 -> 1.36 on a node whose installed containerd is 1.7: preflight (every host,
    before any change) refuses it, naming the node and the fix."""
    settings = Settings(kubernetes_version="1.36.0")
    found = _containerd_problems("w1", settings, {"containerd": {"installed": "1.7.24-1"}})
    assert found and "needs containerd 2.x" in found[0]


def test_the_runtime_and_kubeadms_files_follow_the_new_release():
    """Changing kubernetes_version on converged nodes rewrites containerd's sandbox image
    (the new minor's pause tag), its guard unit's script and kubeadm's files."""
    from deploys import runtime

    doc = {**harness.DEFAULT_CLUSTER, "settings": {"kubernetes_version": "1.36.0"}}
    result = harness.run(runtime.converge, os="ubuntu-24.04", cluster=doc)
    written = result.written("w1")
    config = next(text for path, text in written.items() if path.endswith("config.toml"))
    assert "registry.k8s.io/pause:3.10.2" in config
    guard = written["/usr/local/sbin/containerd-sandbox-image"]
    assert "pause:3.10.2" in guard
    upgraded_files = harness.run(kubernetes.converge, os="ubuntu-24.04", cluster=doc)
    init = upgraded_files.uploads["cp1"]["/etc/kubernetes/kubeadm-init.yaml"]
    assert "kubernetesVersion: v1.36.0" in init
