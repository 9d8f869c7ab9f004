"""Pure parts of the rolling drain (deploys/kubernetes/drain.py): the order nodes go in, the
pods a failed drain names, what the NodeStates fact makes of `kubectl get nodes -o json`,
the kubectl commands."""

from __future__ import annotations

import json

import pytest

from deploys.kubernetes import drain
from deploys.settings import Node

CP = [Node(f"cp{i}", f"10.0.0.{10 + i}", ("control_plane",)) for i in (1, 2, 3)]
WORKERS = [Node(f"w{i}", f"10.0.0.{20 + i}", ("worker",)) for i in (1, 2, 3, 4, 5)]
BOTH = Node("both", "10.0.0.30", ("control_plane", "worker"))


@pytest.mark.parametrize(
    ("nodes", "batch", "expected"),
    [
        (CP[:1], 1, [("cp1",)]),
        (CP + WORKERS[:2], 1, [("cp1",), ("cp2",), ("cp3",), ("w1",), ("w2",)]),
        (CP[:1] + WORKERS, 2, [("cp1",), ("w1", "w2"), ("w3", "w4"), ("w5",)]),
        (CP[:1] + WORKERS[:2], 10, [("cp1",), ("w1", "w2")]),
        # control planes first whatever the file's order; a control plane that is also a
        # worker goes alone, as a control plane
        ([WORKERS[0], CP[1], BOTH, CP[0]], 3, [("cp2",), ("both",), ("cp1",), ("w1",)]),
    ],
)
def test_control_planes_alone_then_workers_in_batches(nodes, batch, expected):
    assert drain.batches(nodes, batch) == expected


@pytest.mark.parametrize("batch", [0, -1])
def test_a_batch_must_hold_a_node(batch):
    with pytest.raises(ValueError, match="positive"):
        drain.batches(CP, batch)


# kubectl 1.35's failure at --timeout while a PodDisruptionBudget blocks two pods
# (pkg/drain/drain.go's messages).
PDB_TIMEOUT = (
    'error when evicting pods/"web-7d9c-abcde" -n "shop" (will retry after 5s): Cannot evict '
    "pod as it would violate the pod's disruption budget.\n"
    'error when evicting pods/"db-0" -n "data" (will retry after 5s): Cannot evict pod as it '
    "would violate the pod's disruption budget.\n"
    'error: unable to drain node "w1" due to error: [error when evicting pods/"web-7d9c-abcde" '
    '-n "shop": global timeout reached: 300s, error when evicting pods/"db-0" -n "data": '
    "global timeout reached: 300s], continuing command...\n"
)


@pytest.mark.parametrize(
    ("error", "pods"),
    [
        (PDB_TIMEOUT, ["shop/web-7d9c-abcde", "data/db-0"]),
        ('error when evicting pod "web-1": global timeout reached: 30s', ["web-1"]),
        ('Error from server (NotFound): nodes "w9" not found', []),
        ("", []),
    ],
)
def test_blocking_pods_are_read_from_kubectls_error(error, pods):
    assert drain.blocking_pods(error) == pods


def test_a_failed_drain_names_the_pods_the_timeout_and_how_to_resume():
    message = drain.drain_refusal("w1", "upgrade to 1.35.9", 300, PDB_TIMEOUT)
    for part in ("shop/web-7d9c-abcde", "data/db-0", "300 s", "stays cordoned", "resumes"):
        assert part in message
    other = drain.drain_refusal("w1", "upgrade", 5, "error: the server is gone\n")
    assert "the server is gone" in other


def node(name, unschedulable=False, annotation=None, ready=True, version="v1.35.9"):
    metadata = {"name": name, "annotations": {"other": "x"}}
    if annotation is not None:
        metadata["annotations"][drain.ANNOTATION] = annotation
    return {
        "kind": "Node",
        "metadata": metadata,
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": version},
        },
    }


def test_node_states_read_cordons_annotations_readiness_and_versions():
    listing = {
        "kind": "List",
        "items": [node("cp1"), node("w1", True, "upgrade", False, "v1.34.3")],
    }
    states = drain.NodeStates().process(json.dumps(listing, indent=2).splitlines())
    assert states == {
        "cp1": {"unschedulable": False, "drain": "", "ready": True, "kubelet": "v1.35.9"},
        "w1": {"unschedulable": True, "drain": "upgrade", "ready": False, "kubelet": "v1.34.3"},
    }


@pytest.mark.parametrize("output", [[], ["not json"], ["{"]])
def test_node_states_without_an_api_server_are_empty(output):
    assert drain.NodeStates().process(output) == {}


def test_the_drain_respects_budgets_and_is_bounded():
    command = drain.drain_command("w1", 300).get_raw_value()
    assert command == (
        "kubectl --kubeconfig /etc/kubernetes/admin.conf drain w1 --ignore-daemonsets "
        "--delete-emptydir-data --timeout=300s"
    )
    assert "--force" not in command and "--disable-eviction" not in command


def test_the_wait_checks_the_kubelet_version_only_when_asked():
    assert "jsonpath" not in drain.wait_command("w1", "", 600).get_raw_value()
    both = drain.wait_command("w1", "1.35.9", 600).get_raw_value()
    assert "--for=condition=Ready node/w1 --timeout=600s &&" in both
    assert "'--for=jsonpath={.status.nodeInfo.kubeletVersion}=v1.35.9'" in both
