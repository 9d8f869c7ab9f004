"""Removing nodes (deploys/remove.py) and resetting the cluster (deploys/reset.py) against
recorded hosts: what each step does on the removed host and, through kubectl, on the
control plane that stays, the refusals, and the runs after a killed one.

The cluster as the API server reports it is the ClusterStatus fact of the control plane
that stays (nodes with their roles and Ready condition); what Kubernetes left on a host is
its NodeLeftovers fact; kubectl's and kubeadm's answers are `responses`. Real kubeadm
reset, etcd and a pod network cannot run here: the lab's stand-ins answer them
(tests/lab/test_cluster_lifecycle.py).
"""

from __future__ import annotations

import pytest

from deploys.kubernetes import removal
from deploys.kubernetes.removal import RemovalRefused
from tests.deploy import harness
from tests.deploy.test_kubernetes import HA

STATUS = "deploys.addons.ready.ClusterStatus"
LEFTOVERS = "deploys.kubernetes.removal.NodeLeftovers"
# What a worker of the default cluster keeps: kubeadm's files, flannel's CNI file and
# interfaces, kube-proxy's and flannel's iptables chains.
WORKER_LEFT = {
    "kubeadm": True,
    "etcd": False,
    "directories": ["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/cni", "/run/flannel"],
    "cni": ["/etc/cni/net.d/10-flannel.conflist"],
    "interfaces": ["cni0", "flannel.1"],
    "rules": 57,
    "nft": [],
}
CONTROL_PLANE_LEFT = {
    **WORKER_LEFT,
    "etcd": True,
    "directories": [*WORKER_LEFT["directories"], "/var/lib/etcd"],
}
NOTHING_LEFT = removal.NodeLeftovers().process([])  # what a prepared node has
REMOVE_OPS = [
    "kubernetes: drain node",
    "etcd: remove member",
    "kubernetes: delete node",
    "kubeadm: reset node",
    "network: remove CNI configuration, interfaces and rules",
    "kubeadm: remove kubeadm directories",
]


def node(name: str, control_plane: bool, ready: bool = True) -> dict:
    labels = {"node-role.kubernetes.io/control-plane": ""} if control_plane else {}
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def status(cluster: dict, not_ready=(), absent=()) -> dict:
    items = [
        node(h["name"], "control_plane" in h["roles"], h["name"] not in not_ready)
        for h in cluster["hosts"]
        if h["name"] not in absent
    ]
    return {"kind": "List", "items": items}


class Kubectl:
    """kubectl on the control plane that stays: every command, in order."""

    def __init__(self, fail_drain: str = ""):
        self.commands: list[str] = []
        self.fail_drain = fail_drain

    def responses(self):
        def record(command):
            self.commands.append(command)
            return ""

        drain = [(r"kubectl .* drain ", 1, lambda c: record(c) or self.fail_drain)]
        return [*(drain if self.fail_drain else []), (r"^kubectl ", 0, record)]


def remove(cluster, limit, left, api: Kubectl | None = None, cluster_status="default"):
    api = api or Kubectl()
    facts = {name: {LEFTOVERS: left.get(name, NOTHING_LEFT)} for name in limit}
    planes = [h["name"] for h in cluster["hosts"] if "control_plane" in h["roles"]]
    stays = [name for name in planes if name not in limit][0]
    facts.setdefault(stays, {})[STATUS] = (
        status(cluster) if cluster_status == "default" else cluster_status
    )
    result = harness.run(
        removal.remove, cluster=cluster, host_facts=facts, responses=api.responses(), limit=limit
    )
    return result, api


# --- removing a node ----------------------------------------------------------------------


def test_a_worker_is_drained_deleted_reset_and_cleaned():
    result, api = remove(harness.DEFAULT_CLUSTER, ["w1"], {"w1": WORKER_LEFT})
    assert result.op_names("w1") == REMOVE_OPS
    assert result.changed("w1") == [n for n in REMOVE_OPS if n != "etcd: remove member"]
    assert list(result.ops["cp1"]) == [] and list(result.ops["w2"]) == []  # only --limit runs
    assert api.commands == [
        "kubectl --kubeconfig /etc/kubernetes/admin.conf drain w1 --ignore-daemonsets "
        "--delete-emptydir-data --timeout=300s",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf delete node w1 --ignore-not-found",
    ]
    assert result.op("w1", "kubeadm: reset node").commands == [
        "kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock"
    ]
    network = result.op("w1", "network: remove CNI configuration, interfaces and rules").commands
    assert network[:3] == [
        "rm -f /etc/cni/net.d/10-flannel.conflist",
        "ip link delete cni0",
        "ip link delete flannel.1",
    ]
    # only kube-proxy's and flannel's chains go: the firewall's rules stay
    assert "iptables-save | grep -vE '(KUBE|FLANNEL)-' | iptables-restore" in network[3]
    assert "ip6tables-save | grep -vE '(KUBE|FLANNEL)-' | ip6tables-restore" in network[4]
    assert result.op("w1", "kubeadm: remove kubeadm directories").commands == [
        "rm -rf --one-file-system /etc/kubernetes /var/lib/kubelet /var/lib/cni /run/flannel",
        "install -d -m 755 /etc/kubernetes/manifests",  # as the kubelet package leaves it
    ]


def test_a_control_plane_leaves_etcd_before_its_node_is_deleted():
    result, api = remove(HA, ["cp2"], {"cp2": CONTROL_PLANE_LEFT})
    assert result.changed("cp2") == REMOVE_OPS
    assert result.op("cp2", "etcd: remove member").commands == [
        "kubeadm reset phase remove-etcd-member"
    ]
    assert [c.split()[3] for c in api.commands] == ["drain", "delete"]  # on cp1, which stays
    dirs = result.op("cp2", "kubeadm: remove kubeadm directories").commands[0]
    assert "/var/lib/etcd" in dirs


def test_the_first_control_plane_is_removed_through_the_next():
    result, api = remove(HA, ["cp1"], {"cp1": CONTROL_PLANE_LEFT})
    assert result.changed("cp1") == REMOVE_OPS
    assert result.reads["cp2"] == [STATUS]  # the cluster is read on cp2, which stays
    assert len(api.commands) == 2


def test_a_host_already_removed_changes_nothing():
    """A run after a complete removal (or a host that never joined)."""
    absent = status(harness.DEFAULT_CLUSTER, absent=["w1"])
    result, api = remove(
        harness.DEFAULT_CLUSTER, ["w1"], {"w1": NOTHING_LEFT}, cluster_status=absent
    )
    assert result.changed("w1") == [] and api.commands == []


def test_a_run_killed_after_the_reset_only_cleans_up():
    left = {**NOTHING_LEFT, "cni": WORKER_LEFT["cni"], "directories": ["/etc/kubernetes"]}
    absent = status(harness.DEFAULT_CLUSTER, absent=["w1"])
    result, api = remove(harness.DEFAULT_CLUSTER, ["w1"], {"w1": left}, cluster_status=absent)
    assert result.changed("w1") == [
        "network: remove CNI configuration, interfaces and rules",
        "kubeadm: remove kubeadm directories",
    ]
    assert api.commands == []


def test_a_blocked_drain_stops_before_anything_is_removed():
    blocked = (
        'error when evicting pods/"web-1" -n "shop" (will retry after 5s): Cannot evict pod as '
        "it would violate the pod's disruption budget.\n"
    )
    result, api = remove(harness.DEFAULT_CLUSTER, ["w1"], {"w1": WORKER_LEFT}, Kubectl(blocked))
    (failed,) = result.failed("w1")
    assert failed.name == "kubernetes: drain node"
    assert "shop/web-1" in result.log and "drain_timeout (300 s)" in result.log
    assert result.op_names("w1") == ["kubernetes: drain node"]  # the host stopped there


def test_leftovers_are_read_from_one_command(tmp_path):
    """The fact's command, run by sh in a scratch root: an /etc/kubernetes holding only the
    kubelet package's empty manifests directory is not a leftover; anything else is."""
    import subprocess

    command = removal.NodeLeftovers().command().replace(" /etc/", f" {tmp_path}/etc/")
    (tmp_path / "etc/kubernetes/manifests").mkdir(parents=True)

    def read():
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
        return removal.NodeLeftovers().process(out.splitlines())["directories"]

    assert f"{tmp_path}/etc/kubernetes" not in read()
    (tmp_path / "etc/kubernetes/manifests/etcd.yaml").write_text("x")
    assert f"{tmp_path}/etc/kubernetes" in read()


def test_hostile_cni_file_names_are_quoted():
    left = {**NOTHING_LEFT, "cni": ["/etc/cni/net.d/x; rm -rf /"]}
    (command,) = removal.network_commands(left)
    assert command.get_raw_value() == "rm -f '/etc/cni/net.d/x; rm -rf /'"


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "limit", "cluster_status", "words"),
    [
        (harness.DEFAULT_CLUSTER, None, "default", "without --limit it would remove every node"),
        (harness.DEFAULT_CLUSTER, ["cp1"], "default", "the last control plane of the cluster"),
        (HA, ["cp1", "cp2", "cp3"], "default", "the last control plane of the cluster file"),
        (HA, ["cp2"], status(HA, not_ready=["cp3"]), "would lose etcd quorum"),
        (HA, ["cp2", "cp3"], status(HA, not_ready=["cp1"]), "would lose etcd quorum"),
        (HA, ["w1"], None, "the API server does not answer on cp1"),
    ],
)
def test_a_removal_that_must_not_happen_is_refused_before_any_change(
    cluster, limit, cluster_status, words
):
    facts = {"cp1": {STATUS: status(cluster) if cluster_status == "default" else cluster_status}}
    with pytest.raises(RemovalRefused) as refused:
        harness.run(removal.remove, cluster=cluster, host_facts=facts, limit=limit)
    assert str(refused.value).startswith("refused before any change: ")
    assert words in str(refused.value)


def test_quorum_names_the_members_that_are_down():
    problems = removal.removal_refusals(
        ["cp2"],
        ["cp1", "cp2", "cp3"],
        {
            "cp1": {"control_plane": True, "ready": True},
            "cp2": {"control_plane": True, "ready": True},
            "cp3": {"control_plane": True, "ready": False},
        },
        "cp1",
    )
    assert problems == [
        "removing cp2 would lose etcd quorum: 2 members would stay and need 2 healthy, but "
        "cp3 is not Ready. Bring it back first"
    ]


def test_a_worker_removal_ignores_etcd_health():
    nodes = {
        "cp1": {"control_plane": True, "ready": True},
        "cp2": {"control_plane": True, "ready": False},
        "w1": {"control_plane": False, "ready": True},
    }
    assert removal.removal_refusals(["w1"], ["cp1", "cp2"], nodes, "cp1") == []


# --- reset --------------------------------------------------------------------------------


def test_reset_is_refused_without_its_confirmation(monkeypatch):
    monkeypatch.delenv("RESET", raising=False)
    with pytest.raises(RemovalRefused, match="RESET=yes pyinfra inventory.py deploys/reset.py"):
        harness.run(removal.reset)
    monkeypatch.setenv("RESET", "y")
    with pytest.raises(RemovalRefused):
        harness.run(removal.reset)


def test_reset_tears_every_host_down_the_first_control_plane_last(monkeypatch):
    monkeypatch.setenv("RESET", "yes")
    facts = {"cp1": {LEFTOVERS: CONTROL_PLANE_LEFT}, "w1": {LEFTOVERS: WORKER_LEFT},
             "w2": {LEFTOVERS: WORKER_LEFT}}  # fmt: skip
    result = harness.run(removal.reset, host_facts=facts)
    for worker in ("w1", "w2"):
        assert result.changed(worker) == [
            "kubeadm: reset node",
            "network: remove CNI configuration, interfaces and rules",
            "kubeadm: remove kubeadm directories",
        ]
    assert result.changed("cp1") == [
        "kubernetes: delete reset nodes",
        "kubeadm: reset first control plane",
        "network: remove CNI configuration, interfaces and rules",
        "kubeadm: remove kubeadm directories",
    ]
    assert result.op("cp1", "kubernetes: delete reset nodes").commands == [
        "kubectl --kubeconfig /etc/kubernetes/admin.conf delete node w1 w2 --ignore-not-found"
    ]


def test_a_reset_cluster_resets_nothing_again(monkeypatch):
    monkeypatch.setenv("RESET", "yes")
    facts = {name: {LEFTOVERS: NOTHING_LEFT} for name in ("cp1", "w1", "w2")}
    result = harness.run(removal.reset, host_facts=facts)
    assert all(result.changed(h) == [] for h in ("cp1", "w1", "w2"))


def test_reset_with_limit_resets_only_those(monkeypatch):
    monkeypatch.setenv("RESET", "yes")
    result = harness.run(removal.reset, host_facts={"w2": {LEFTOVERS: WORKER_LEFT}}, limit=["w2"])
    assert result.ops["cp1"] == [] and result.changed("w2")[0] == "kubeadm: reset node"
