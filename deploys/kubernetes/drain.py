"""Rolling node work: drain a node, touch its kubelet, wait until it is Ready, uncordon it;
control planes first, one at a time, then the workers in batches.

The one primitive day-2 work uses whenever a node's kubelet is touched (an upgrade, a
reconfigured kubelet). kubectl runs on the first control plane as root with the admin
kubeconfig kubeadm wrote, the way the rest of the deploy runs it.

API (stable; other deploys build on it):

    roll(ctx, reason=..., pending=..., touch=..., batch=1, version="")

  Called by every host, in the same place of the same @deploy (an entry file's concern).
  `pending`: this node needs the work (decided from the node's own facts by the caller).
  `touch()`: called while this node's operation is prepared, only when the node is
  pending; returns the commands (pyinfra StringCommands or FileUploadCommands, run on the
  node, in order) that change its kubelet: package pins, a configuration file, the restart.
  `reason`: a few words ("upgrade to 1.35.9"), kept on the node while it is drained and
  named in every message. `batch`: workers per batch (control planes always go alone).
  `version`: the kubelet version ("1.35.9") the node must report before it is uncordoned;
  "" for any.

    batches(nodes, batch) -> [(node name, ...), ...]       the order, pure
    blocking_pods(kubectl_error) -> ["namespace/pod", ...]   from a failed drain, pure
    NodeStates                                               the fact roll() reads

Per node, in one operation, "kubernetes: roll node" (so nothing else of this node runs
between the steps, and a failed step stops this node there):

1. On the first control plane, `kubectl get nodes`: if a node outside this batch still
   carries the drain annotation (an earlier batch failed in this run), stop: one node (or
   batch) at a time.
2. Annotate the node `pyinfra-kubeadm/drain=<reason>`, then `kubectl drain` it: evictions,
   which respect PodDisruptionBudgets, DaemonSet pods ignored, emptyDir data deleted,
   bounded by `drain_timeout`. On failure the node stays cordoned and annotated and the
   message names the pods that blocked it.
3. The node's `touch()` commands.
4. `kubectl wait` until the node is Ready (and reports `version`), bounded by
   `ready_timeout`; `kubectl uncordon`; the annotation removed last.

A single-node cluster is not drained (its pods have nowhere to go): steps 1, 2 and the
uncordon are skipped.

Resumable: the annotation is the state a killed run leaves. A node that carries it is
rolled again by the next run even when `pending` is now false (its touch happened): it is
not drained again, only waited for and uncordoned. Every step is idempotent (draining a
cordoned node, uncordoning a schedulable one, removing an absent annotation).

Batches run in order because each batch's operation is one operation called in a
`host.loop`: pyinfra orders operations by the line they are called from, then by loop
position, so one operation per iteration keeps the iterations apart; several operations
per iteration would interleave (every iteration's first operation before any second one).

kubectl drain's messages (kubectl's pkg/drain/drain.go, upstream kubernetes/kubectl): a
blocked eviction prints `error when evicting pods/"NAME" -n "NAMESPACE" (will retry after
5s): Cannot evict pod as it would violate the pod's disruption budget.` and, at the
`--timeout`, fails with `error when evicting pods/"NAME" -n "NAMESPACE": global timeout
reached: 5s`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

from pyinfra import host
from pyinfra.api import FactBase, FunctionCommand, OperationError, StringCommand, operation

from deploys import secret
from deploys.context import NodeContext
from deploys.failure import report
from deploys.kubernetes.kubeadm_config import ADMIN_KUBECONFIG, kubectl
from deploys.settings import Node

__all__ = ["ANNOTATION", "NodeStates", "batches", "blocking_pods", "roll"]

# Kept on a node from before its drain until after its uncordon: what it is drained for.
ANNOTATION = "pyinfra-kubeadm/drain"
# pods/"web-5d8f" -n "shop" (kubectl 1.23 and later); pod "web-5d8f" (earlier kubectl).
_BLOCKED = re.compile(r'pods/"([^"]+)" -n "([^"]+)"|pod "([^"]+)"')


class NodeStates(FactBase):
    """On the first control plane: {node name: {"unschedulable": bool, "drain": the
    annotation's value or "", "ready": bool, "kubelet": "v1.35.9"}} as the API server
    reports them; {} while there is no API server to ask (a cluster not built yet)."""

    def command(self) -> str:
        return f"kubectl --kubeconfig {ADMIN_KUBECONFIG} get nodes -o json 2>/dev/null || true"

    def process(self, output):
        try:
            document = json.loads("\n".join(output) or "{}")
        except ValueError:
            return {}
        return {
            item["metadata"]["name"]: node_state(item)
            for item in document.get("items", [])
            if item.get("kind", "Node") == "Node"
        }


def node_state(item: dict) -> dict:
    """What roll() needs of one Node object."""
    conditions = item.get("status", {}).get("conditions") or []
    return {
        "unschedulable": bool(item.get("spec", {}).get("unschedulable")),
        "drain": (item["metadata"].get("annotations") or {}).get(ANNOTATION, ""),
        "ready": any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        "kubelet": item.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
    }


def batches(nodes: Iterable[Node], batch: int = 1) -> list[tuple[str, ...]]:
    """The order nodes are rolled in: each control plane alone, in cluster-file order (the
    first control plane first), then the workers, `batch` at a time."""
    nodes = list(nodes)
    if batch < 1:
        raise ValueError(f"batch {batch} is not a positive number of nodes")
    workers = [n.name for n in nodes if not n.is_control_plane]
    return [(n.name,) for n in nodes if n.is_control_plane] + [
        tuple(workers[i : i + batch]) for i in range(0, len(workers), batch)
    ]


def blocking_pods(error: str) -> list[str]:
    """The pods ("namespace/name", or "name" from an old kubectl) a failed `kubectl drain`
    could not evict, each once, in order."""
    found = [f"{m[2]}/{m[1]}" if m[1] else m[3] for m in _BLOCKED.finditer(error)]
    return list(dict.fromkeys(found))


def drain_refusal(node: str, reason: str, timeout: int, error: str) -> str:
    """The message of a drain that failed: the pods that blocked it and what to do."""
    pods = blocking_pods(error)
    what = (
        f"these pods could not be evicted: {', '.join(pods)} (a PodDisruptionBudget allows no "
        "disruption now, or they did not stop in time)"
        if pods
        else f"kubectl said: {error.strip().splitlines()[-1] if error.strip() else 'nothing'}"
    )
    return (
        f"{node} could not be drained for the {reason} within drain_timeout ({timeout} s): "
        f"{what}. {node} stays cordoned and the run stops there. Make room (scale the "
        "workload, relax its PodDisruptionBudget, or move the pods), then run the deploy "
        f"again: it resumes with {node}."
    )


def unfinished_refusal(node: str, others: dict[str, str]) -> str:
    listed = ", ".join(f"{name} (drained for the {why})" for name, why in others.items())
    return (
        f"{node} is not drained while {listed} is not finished: nodes are drained one at a "
        "time (or one batch), and the earlier one failed (its message is above). Fix it, "
        "then run the deploy again: it finishes that node first."
    )


def _on_first(node_host, first: str, command: StringCommand, what: str) -> str:
    """Output of `command` run on the first control plane (never printed)."""
    return secret.output(command, what, node_host.inventory.get_host(first))


def _drain(state, host, first: str, node: str, reason: str, batch, timeout: int) -> bool:
    # pyinfra passes state and host to a FunctionCommand's function by these names.
    try:
        listing = _on_first(host, first, kubectl("get", "nodes", "-o", "json"), "reading the nodes")
    except OperationError as exc:
        return report(host, str(exc))
    others = {
        name: status["drain"]
        for name, status in NodeStates().process(listing.splitlines()).items()
        if status["drain"] and name not in batch
    }
    if others:
        return report(host, unfinished_refusal(node, others))
    try:
        _on_first(
            host,
            first,
            kubectl("annotate", "node", node, f"{ANNOTATION}={reason}", "--overwrite"),
            f"marking {node} drained",
        )
        _on_first(host, first, drain_command(node, timeout), f"draining {node}")
    except OperationError as exc:
        return report(host, drain_refusal(node, reason, timeout, str(exc)))
    host.log(f"{node} drained for the {reason}")
    return True


def _finish(state, host, first, node, version: str, timeout: int, alone: bool) -> bool:
    steps = [(wait_command(node, version, timeout), f"waiting until {node} is Ready")]
    if not alone:
        steps += [
            (kubectl("uncordon", node), f"uncordoning {node}"),
            (kubectl("annotate", "node", node, f"{ANNOTATION}-"), f"unmarking {node}"),
        ]
    for command, what in steps:
        try:
            _on_first(host, first, command, what)
        except OperationError as exc:
            return report(host, f"{exc}; {node} stays cordoned: run the deploy again")
    return True


def drain_command(node: str, timeout: int) -> StringCommand:
    """Evict every pod but DaemonSet and static ones (evictions honour PodDisruptionBudgets;
    no --force, no --disable-eviction), within `timeout` seconds."""
    return kubectl(
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--timeout={timeout}s",
    )


def wait_command(node: str, version: str, timeout: int) -> StringCommand:
    """Wait until the node is Ready and, if `version` is given, its kubelet reports it."""
    ready = kubectl("wait", "--for=condition=Ready", f"node/{node}", f"--timeout={timeout}s")
    if not version:
        return ready
    at = kubectl(
        "wait",
        f"--for=jsonpath={{.status.nodeInfo.kubeletVersion}}=v{version.lstrip('v')}",
        f"node/{node}",
        f"--timeout={timeout}s",
    )
    return StringCommand(ready, "&&", at)


@operation()
def roll_node(
    node: str,
    first: str,
    reason: str,
    batch: list[str],
    commands: list,
    drain: bool,
    alone: bool,
    version: str,
    drain_timeout: int,
    ready_timeout: int,
):
    """Drain the node (from the first control plane), run `commands` on it, wait until it
    is Ready, uncordon it.

    + node: the node's name
    + first: inventory name of the first control plane, where kubectl runs
    + reason: what the node is drained for
    + batch: the nodes rolled together with this one
    + commands: what changes the node's kubelet
    + drain: drain it first (False when it was drained by an earlier run)
    + alone: a single-node cluster: never drained or uncordoned
    + version: kubelet version to wait for ("" for any)
    + drain_timeout: seconds the drain may take
    + ready_timeout: seconds each wait for Ready may take
    """
    if drain and not alone:
        yield FunctionCommand(_drain, (first, node, reason, batch, drain_timeout), {})
    yield from commands
    yield FunctionCommand(_finish, (first, node, version, ready_timeout, alone), {})


def roll(
    ctx: NodeContext,
    *,
    reason: str,
    pending: bool,
    touch: Callable[[], list],
    batch: int = 1,
    version: str = "",
) -> None:
    """Roll this node in its turn (see the module's docstring); nothing when it is neither
    pending nor left drained by an earlier run."""
    first = ctx.first_control_plane.name
    states = host.inventory.get_host(first).get_fact(NodeStates) or {}
    left = bool(states.get(ctx.node.name, {}).get("drain"))
    s = ctx.settings
    for group in host.loop(batches(ctx.members, batch)):
        if ctx.node.name not in group or not (pending or left):
            continue
        roll_node(
            name="kubernetes: roll node",
            node=ctx.node.name,
            first=first,
            reason=reason,
            batch=list(group),
            commands=touch() if pending else [],
            drain=pending,
            alone=len(ctx.members) == 1,
            version=version,
            drain_timeout=s.drain_timeout,
            ready_timeout=s.ready_timeout,
        )
