"""The cluster's later life on the test lab (testlab1 the control plane, testlab2 and
testlab3 workers), with the real `pyinfra` command line against the stand-ins, as in
test_cluster_rehearsal.py: cluster-level settings changed and re-run, a worker removed and
added back, then the whole cluster reset.

The stand-ins run no pods, so nothing makes flannel's CNI file, its interfaces or
kube-proxy's iptables chains on the nodes: the test plants them on the worker before it is
removed (as a running pod network would leave them) and checks that the removal takes them
away and leaves the firewall's own rules. What only a real cluster shows: that the API
server serves the new certificate, kube-scheduler runs with the new file, and the kubelet
collects images at the new thresholds (deploys/kubernetes/reconfigure.py's docstring).
Removing a control plane of three (etcd member removal) is proven against the stand-in
control plane off the lab (tests/unit/test_stand_in_lifecycle.py) and with recorded hosts
(tests/deploy/test_removal.py): growing the lab to three control planes costs minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.lab.fixture import LAB_NODES
from tests.lab.rehearsal import Call, calls, forget
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

FIRST, WORKERS = LAB_NODES[0], LAB_NODES[1:]
REMOVED = WORKERS[-1]
CHANGED = {
    "image_gc_high_threshold": 70,
    "image_gc_low_threshold": 60,
    "scheduler": {"percentage_of_nodes_to_score": 50},
    "cert_sans": ["api.lab.example"],
}
# What a running pod network and kube-proxy leave on a node (planted: no pods run here).
PLANT = (
    "mkdir -p /etc/cni/net.d && echo '{}' > /etc/cni/net.d/10-flannel.conflist"
    " && ip link add cni0 type bridge && iptables -N KUBE-SERVICES"
    " && iptables -A INPUT -j KUBE-SERVICES && iptables -N PYINFRA-KUBEADM-TEST-KEEP"
)


@dataclass(frozen=True)
class Lifecycle:
    cold: Run
    changed: Run
    changed_calls: list[Call]
    changed_files: dict[str, str]  # what the control plane and each kubelet run with then
    third: Run
    third_calls: list[Call]
    removed: Run
    removed_calls: list[Call]
    after_removal: dict[str, str]  # check -> output on the removed host
    state_after_removal: dict
    node_py: Run
    rejoined: Run
    rejoined_calls: list[Call]
    reset: Run
    refused_reset: Run
    after_reset: dict[str, str]  # node -> what is left
    state_after_reset: dict


def _changed_file(original: Path) -> Path:
    doc = yaml.safe_load(original.read_text())
    doc["settings"].update(CHANGED)
    changed = original.with_name("testlab-lifecycle.yaml")
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    changed.chmod(0o600)
    return changed


# What is left of Kubernetes on a node: "present ..." lines (none on a prepared node: its
# /etc/kubernetes holds only the kubelet package's empty manifests directory), then the
# kubelet's state, the KUBE- rules, the firewall rule planted to be kept.
LEFT = (
    "for p in $(find /etc/kubernetes -mindepth 1 -not -path /etc/kubernetes/manifests) "
    "/var/lib/kubelet /etc/cni/net.d/10-flannel.conflist /sys/class/net/cni0; "
    "do [ -e $p ] && echo present $p; done; "
    "systemctl is-active kubelet; iptables-save | grep -c KUBE- ; "
    "iptables-save | grep -c PYINFRA-KUBEADM-TEST-KEEP; true"
)


@pytest.fixture(scope="module")
def lifecycle(lab) -> Lifecycle:
    forget(lab)
    original = lab.inventory_path
    changed_file = _changed_file(original)
    try:
        cold = pyinfra("deploys/cluster.py", original)
        before = len(calls(lab))
        changed = pyinfra("deploys/cluster.py", changed_file)
        changed_calls = calls(lab)[before:]
        changed_files = {
            "scheduler": lab.ssh(FIRST, "cat /etc/kubernetes/manifests/kube-scheduler.yaml").stdout,
            "sans": lab.ssh(
                FIRST,
                "openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/pki/apiserver.crt",
            ).stdout,  # fmt: skip
            **{n: lab.ssh(n, "cat /var/lib/kubelet/config.yaml").stdout for n in LAB_NODES},
        }
        before = len(calls(lab))
        third = pyinfra("deploys/cluster.py", changed_file)
        third_calls = calls(lab)[before:]
        lab.ssh(REMOVED, PLANT)
        before = len(calls(lab))
        removed = pyinfra("deploys/remove.py", changed_file, limit=REMOVED)
        removed_calls = calls(lab)[before:]
        after_removal = {REMOVED: lab.ssh(REMOVED, LEFT).stdout}
        state_after_removal = lab.control_plane_state()
        node_py = pyinfra("deploys/node.py", changed_file, limit=REMOVED)
        before = len(calls(lab))
        rejoined = pyinfra("deploys/cluster.py", changed_file)
        rejoined_calls = calls(lab)[before:]
        refused_reset = pyinfra("deploys/reset.py", changed_file)
        reset = pyinfra("deploys/reset.py", changed_file, env={"RESET": "yes"})
        after_reset = {n: lab.ssh(n, LEFT).stdout for n in LAB_NODES}
        yield Lifecycle(cold, changed, changed_calls, changed_files, third, third_calls, removed,
                        removed_calls, after_removal, state_after_removal, node_py, rejoined,
                        rejoined_calls, reset, refused_reset, after_reset,
                        lab.control_plane_state())  # fmt: skip
    finally:
        changed_file.unlink(missing_ok=True)
        lab.ssh(REMOVED, "iptables -X PYINFRA-KUBEADM-TEST-KEEP", check=False)
        forget(lab)


def kubeadm(run_calls: list[Call], verb: str) -> list[Call]:
    return [c for c in run_calls if c.tool == "kubeadm" and c.words.startswith(verb)]


def kubectl(run_calls: list[Call], verb: str) -> list[Call]:
    return [c for c in run_calls if c.tool == "kubectl" and c.words.startswith(verb)]


# --- reconfiguration ----------------------------------------------------------------------


def test_changed_settings_reach_the_running_cluster(lifecycle):
    assert lifecycle.cold.result.returncode == 0, lifecycle.cold.failure()
    assert lifecycle.changed.result.returncode == 0, lifecycle.changed.failure()
    uploads = [c.words for c in kubeadm(lifecycle.changed_calls, "init phase upload-config")]
    assert uploads == ["init phase upload-config kubeadm", "init phase upload-config kubelet"]
    (certs,) = kubeadm(lifecycle.changed_calls, "init phase certs apiserver")
    (manifests,) = kubeadm(lifecycle.changed_calls, "init phase control-plane all")
    assert certs.node == manifests.node == FIRST and certs.stamp < manifests.stamp


def test_the_control_plane_has_the_new_certificate_and_scheduler(lifecycle):
    assert "DNS:api.lab.example" in lifecycle.changed_files["sans"]
    scheduler = lifecycle.changed_files["scheduler"]
    assert "--config=/etc/kubernetes/kube-scheduler-config.yaml" in scheduler
    assert "scheduler-config-" in scheduler


def test_each_kubelet_is_reconfigured_drained_one_node_at_a_time(lifecycle):
    run_calls = lifecycle.changed_calls
    fetches = kubeadm(run_calls, "upgrade node phase kubelet-config")
    assert [c.node for c in fetches] == [FIRST, *WORKERS]  # control plane first
    steps = []
    for fetch in fetches:
        (drain,) = [c for c in kubectl(run_calls, f"drain {fetch.node}")]
        (uncordon,) = [c for c in kubectl(run_calls, f"uncordon {fetch.node}")]
        assert drain.stamp < fetch.stamp < uncordon.stamp
        steps.append((drain.stamp, uncordon.stamp))
    for (_, done), (start, _) in zip(steps, steps[1:], strict=False):
        assert done < start  # the next node is drained after this one is uncordoned
    for name in LAB_NODES:
        kubelet = yaml.safe_load(lifecycle.changed_files[name])
        assert kubelet["imageGCHighThresholdPercent"] == 70


def test_a_third_run_changes_nothing(lifecycle):
    assert lifecycle.third.result.returncode == 0, lifecycle.third.failure()
    assert lifecycle.third.totals()["success"] == 0, lifecycle.third.output[-5000:]
    assert [c.line for c in lifecycle.third_calls if c.mutating] == []


# --- removing a worker and adding it back -------------------------------------------------


def test_a_removed_worker_is_left_a_prepared_node(lifecycle):
    assert lifecycle.removed.result.returncode == 0, lifecycle.removed.failure()
    assert {c.node for c in lifecycle.removed_calls} == {FIRST, REMOVED}
    (drain,) = kubectl(lifecycle.removed_calls, f"drain {REMOVED}")
    (delete,) = kubectl(lifecycle.removed_calls, f"delete node {REMOVED}")
    (reset,) = kubeadm(lifecycle.removed_calls, "reset")
    assert drain.stamp < delete.stamp < reset.stamp
    assert REMOVED not in lifecycle.state_after_removal["nodes"]
    left = lifecycle.after_removal[REMOVED].split("\n")
    assert [line for line in left if line.startswith("present")] == []
    assert left[-4:-1] == ["inactive", "0", "1"]  # no kubelet, no KUBE- rule, ours kept
    assert lifecycle.node_py.result.returncode == 0, lifecycle.node_py.failure()
    assert lifecycle.node_py.totals()["success"] == 0, lifecycle.node_py.output[-5000:]


def test_the_removed_worker_joins_again(lifecycle):
    assert lifecycle.rejoined.result.returncode == 0, lifecycle.rejoined.failure()
    assert [c.node for c in kubeadm(lifecycle.rejoined_calls, "join")] == [REMOVED]


# --- reset --------------------------------------------------------------------------------


def test_reset_needs_its_confirmation(lifecycle):
    assert lifecycle.refused_reset.result.returncode != 0
    assert "RESET=yes pyinfra inventory.py deploys/reset.py" in lifecycle.refused_reset.output


def test_reset_leaves_every_host_a_prepared_node(lifecycle):
    assert lifecycle.reset.result.returncode == 0, lifecycle.reset.failure()
    for name, left in lifecycle.after_reset.items():
        assert "present" not in left, (name, left)
        assert left.split("\n")[0] == "inactive", (name, left)
    assert lifecycle.state_after_reset["cluster"] is None
