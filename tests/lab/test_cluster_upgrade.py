"""The upgrade rehearsal: the real `pyinfra -y inventory.py deploys/cluster.py` builds the
lab's cluster (testlab1 the control plane, testlab2 and testlab3 workers) at 1.33.7, the
cluster file is changed to 1.34.3, and the same command runs again, then once more.

The stand-in repository serves both minors (each in its own /v1.NN/deb/ repository, as
pkgs.k8s.io); the stand-in kubeadm answers `upgrade plan|apply|node` with kubeadm's version
policy, the stand-in crictl stands in for the etcd container whose etcdctl saves the
snapshot, and the stand-in kubelet reports its package's version once restarted
(tests/lab/stand_in_tools.py, stand_in_control_plane.py: test doubles). 1.33 -> 1.34 moves
the pause tag (3.10 -> 3.10.1), which containerd really loads. What the lab cannot run: a
real control plane (static pods, etcd), real evictions and a real etcd snapshot; the
order of the steps, the packages, holds and containerd's configuration are real.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
import yaml

from deploys import versions
from deploys.kubernetes.upgrade import SNAPSHOT_DIR
from deploys.runtime.verify import loaded_sandbox_image
from tests.lab.api import Lab
from tests.lab.fixture import LAB_NODES, LAB_SUITES
from tests.lab.rehearsal import Call, calls, forget
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

OLD, NEW = "1.33.7", "1.34.3"
FIRST, WORKERS = LAB_NODES[0], LAB_NODES[1:]


@dataclass(frozen=True)
class Upgrade:
    lab: Lab
    cold: Run
    upgrade: Run
    again: Run
    calls: list[Call]  # those of the upgrade run only


@pytest.fixture(scope="module")
def upgraded(lab) -> Upgrade:
    forget(lab)
    both = Lab.up(nodes=len(LAB_NODES), suites=LAB_SUITES, kubernetes_versions=[OLD, NEW])
    try:
        forget(both)
        cold = pyinfra("deploys/cluster.py", both.inventory_path)
        assert cold.result.returncode == 0, cold.failure()
        before = len(calls(both))
        document = yaml.safe_load(both.inventory_path.read_text())
        document["settings"]["kubernetes_version"] = NEW
        changed = both.inventory_path.with_name("cluster-upgraded.yaml")
        descriptor = os.open(changed, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            yaml.safe_dump(document, handle, sort_keys=False)
        upgrade = pyinfra("deploys/cluster.py", changed)
        upgrade_calls = calls(both)[before:]
        again = pyinfra("deploys/cluster.py", changed)
        yield Upgrade(both, cold, upgrade, again, upgrade_calls)
    finally:
        forget(Lab.load())
        Path(Lab.load().inventory_path.with_name("cluster-upgraded.yaml")).unlink(missing_ok=True)
        Lab.up(nodes=len(LAB_NODES), suites=LAB_SUITES)  # the session's shape and release


def test_the_upgrade_run_succeeds_and_prints_its_plan_first(upgraded):
    run = upgraded.upgrade
    assert run.result.returncode == 0, run.failure()
    plan = run.output.index(f"upgrade plan: Kubernetes {OLD} -> {NEW}")
    assert plan < run.output.index("kubeadm: upgrade control plane")
    for name in LAB_NODES:
        assert f"{name}: drain, kubelet and kubectl {NEW}-1.1" in run.output


@pytest.mark.parametrize("name", LAB_NODES)
def test_every_node_has_the_new_packages_held(upgraded, name):
    status = upgraded.lab.ssh(name, "dpkg -s kubeadm kubelet kubectl").stdout
    found = [line.split(": ", 1)[1] for line in status.splitlines() if line.startswith("Version:")]
    assert found == [f"{NEW}-1.1"] * 3
    held = upgraded.lab.ssh(name, "apt-mark showhold").stdout.split()
    assert {"kubeadm", "kubelet", "kubectl"} <= set(held)


@pytest.mark.parametrize("name", LAB_NODES)
def test_containerd_loads_the_new_minors_sandbox_image(upgraded, name):
    dump = tomllib.loads(upgraded.lab.ssh(name, "containerd config dump").stdout)
    loaded = loaded_sandbox_image(dump)
    assert loaded.endswith(f"/pause:{versions.pause_tag(NEW)}"), loaded
    assert versions.pause_tag(NEW) != versions.pause_tag(OLD)


def test_apply_on_the_first_control_plane_before_any_upgrade_node(upgraded):
    upgrades = [c for c in upgraded.calls if c.tool == "kubeadm" and c.words.startswith("upgrade")]
    applies = [c for c in upgrades if c.words.startswith("upgrade apply")]
    assert [c.node for c in applies] == [FIRST]
    assert applies[0].words == f"upgrade apply v{NEW}"
    nodes = [c for c in upgrades if c.words == "upgrade node"]
    assert sorted(c.node for c in nodes) == sorted(WORKERS)
    assert all(applies[0].stamp < c.stamp for c in nodes)


def _window(upgraded, name: str) -> tuple[str, str, str, str]:
    """When `name` was drained, its kubelet restarted, found Ready, uncordoned."""
    on_first = [c for c in upgraded.calls if c.node == FIRST and c.tool == "kubectl"]
    drained = next(c.stamp for c in on_first if c.words == f"drain {name}")
    ready = next(c.stamp for c in on_first if c.words == f"wait node/{name}")
    uncordoned = next(c.stamp for c in on_first if c.words == f"uncordon {name}")
    restarts = [
        c.stamp
        for c in upgraded.calls
        if c.node == name and c.tool == "kubelet" and drained < c.stamp < ready
    ]
    assert restarts, f"no kubelet start on {name} between its drain and Ready"
    return drained, restarts[-1], ready, uncordoned


@pytest.mark.parametrize("name", LAB_NODES)
def test_each_node_is_drained_before_its_kubelet_restarts_and_uncordoned_after_ready(
    upgraded, name
):
    drained, restarted, ready, uncordoned = _window(upgraded, name)
    assert drained < restarted < ready < uncordoned


def test_one_worker_at_a_time_after_the_control_plane(upgraded):
    windows = [_window(upgraded, name) for name in LAB_NODES]
    for earlier, later in zip(windows, windows[1:], strict=False):
        assert earlier[3] < later[0]  # uncordoned before the next is drained


def test_an_etcd_snapshot_was_kept_root_only(upgraded):
    listing = upgraded.lab.ssh(FIRST, f"stat -c %a {SNAPSHOT_DIR} && ls {SNAPSHOT_DIR}").stdout
    mode, *files = listing.split()
    assert mode == "700" and len(files) == 1 and files[0].startswith(f"etcd-before-v{NEW}-")


def test_the_third_run_changes_nothing(upgraded):
    totals = upgraded.again.totals()
    assert (totals["success"], totals["error"]) == (0, 0), upgraded.again.output[-5000:]
