"""The end of a cluster run: a bounded wait until the cluster is ready, then a summary.

Ready means every node of the inventory is registered and Ready, every node runs a ready
pod of the network plugin (deploys/addons/network.py), and every kube-system pod is Running
and ready. A ready cluster makes the wait
a no-op, so a converged run reports no change; otherwise the run waits (each wait bounded by
`ready_timeout`). A run that waited or changed the first control plane (init, join
credentials, add-ons) prints a short summary: nodes and roles, versions, where the
kubeconfig is, the Kuboard address, the nodes in the cluster that the cluster file does
not name (never deleted by a run: deploys/remove.py removes nodes). The cluster may be
ready before the wait (the Kuboard agent's wait needs the pod network), so the wait alone
does not decide. No secret is part
of the summary.
"""

from __future__ import annotations

import datetime
import json

from pyinfra import host
from pyinfra.api import FactBase, OperationError, StringCommand, deploy, operation
from pyinfra.operations import python

from deploys import kuboard, secret
from deploys.addons.kubectl import ADMIN_KUBECONFIG, kubectl
from deploys.addons.network import PLUGIN as NETWORK
from deploys.context import NodeContext
from deploys.kubernetes import certificates
from deploys.kubernetes.upgrade import SNAPSHOT_DIR

SYSTEM_NAMESPACE = "kube-system"
# The namespaces whose pods must run: the control plane's and kube-proxy's, and the
# network plugin's.
NAMESPACES = (SYSTEM_NAMESPACE, NETWORK.NAMESPACE)


class ClusterStatus(FactBase):
    """The nodes, and the pods of kube-system and the network plugin's namespace, as the
    API server reports them: {"kind": "List", "items": [...]}. None while kubectl, the admin
    kubeconfig or the API server is not there (the command never fails: a plan must not
    stop here)."""

    def command(self) -> str:
        kubectl = f"kubectl --kubeconfig {ADMIN_KUBECONFIG}"
        reads = [f"{kubectl} get nodes -o json"]
        reads += [f"{kubectl} -n {namespace} get pods -o json" for namespace in NAMESPACES]
        return f"( {' && '.join(reads)} ) 2>/dev/null || true"

    def process(self, output):
        text, decoder = "\n".join(output), json.JSONDecoder()
        documents, position = [], 0
        try:
            while text[position:].strip():
                position += len(text[position:]) - len(text[position:].lstrip())
                document, position = decoder.raw_decode(text, position)
                documents.append(document)
        except ValueError:
            return None
        if len(documents) != 1 + len(NAMESPACES):
            return None
        return {"kind": "List", "items": [i for d in documents for i in d.get("items", [])]}


def _items(status, kind: str) -> list[dict]:
    return [i for i in (status or {}).get("items", []) if i.get("kind") == kind]


def _condition(item: dict, name: str) -> bool:
    conditions = item.get("status", {}).get("conditions") or []
    return any(c.get("type") == name and c.get("status") == "True" for c in conditions)


def _pod_ready(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and _condition(pod, "Ready")


def problems(status: dict | None, node_names: list[str]) -> list[str]:
    """What keeps the cluster from being ready; empty when it is ready."""
    if status is None:
        return ["the API server did not answer"]
    found = {n["metadata"]["name"]: n for n in _items(status, "Node")}
    pods = _items(status, "Pod")
    network_nodes = {
        p.get("spec", {}).get("nodeName")
        for p in pods
        if p["metadata"].get("namespace") == NETWORK.NAMESPACE and _pod_ready(p)
    }
    issues = []
    for name in node_names:
        if name not in found:
            issues.append(f"node {name} is not registered")
        elif not _condition(found[name], "Ready"):
            issues.append(f"node {name} is not Ready")
        elif name not in network_nodes:
            issues.append(f"node {name} has no ready {NETWORK.NAME} pod")
    for pod in pods:
        meta, phase = pod["metadata"], pod.get("status", {}).get("phase")
        system = meta.get("namespace") == SYSTEM_NAMESPACE and phase != "Succeeded"
        if system and not _pod_ready(pod):
            issues.append(f"pod {SYSTEM_NAMESPACE}/{meta['name']} is {phase or 'unknown'}")
    return issues


def summary(
    ctx: NodeContext, status: dict | None, expiry: dict | None = None, snapshot: str = ""
) -> list[str]:
    """The lines printed at the end of a run that changed the cluster; `expiry`: {control
    plane: its certificates' expiry (certificates.CertificateExpiry) or None}; `snapshot`:
    the newest etcd snapshot an upgrade saved on the first control plane, "" for none."""
    s = ctx.settings
    found = {n["metadata"]["name"]: n for n in _items(status, "Node")}
    lines = [f"cluster ready: {len(ctx.members)} nodes, API server {ctx.api_endpoint}"]
    width = max(len(n.name) for n in ctx.members)
    for node in ctx.members:
        info = found.get(node.name, {}).get("status", {}).get("nodeInfo", {})
        roles = ",".join(r.replace("_", "-") for r in node.roles)
        kubelet = info.get("kubeletVersion", "?")
        runtime = info.get("containerRuntimeVersion", "?")
        row = f"{node.name:<{width}}  {node.address:<15}  {roles:<21}  {kubelet}  {runtime}"
        lines.append(f"  {row}")
    lines.append(f"Kubernetes {s.kubernetes_version}, {NETWORK.summary(s)}")
    places = [f"{ADMIN_KUBECONFIG} on {ctx.first_control_plane.name}"]
    if s.admin_user:
        places.append(f"~{s.admin_user}/.kube/config on the control planes")
    if s.fetch_kubeconfig:
        places.append(f"{s.fetch_kubeconfig} on this machine")
    lines.append("kubeconfig: " + "; ".join(places))
    lines += kuboard.summary(ctx.nodes, s)
    moment = datetime.datetime.now(datetime.UTC)
    for name, found in (expiry or {}).items():
        lines.append("certificates: " + certificates.expiry_line(name, found, moment))
    if snapshot:
        lines.append(
            f"etcd snapshot: {snapshot} on {ctx.first_control_plane.name} (the newest, saved "
            "before an upgrade)"
        )
    others = strangers(ctx, status)
    if others:
        lines.append(
            f"in the cluster but not in the cluster file: {', '.join(others)} (left as they "
            "are: to remove one, put it back in the file and run deploys/remove.py --limit "
            "NAME)"
        )
    return lines


def strangers(ctx: NodeContext, status: dict | None) -> list[str]:
    """Nodes the API server has that the cluster file does not name: listed in the
    summary, never deleted by a run."""
    known = {n.name for n in ctx.nodes}
    return sorted(
        n["metadata"]["name"] for n in _items(status, "Node") if n["metadata"]["name"] not in known
    )


@operation()
def cluster_ready(node_names: list[str], timeout: int):
    """Wait, each step bounded by `timeout` seconds, until every node is Ready, the network
    plugin runs on every node and the kube-system pods are ready; nothing to do if that is
    already so.

    + node_names: the nodes that must be Ready
    + timeout: seconds each wait may take
    """
    pending = problems(host.get_fact(ClusterStatus), node_names)
    if not pending:
        host.noop(f"every node is Ready, {NETWORK.NAME} and the kube-system pods are running")
        return
    limit = f"--timeout={timeout}s"
    yield kubectl("wait", "--for=condition=Ready", *(f"node/{n}" for n in node_names), limit)
    daemonset = f"daemonset/{NETWORK.DAEMONSET}"
    yield kubectl("-n", NETWORK.NAMESPACE, "rollout", "status", daemonset, limit)
    yield kubectl(
        "-n",
        SYSTEM_NAMESPACE,
        "wait",
        "--for=condition=Ready",
        "pods",
        "--all",
        "--field-selector=status.phase!=Succeeded",
        limit,
    )


def certificate_expiry(ctx: NodeContext) -> dict[str, dict | None]:
    """{control plane: its certificates' expiry}, read now (after any renewal of this
    run) with `kubeadm certs check-expiration` on each; None where it did not answer."""
    found = {}
    for node in ctx.control_planes:
        try:
            text = secret.output(
                StringCommand(certificates.CertificateExpiry().command()),
                "reading certificate expiry",
                host.inventory.get_host(node.name),
            )
        except OperationError:
            text = ""
        found[node.name] = certificates.parse_expiry(text.splitlines())
    return found


def latest_snapshot() -> str:
    """The newest etcd snapshot an upgrade saved on this host (the first control plane),
    read now (after this run's upgrade); "" for none or when it cannot be listed."""
    listing = StringCommand(f"ls -1t {SNAPSHOT_DIR}/*.db 2>/dev/null | head -n1 || true")
    try:
        return secret.output(listing, "listing etcd snapshots").strip()
    except OperationError:
        return ""


@deploy("Cluster ready")
def wait_for_cluster():
    ctx = NodeContext.of(host)
    if not ctx.is_first_control_plane:
        return
    pending_import = kuboard.import_pending(ctx.nodes, ctx.settings)
    waited = cluster_ready(
        name="cluster: wait until ready",
        node_names=[n.name for n in ctx.members],
        timeout=ctx.settings.ready_timeout,
    )

    def print_summary():
        # No arguments: pyinfra records a call's arguments, and the settings hold secrets.
        status, expiry = host.get_fact(ClusterStatus), certificate_expiry(ctx)
        for line in summary(ctx, status, expiry, latest_snapshot()):
            host.log(line)

    def run_changed_this_node() -> bool:
        # When the summary is due, every earlier operation of this node has completed. A
        # cluster not imported into its managed Kuboard server yet: the steps, every run.
        return (
            waited.did_change()
            or pending_import
            or any(
                data.operation_meta.is_complete() and data.operation_meta.did_change()
                for data in host.state.ops[host].values()
            )
        )

    def summary_due() -> bool:
        return run_changed_this_node() or bool(strangers(ctx, host.get_fact(ClusterStatus)))

    python.call(name="cluster: print summary", function=print_summary, _if=summary_due)
