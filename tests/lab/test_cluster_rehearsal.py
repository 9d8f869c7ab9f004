"""The rehearsal: the real `pyinfra -y inventory.py deploys/cluster.py`, over SSH, on the
test lab's nodes (testlab1 the control plane, testlab2 and testlab3 workers, as the cluster
file `Lab.up` writes them), against the stand-in Kubernetes packages and control plane and
the stand-in Kuboard server (test doubles: tests/lab/k8s_repo.py,
tests/lab/stand_in_control_plane.py, tests/stand_ins/kuboard_server.py).

Everything the deploy does to a node is real (apt, systemd, files, SSH); only what happens
inside Kubernetes is scripted. What the deploy asked for is read from each node's calls log
(/var/log/pyinfra-kubeadm-stand-in/calls.log), over SSH.

The cluster file is used exactly as `python -m tests.lab up` writes it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest
import yaml

from deploys.kubernetes.bootstrap import CREDENTIALS_DIR, KUBELET_CONF
from tests.lab import config
from tests.lab.fixture import LAB_NODES
from tests.lab.rehearsal import Call, calls, forget
from tests.lab.runs import PYINFRA, Run, pyinfra
from tests.stand_ins.kuboard_server import AGENT_KEY

pytestmark = pytest.mark.lab

FIRST, WORKERS = LAB_NODES[0], LAB_NODES[1:]
FLANNEL_APPLY = "apply -f /etc/kubernetes/addons/flannel.yaml"
KUBOARD_APPLY = "apply -f /etc/kubernetes/addons/kuboard-agent.yaml"


@dataclass(frozen=True)
class Rehearsal:
    cold: Run
    converged: Run
    cold_calls: list[Call]
    converged_calls: list[Call]  # those of the second run only
    state: dict  # the stand-in control plane's, after both runs
    inventory: dict


@pytest.fixture(scope="module")
def rehearsal(lab) -> Rehearsal:
    forget(lab)
    cluster_file = lab.inventory_path
    inventory = yaml.safe_load(cluster_file.read_text())
    cold = pyinfra("deploys/cluster.py", cluster_file)
    cold_calls = calls(lab)
    converged = pyinfra("deploys/cluster.py", cluster_file)
    converged_calls = calls(lab)[len(cold_calls) :]
    yield Rehearsal(cold, converged, cold_calls, converged_calls, lab.control_plane_state(),
                    inventory)  # fmt: skip
    forget(lab)


def test_the_lab_cluster_file_has_one_control_plane_and_two_workers(rehearsal):
    roles = {h["name"]: h["roles"] for h in rehearsal.inventory["hosts"]}
    assert roles == {FIRST: ["control_plane"], **{w: ["worker"] for w in WORKERS}}


def test_cold_run_succeeds(rehearsal):
    assert rehearsal.cold.result.returncode == 0, rehearsal.cold.output[-5000:]
    totals = rehearsal.cold.totals()
    assert totals["success"] > 0 and totals["error"] == 0


def test_cold_run_initializes_once_then_joins_each_worker_once(rehearsal):
    mutating = [(c.node, c.tool, c.args[0]) for c in rehearsal.cold_calls
                if c.tool == "kubeadm" and c.args[:1] in (["init"], ["join"])]  # fmt: skip
    assert mutating[0] == (FIRST, "kubeadm", "init")
    assert sorted(mutating[1:]) == [(w, "kubeadm", "join") for w in WORKERS]


def test_join_credentials_are_made_after_init_and_removed_after_the_joins(rehearsal):
    first = [c for c in rehearsal.cold_calls if c.node == FIRST and c.tool == "kubeadm"]
    order = [c.line for c in first if c.args[:1] in (["init"], ["token"])]
    assert order[0].startswith("init --config") and order[1].startswith("token create")
    assert order[2].startswith("token delete")
    joins = [c.stamp for c in rehearsal.cold_calls if c.args[:1] == ["join"]]
    created, deleted = (next(c.stamp for c in first if c.line.startswith(o)) for o in
                        ("token create", "token delete"))  # fmt: skip
    assert all(created < stamp < deleted for stamp in joins)


@pytest.mark.parametrize("apply", [FLANNEL_APPLY, KUBOARD_APPLY])
def test_addons_are_applied_once_on_the_first_control_plane(rehearsal, apply):
    every = rehearsal.cold_calls + rehearsal.converged_calls
    applied = [c.node for c in every if c.tool == "kubectl" and apply in c.line]
    assert applied == [FIRST]


def test_kuboard_agent_came_from_the_stand_in_server(rehearsal):
    objects = rehearsal.state["objects"]
    assert any(o["kind"] == "Deployment" and o["metadata"]["namespace"] == "kuboard"
               for o in objects.values())  # fmt: skip


def test_every_node_is_ready_in_the_stand_in_control_plane(rehearsal):
    assert rehearsal.state["ready"] == {name: True for name in LAB_NODES}


def test_final_summary_lists_every_node(rehearsal):
    output = rehearsal.cold.output
    assert f"cluster ready: {len(LAB_NODES)} nodes" in output, output[-3000:]
    version = rehearsal.inventory["settings"]["kubernetes_version"]
    for name in LAB_NODES:
        row = re.search(rf"^.*\b{name}\s+\S+\s+(\S+)\s+(v\S+)\s+(containerd://\S+)", output, re.M)
        assert row, f"no summary row for {name}"
        assert row[2] == f"v{version}"
        assert row[1] == ("control-plane" if name == FIRST else "worker")


def test_second_run_changes_nothing(rehearsal):
    assert rehearsal.converged.result.returncode == 0, rehearsal.converged.output[-5000:]
    totals = rehearsal.converged.totals()
    assert (totals["success"], totals["error"]) == (0, 0), rehearsal.converged.output[-5000:]


def test_second_run_only_reads_the_cluster(rehearsal):
    assert rehearsal.converged_calls, "the second run called no stand-in at all"
    assert any(c.tool == "kubectl" and "get" in c.args for c in rehearsal.converged_calls)
    assert [c.line for c in rehearsal.converged_calls if c.mutating] == []


def test_no_secret_reaches_pyinfra_output_or_the_calls_logs(rehearsal):
    issued = rehearsal.state.get("issued_secrets", [])
    assert issued, "the stand-in issued no bootstrap token"
    secrets = [*issued, rehearsal.inventory["settings"]["kuboard_agent_token"], AGENT_KEY]
    logged = "\n".join(c.line for c in rehearsal.cold_calls + rehearsal.converged_calls)
    for text in (rehearsal.cold.output, rehearsal.converged.output, logged):
        assert not [s for s in secrets if s in text]


@pytest.mark.parametrize("name", LAB_NODES)
def test_no_secret_in_a_file_others_can_read(lab, rehearsal, name):
    secrets = [*rehearsal.state["issued_secrets"], AGENT_KEY,
               rehearsal.inventory["settings"]["kuboard_agent_token"]]  # fmt: skip
    patterns = " ".join(f"-e {shlex.quote(s)}" for s in secrets)
    readable = (
        "find /etc /root /home /var /tmp /run -xdev -type f -perm -o=r -print0 2>/dev/null"
        f" | xargs -0 -r grep -lF {patterns} 2>/dev/null; true"
    )
    assert lab.ssh(name, readable).stdout.split() == []


@pytest.mark.parametrize("name", LAB_NODES)
def test_kubelet_service_runs_on_every_node(lab, rehearsal, name):
    assert lab.ssh(name, "systemctl is-active kubelet").stdout.strip() == "active"
    assert lab.ssh(name, "systemctl is-enabled kubelet").stdout.strip() == "enabled"


def test_a_worker_without_kubelet_conf_is_reset_and_rejoins(lab, rehearsal):
    """kubelet.conf removed on a worker of the converged cluster (its CA certificate and
    running kubelet left, which kubeadm join refuses, and its Node still Ready): the next run
    resets it, deletes its Node on the first control plane, then joins it; the run after
    that changes nothing."""
    worker = WORKERS[0]
    lab.ssh(worker, f"rm {KUBELET_CONF}")
    before = len(calls(lab))
    rerun = pyinfra("deploys/cluster.py", lab.inventory_path)
    assert rerun.result.returncode == 0, rerun.failure()
    mutating = [(c.node, c.words) for c in calls(lab)[before:] if c.mutating]
    assert [(node, words.split(" ", 2)[:2]) for node, words in mutating] == [
        (worker, ["reset"]),
        (FIRST, ["delete", "node"]),
        (FIRST, ["token", "create"]),
        (worker, ["join"]),
        (FIRST, ["token", "delete"]),
    ]
    assert mutating[1][1] == f"delete node {worker}"
    assert lab.control_plane_state()["ready"] == {name: True for name in LAB_NODES}
    assert lab.ssh(worker, f"test -s {KUBELET_CONF}", check=False).returncode == 0

    before = len(calls(lab))
    again = pyinfra("deploys/cluster.py", lab.inventory_path)
    assert again.result.returncode == 0, again.failure()
    assert (again.totals()["success"], again.totals()["error"]) == (0, 0), again.output[-5000:]
    assert [c.line for c in calls(lab)[before:] if c.mutating] == []


def test_a_run_killed_during_the_joins_is_completed_by_the_next(lab, rehearsal):
    """Killed (like Ctrl-C twice, or a lost terminal) once the first worker has joined and
    before the join credentials are removed; the next run joins the rest, and no node
    joins twice. Runs last in the module: it rebuilds the cluster from nothing."""
    forget(lab)
    before = len(calls(lab))
    process = subprocess.Popen(
        [str(PYINFRA), "-y", "inventory.py", "deploys/cluster.py"],
        cwd=config.REPO_ROOT,
        env={**os.environ, "CLUSTER": str(lab.inventory_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900
        while process.poll() is None and time.monotonic() < deadline:
            if set(WORKERS) & set(lab.control_plane_state()["nodes"]):
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed = calls(lab)[before:]
    assert not [c for c in killed if c.words.startswith("token delete")], "killed too late"
    assert lab.ssh(FIRST, f"test -d {CREDENTIALS_DIR}", check=False).returncode == 0
    joined = {name for name in WORKERS if name in lab.control_plane_state()["nodes"]}
    assert joined, "killed before any join"

    rerun = pyinfra("deploys/cluster.py", lab.inventory_path)
    assert rerun.result.returncode == 0, rerun.output[-5000:]
    after = calls(lab)[before:]
    joins = sorted(c.node for c in after if c.tool == "kubeadm" and c.words.startswith("join"))
    assert joins == sorted(WORKERS)  # each once, across both runs
    assert lab.control_plane_state()["ready"] == {name: True for name in LAB_NODES}
    assert lab.ssh(FIRST, f"test -e {CREDENTIALS_DIR}", check=False).returncode == 1
