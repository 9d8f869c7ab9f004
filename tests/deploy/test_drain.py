"""The rolling drain (deploys/kubernetes/drain.roll) through pyinfra against recorded hosts:
the order nodes are drained, touched and uncordoned in, a drain blocked by a
PodDisruptionBudget, the run after it, a single-node cluster.

kubectl answers from a small test double of the API server's nodes (`Api` below) that
the commands run on the first control plane read and change; the touch is a kubelet
restart on the node. What kubectl drain really evicts is proven against the stand-in
control plane (tests/unit/test_stand_in_control_plane.py) and in the lab.
"""

from __future__ import annotations

import json
import re

import pytest
from pyinfra import host
from pyinfra.api import StringCommand, deploy

from deploys.context import NodeContext
from deploys.kubernetes import drain
from tests.deploy import harness

RESTART = "systemctl restart kubelet"
HA = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {"name": "cp2", "address": "10.0.0.12", "roles": ["control_plane"]},
        {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
        {"name": "w2", "address": "10.0.0.22", "roles": ["worker"]},
        {"name": "w3", "address": "10.0.0.23", "roles": ["worker"]},
    ],
    "settings": {"control_plane_endpoint": "10.0.0.10:6443", "drain_timeout": 42},
}
SINGLE = {"hosts": [{"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]}]}
PDB_ERROR = (
    'error when evicting pods/"web-1" -n "shop" (will retry after 5s): Cannot evict pod as it '
    "would violate the pod's disruption budget.\n"
    'error: unable to drain node "w1" due to error: [error when evicting pods/"web-1" -n '
    '"shop": global timeout reached: 42s], continuing command...\n'
)


class Api:
    """The nodes as the API server keeps them, and every call in order (node, what)."""

    def __init__(self, names, drained=(), blocked=()):
        self.drained = {n: "upgrade" for n in drained}
        self.cordoned = set(drained)
        self.blocked = set(blocked)
        self.names = names
        self.calls: list[str] = []
        self.commands: list[str] = []  # every kubectl command the calls ran

    def listing(self, command=""):
        items = [
            {
                "kind": "Node",
                "metadata": {"name": n, "annotations": {drain.ANNOTATION: self.drained[n]}}
                if n in self.drained
                else {"name": n},
                "spec": {"unschedulable": n in self.cordoned},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
            for n in self.names
        ]
        return json.dumps({"kind": "List", "items": items})

    def responses(self):
        def record(what, effect=None):
            def answer(command):
                self.commands.append(command)
                name = re.search(r"(?:node/| node | drain | uncordon )(\S+)", command)[1]
                self.calls.append(f"{what} {name}")
                if effect:
                    effect(name, command)
                return ""

            return answer

        def annotate(name, command):
            if command.rstrip().endswith("-"):
                self.drained.pop(name, None)
            else:
                self.drained[name] = "upgrade"

        blocked = "|".join(self.blocked) or "^$"
        return [
            (r"get nodes -o json", 0, self.listing),
            (rf"drain ({blocked}) ", 1, lambda c: self.cordoned.update(self.blocked) or PDB_ERROR),
            (r" drain ", 0, record("drain", lambda n, c: self.cordoned.add(n))),
            (r" annotate node ", 0, record("annotate", annotate)),
            (r" uncordon ", 0, record("uncordon", lambda n, c: self.cordoned.discard(n))),
            (r"wait --for=condition=Ready", 0, record("ready")),
            (RESTART, 0, lambda c: self.calls.append("restart") or ""),
        ]


def rolled(cluster, api, pending=("cp1", "cp2", "w1", "w2", "w3"), batch=1, **kwargs):
    @deploy("roll")
    def roll():
        ctx = NodeContext.of(host)

        def touch():
            return [StringCommand(RESTART)]

        drain.roll(
            ctx,
            reason="upgrade to 1.35.9",
            pending=ctx.node.name in pending,
            touch=touch,
            batch=batch,
            version="1.35.9",
        )

    states = drain.NodeStates().process(api.listing().splitlines())
    return harness.run(
        roll,
        cluster=cluster,
        host_facts={"cp1": {"deploys.kubernetes.drain.NodeStates": states}},
        responses=api.responses(),
        **kwargs,
    )


def steps(api) -> list[str]:
    """The calls, with each restart attributed to the node drained last."""
    out, current = [], None
    for call in api.calls:
        if call.startswith("annotate") and call.split()[1] != current:
            current = call.split()[1]
        out.append(f"restart {current}" if call == "restart" else call)
    return out


def test_one_node_at_a_time_control_planes_first():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"])
    result = rolled(HA, api)
    for name in ("cp1", "cp2", "w1", "w2", "w3"):
        assert result.op(name, "kubernetes: roll node").commands == [
            "call _drain",
            RESTART,
            "call _finish",
        ]
    expected = []
    for name in ("cp1", "cp2", "w1", "w2", "w3"):
        expected += [
            f"annotate {name}",
            f"drain {name}",
            f"restart {name}",
            f"ready {name}",
            f"uncordon {name}",
            f"annotate {name}",
        ]
    assert steps(api) == expected
    assert not api.cordoned and not api.drained
    drains = [c for c in api.commands if " drain " in c]
    assert all(
        c.endswith("--ignore-daemonsets --delete-emptydir-data --timeout=42s") for c in drains
    )
    waits = [c for c in api.commands if " wait " in c]
    assert all("kubeletVersion}=v1.35.9" in c and "--timeout=600s" in c for c in waits)


def test_workers_in_batches():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"])
    rolled(HA, api, batch=2)
    drains = [c for c in api.calls if c.startswith("drain")]
    assert drains == ["drain cp1", "drain cp2", "drain w1", "drain w2", "drain w3"]
    # w3 only after w1 and w2 (the harness runs one batch's hosts one after the other;
    # pyinfra runs them at once).
    position = {c: i for i, c in enumerate(api.calls)}
    assert position["uncordon w1"] < position["drain w3"]
    assert position["uncordon w2"] < position["drain w3"]


def test_a_node_of_the_same_batch_does_not_block_the_drain():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"], drained=["w2"])
    result = rolled(HA, api, pending=("w1", "w2"), batch=2)
    assert not result.failed("w1") and not result.failed("w2")
    api = Api(["cp1", "cp2", "w1", "w2", "w3"], drained=["w3"])
    result = rolled(HA, api, pending=("w1", "w2", "w3"), batch=2)
    assert result.failed("w1") and result.failed("w2")


def test_only_pending_nodes_are_rolled():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"])
    result = rolled(HA, api, pending=("w1",))
    assert [n for n in ("cp1", "cp2", "w1", "w2", "w3") if result.changed(n)] == ["w1"]
    assert api.calls == [
        "annotate w1",
        "drain w1",
        "restart",
        "ready w1",
        "uncordon w1",
        "annotate w1",
    ]


def test_nothing_to_do_is_no_operation():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"])
    result = rolled(HA, api, pending=())
    assert all(result.changed(n) == [] for n in ("cp1", "cp2", "w1", "w2", "w3"))
    assert api.calls == []


def test_a_blocked_drain_stops_the_run_and_names_the_pods_then_the_next_run_resumes():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"], blocked=["w1"])
    result = rolled(HA, api, pending=("w1", "w2", "w3"))
    (failed,) = result.failed("w1")
    assert failed.name == "kubernetes: roll node"
    assert "w1 could not be drained" in result.log and "shop/web-1" in result.log
    assert "within drain_timeout (42 s)" in result.log
    # the restart never ran on w1; w2 and w3 refuse to drain while w1 is unfinished
    assert "restart" not in api.calls
    assert result.failed("w2") and result.failed("w3")
    assert "w2 is not drained while w1 (drained for the upgrade)" in result.log
    assert api.drained == {"w1": "upgrade"} and api.cordoned == {"w1"}

    # The budget allows it now: the next run drains w1 again, then goes on.
    api.blocked.clear()
    api.calls.clear()
    again = rolled(HA, api, pending=("w1", "w2", "w3"))
    assert not any(again.failed(n) for n in ("w1", "w2", "w3"))
    assert [c for c in api.calls if c.startswith("drain")] == ["drain w1", "drain w2", "drain w3"]
    assert not api.cordoned and not api.drained


def test_a_node_left_drained_after_its_touch_is_only_uncordoned():
    api = Api(["cp1", "cp2", "w1", "w2", "w3"], drained=["w2"])
    result = rolled(HA, api, pending=())
    assert result.op("w2", "kubernetes: roll node").commands == ["call _finish"]
    assert result.changed("w1") == []
    assert api.calls == ["ready w2", "uncordon w2", "annotate w2"]
    assert not api.cordoned and not api.drained


KUBOARD_HOST = {"name": "kb1", "address": "10.0.0.5", "roles": ["kuboard"]}


@pytest.mark.parametrize(
    "cluster",
    [
        SINGLE,
        {"hosts": [*SINGLE["hosts"], KUBOARD_HOST], "settings": {"kuboard_cluster_name": "a"}},
    ],
    ids=["alone", "beside-a-kuboard-host"],
)
def test_a_single_node_is_never_drained(cluster):
    api = Api(["cp1"])
    result = rolled(cluster, api, pending=("cp1",))
    assert result.op("cp1", "kubernetes: roll node").commands == [RESTART, "call _finish"]
    assert api.calls == ["restart", "ready cp1"]
