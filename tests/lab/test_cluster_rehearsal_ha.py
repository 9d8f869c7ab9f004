"""The rehearsal with 3 control planes and 1 worker behind a control_plane_endpoint (the
stand-in control plane's address on the bridge, standing in for a load balancer), then a
fifth node added to the cluster file: the real `pyinfra -y inventory.py deploys/cluster.py`
against the stand-ins, as in test_cluster_rehearsal.py.

The test lab is grown for this module (`Lab.up(..., control_planes=3)`, which rewrites its
cluster file) and given back in its session shape afterwards.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
import yaml

from tests.lab import config
from tests.lab.api import Lab
from tests.lab.fixture import LAB_NODES, LAB_SUITES
from tests.lab.rehearsal import Call, calls, forget
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

CONTROL_PLANES = tuple(config.node_name(i) for i in (1, 2, 3))
WORKER = config.node_name(4)
ADDED = config.node_name(5)
FIRST = CONTROL_PLANES[0]
ENDPOINT = f"{config.BRIDGE_ADDRESS}:{config.STAND_IN_API_PORT}"


def epoch(stamp: str) -> float:
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.UTC).timestamp()


@dataclass(frozen=True)
class HA:
    inventory: dict
    cold: Run
    cold_calls: list[Call]
    registered: dict[str, float]  # node -> when its init or join registered it
    converged: Run
    converged_calls: list[Call]
    added: Run
    added_calls: list[Call]
    removed: Run  # deploys/remove.py --limit of the second control plane, at the end
    removed_calls: list[Call]
    removed_state: dict


@pytest.fixture(scope="module")
def ha(lab) -> HA:
    forget(lab)
    grown = Lab.up(nodes=4, suites=LAB_SUITES, control_planes=3)
    try:
        forget(grown)
        inventory = yaml.safe_load(grown.inventory_path.read_text())
        cold = pyinfra("deploys/cluster.py", grown.inventory_path)
        cold_calls = calls(grown)
        nodes = grown.control_plane_state()["nodes"]
        registered = {name: node["created"] for name, node in nodes.items()}
        converged = pyinfra("deploys/cluster.py", grown.inventory_path)
        converged_calls = calls(grown)[len(cold_calls) :]
        before = len(calls(grown))
        grown = Lab.up(nodes=5, suites=LAB_SUITES, control_planes=3)
        added = pyinfra("deploys/cluster.py", grown.inventory_path)
        added_calls = calls(grown)[before:]
        before = len(calls(grown))
        removed = pyinfra("deploys/remove.py", grown.inventory_path, limit=CONTROL_PLANES[1])
        removed_calls = calls(grown)[before:]
        yield HA(inventory, cold, cold_calls, registered, converged, converged_calls, added,
                 added_calls, removed, removed_calls, grown.control_plane_state())  # fmt: skip
    finally:
        forget(Lab.load())
        Lab.up(nodes=len(LAB_NODES), suites=LAB_SUITES)


def kubeadm(run_calls: list[Call], verb: str) -> list[Call]:
    return [c for c in run_calls if c.tool == "kubeadm" and c.words.startswith(verb)]


def test_the_cluster_file_has_three_control_planes_behind_an_endpoint(ha):
    roles = {h["name"]: h["roles"] for h in ha.inventory["hosts"]}
    assert roles == {**{cp: ["control_plane"] for cp in CONTROL_PLANES}, WORKER: ["worker"]}
    assert ha.inventory["settings"]["control_plane_endpoint"] == ENDPOINT


def test_cold_run_succeeds_and_summarises_every_node(ha):
    assert ha.cold.result.returncode == 0, ha.cold.output[-5000:]
    assert f"cluster ready: 4 nodes, API server {ENDPOINT}" in ha.cold.output
    for name in (*CONTROL_PLANES, WORKER):
        assert f"]   {name} " in ha.cold.output


def test_init_then_certificates_uploaded_once_before_the_control_planes_join(ha):
    (init,) = [c for c in kubeadm(ha.cold_calls, "init") if c.words == "init"]
    (upload,) = kubeadm(ha.cold_calls, "init phase upload-certs")
    joins = kubeadm(ha.cold_calls, "join")
    assert init.node == upload.node == FIRST
    assert init.stamp < upload.stamp < min(j.stamp for j in joins)


def test_control_planes_join_one_at_a_time_then_the_worker(ha):
    joins = kubeadm(ha.cold_calls, "join")
    order = [(j.node, j.stamp, ha.registered.get(j.node)) for j in joins]
    assert sorted(j.node for j in joins[:2]) == [*CONTROL_PLANES[1:]], order
    assert joins[2].node == WORKER, order
    for earlier, later in zip(joins, joins[1:], strict=False):
        # each join starts once the one before it has registered its node
        assert epoch(later.stamp) > ha.registered[earlier.node], order


def test_second_run_changes_nothing_and_only_reads(ha):
    assert ha.converged.result.returncode == 0, ha.converged.output[-5000:]
    assert ha.converged.totals()["success"] == 0, ha.converged.output[-5000:]
    assert [c.line for c in ha.converged_calls if c.mutating] == []


def test_an_added_worker_joins_alone(ha):
    assert ha.added.result.returncode == 0, ha.added.output[-5000:]
    assert [c.node for c in kubeadm(ha.added_calls, "join")] == [ADDED]
    assert kubeadm(ha.added_calls, "init") == []  # no init, no certificates uploaded
    changing = {c.node for c in ha.added_calls if c.mutating}
    assert changing == {FIRST, ADDED}  # the join credentials, the join
    assert "cluster ready: 5 nodes" in ha.added.output


def test_a_control_plane_leaves_etcd_before_its_node_is_deleted(ha):
    """deploys/remove.py on the second control plane of three (tests/deploy/test_removal.py
    for the refusals: the last control plane, a lost quorum)."""
    removed = CONTROL_PLANES[1]
    assert ha.removed.result.returncode == 0, ha.removed.failure()
    (member,) = kubeadm(ha.removed_calls, "reset phase remove-etcd-member")
    (delete,) = [c for c in ha.removed_calls if c.words == f"delete node {removed}"]
    resets = [c for c in kubeadm(ha.removed_calls, "reset") if c.words == "reset"]
    assert member.node == removed and delete.node == FIRST
    assert member.stamp < delete.stamp < resets[0].stamp and resets[0].node == removed
    assert removed not in ha.removed_state["cluster"]["etcd_members"]
    assert removed not in ha.removed_state["nodes"]
