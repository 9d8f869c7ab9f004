"""One code path for every concern: what the offline renderer writes for a node is, file
for file and byte for byte, what the concern's deploy writes on that node (uploads and
root-only files written through stdin), on every supported release.

A concern's `rendered_files(ctx)` gets the host facts the deploy read (release,
architecture, the containerd version the host reports), as `python -m deploys.render`
assumes them.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pyinfra.api import deploy

from deploys import addons, concerns, distro, loadbalancer
from deploys import kuboard as kuboard_server
from deploys.addons import kuboard
from deploys.context import NodeContext
from deploys.kubernetes import kubeadm_config
from tests.deploy import harness
from tests.deploy.test_kubernetes import CA_HASH, CERTIFICATE_KEY, RESPONSES, TOKEN

MIRRORED = "inventory/example-mirrored.yaml"
CLUSTERS = {
    # The default 3 nodes; Debian 11's own containerd (1.4) is too old: Docker's there.
    "default": {**harness.DEFAULT_CLUSTER, "settings": {"containerd_source": "docker"}},
    # Every optional file: the scheduler configuration, IPVS, another time daemon.
    "options": {
        **harness.DEFAULT_CLUSTER,
        "settings": {
            "containerd_source": "docker",
            "scheduler": {"percentage_of_nodes_to_score": 40},
            "kube_proxy_mode": "ipvs",
            "time_sync": "ntp",
            "sysctls": {"vm.max_map_count": 262144},
        },
    },
    # HA, Docker's containerd pinned, mirrors with credentials, Kuboard.
    "mirrored": MIRRORED,
    # A Kuboard server on a host of its own, with an initial admin password.
    "kuboard": {
        "hosts": [
            *harness.DEFAULT_CLUSTER["hosts"],
            {"name": "kb1", "address": "10.0.0.5", "roles": ["kuboard"]},
        ],
        "settings": {
            "containerd_source": "docker",
            "kuboard_cluster_name": "site-a",
            "kuboard_agent_token": "AgentToken0123",
            "kuboard_admin_password": "Initial-Admin-1",
        },
    },
    # HA through the load balancer's VIP: haproxy and keepalived on the control planes.
    "vip": {
        "hosts": [
            *(
                {"name": f"cp{i}", "address": f"10.0.0.1{i}", "roles": ["control_plane"]}
                for i in (1, 2, 3)
            ),
            {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
        ],
        "settings": {
            "containerd_source": "docker",
            "api_load_balancer": "vip",
            "api_vip": "10.0.0.100",
            "vrrp_password": "s3cret-x",
            "vrrp_interface": "eth0",
        },
    },
}
SYSTEM_STATE = "deploys.system.facts.SystemState"
CONTAINERD_STATE = "deploys.runtime.facts.ContainerdState"
# Written by the deploy but not from the cluster file: fetched from the Kuboard server.
FETCHED = {kuboard.MANIFEST}
SERVED_AGENT = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kuboard\n"


def facts(os_release: str) -> dict:
    """The recorded fresh host, with firewalld installed: the one file OS preparation
    writes only where a tool is there (its service definition) is then written too."""
    state = dict(harness.load_facts(os_release)[SYSTEM_STATE])
    state["firewalld"] = {"running": True, "services": []}
    return {SYSTEM_STATE: state}


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
@pytest.mark.parametrize("concern", concerns.CLUSTER, ids=lambda c: c.__name__.split(".")[-1])
def test_the_deploy_writes_exactly_what_is_rendered(concern, os_release, cluster, monkeypatch):
    recorded = facts(os_release)
    run = harness.run(
        concern.converge,
        os=os_release,
        cluster=CLUSTERS[cluster],
        facts=recorded,
        responses=[*RESPONSES, (r"^curl --config", 0, SERVED_AGENT)],
    )
    # Join secrets exist only while a run joins a node: the renderer shows placeholders.
    credentials = kubeadm_config.JoinCredentials(TOKEN, CA_HASH, CERTIFICATE_KEY)
    monkeypatch.setattr(kubeadm_config, "PLACEHOLDER_CREDENTIALS", credentials)
    host = harness.load_facts(os_release)[CONTAINERD_STATE]
    parsed = harness._cluster(CLUSTERS[cluster])
    for node in parsed.nodes:
        ctx = NodeContext.from_cluster(
            parsed,
            node,
            release=distro.RELEASES[os_release],
            arch=host["arch"],
            containerd_version=host["version"],
        )
        written = {p: t for p, t in run.written(node.name).items() if p not in FETCHED}
        assert written == concern.rendered_files(ctx)
        # The add-ons write on the first control plane, the Kuboard server on its host, the
        # Kubernetes concern on the cluster's nodes, the load balancer where it runs.
        writes = node.is_kuboard if concern is kuboard_server else node.is_member
        assert written or concern in (addons, loadbalancer) or not writes


@pytest.mark.parametrize("concern", concerns.CLUSTER, ids=lambda c: c.__name__.split(".")[-1])
def test_every_concern_has_the_same_face(concern):
    """converge() takes nothing (it reads its own facts), rendered_files() only the context."""
    assert list(inspect.signature(concern.converge).parameters) == []
    assert list(inspect.signature(concern.rendered_files).parameters) == ["ctx"]


def test_the_cluster_entry_file_converges_the_concerns_in_order():
    """deploys/cluster.py itself, as pyinfra runs it: every host's operations come concern
    by concern, in the order of concerns.CLUSTER, then the readiness wait."""
    entry = Path(concerns.__file__).with_name("cluster.py")

    @deploy("Cluster")
    def cluster():
        exec(compile(entry.read_text(), str(entry), "exec"), {"__file__": str(entry)})

    run = harness.run(cluster, responses=RESPONSES)
    firsts = {"packages": 0, "containerd": 1, "kubernetes": 2, "flannel": 3, "cluster": 4}
    for host in ("cp1", "w1"):
        order = [firsts[n.split(":")[0]] for n in run.op_names(host) if n.split(":")[0] in firsts]
        assert order == sorted(order) and len(set(order)) == (5 if host == "cp1" else 3)
