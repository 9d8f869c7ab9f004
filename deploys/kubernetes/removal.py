"""Taking nodes out of the cluster (deploys/remove.py) or tearing it down (deploys/reset.py):
the host is left a prepared node, as deploys/node.py leaves it.

Removing a node from a running cluster (`pyinfra inventory.py deploys/remove.py --limit
NAME`), the steps kubeadm documents ("Clean up", kubernetes/website
content/en/docs/setup/production-environment/tools/kubeadm/create-cluster-kubeadm.md:
drain, `kubeadm reset`, clean what reset leaves, delete the Node), each guarded on the
state it removes, so a run killed at any step is finished by the next:

1. drain it (deploys/kubernetes/drain.py's command: evictions respect
   PodDisruptionBudgets, bounded by drain_timeout), from a control plane that stays;
2. for a control plane, remove its stacked etcd member first (`kubeadm reset phase
   remove-etcd-member`, on the node, while its etcd still runs);
3. delete its Node object (from the control plane that stays);
4. `kubeadm reset -f` on it (stops the kubelet, empties /etc/kubernetes/manifests and pki,
   /var/lib/kubelet, and /var/lib/etcd on a stacked control plane);
5. what reset leaves (its own last words: "The reset process does not clean CNI
   configuration ... does not reset or clean up iptables rules or IPVS tables"): the CNI
   configuration (/etc/cni/net.d) and state (/var/lib/cni, /run/flannel), the interfaces
   flannel and kube-proxy made (cni0, flannel.1, flannel-wg, kube-ipvs0), kube-proxy's and
   flannel's iptables chains (every rule naming a KUBE- or FLANNEL- chain: the firewall's
   own rules stay), kube-proxy's nftables tables, and /etc/kubernetes (but for the empty
   manifests directory the kubelet package made), /var/lib/kubelet, /var/lib/etcd.

The packages stay installed and held, containerd and the OS preparation stay: node.py
finds nothing to do, and cluster.py joins the host again when it is in the cluster file.

Refused before any change, in one report: a run without --limit (that is reset.py's
job), removing the last control plane, or control planes whose removal leaves fewer
Ready control planes (etcd members) than a majority of those that remain.
"""

from __future__ import annotations

import os

from pyinfra import host
from pyinfra.api import (
    FactBase,
    FunctionCommand,
    OperationError,
    QuoteString,
    StringCommand,
    deploy,
)
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_state
from pyinfra.operations import server

from deploys import secret
from deploys.context import NodeContext
from deploys.failure import report
from deploys.kubernetes import drain
from deploys.kubernetes.bootstrap import reset_command
from deploys.kubernetes.kubeadm_config import (
    APISERVER_MANIFEST,
    ETCD_MANIFEST,
    KUBELET_CONF,
    KUBELET_CONFIG,
    KUBERNETES_DIR,
    MANIFESTS_DIR,
    PKI_DIR,
    kubectl,
)

# What kubeadm and the cluster leave on a node, removed after `kubeadm reset`.
# /etc/kubernetes goes too, but for the empty manifests directory the kubelet package
# installs (and a joining node's configuration is written beside): as after the packages.
DIRECTORIES = (
    KUBERNETES_DIR,
    "/var/lib/kubelet",
    "/var/lib/etcd",
    "/var/lib/cni",
    "/run/flannel",
)
CNI_CONF_DIR = "/etc/cni/net.d"
# Interfaces flannel (vxlan, wireguard backends; the bridge of its CNI config) and
# kube-proxy's ipvs mode create.
INTERFACES = ("cni0", "flannel.1", "flannel-v6.1", "flannel-wg", "flannel-wg-v6", "kube-ipvs0")
# The chains kube-proxy (KUBE-...) and flannel (FLANNEL-...) add to iptables.
CHAINS = "(KUBE|FLANNEL)-"
# What kubeadm made on a node: reset has something to do.
KUBEADM_STATE = (
    KUBELET_CONF,
    PKI_DIR,
    APISERVER_MANIFEST,
    KUBELET_CONFIG,
)
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
RESET_CONFIRMATION = "RESET"


class RemovalRefused(PyinfraError):
    """A removal or reset the cluster (or the command line) does not allow; nothing changed."""


class NodeLeftovers(FactBase):
    """What Kubernetes left on the host: {"kubeadm": bool (reset has work), "etcd": bool (a
    stacked etcd member's manifest), "directories": [...], "cni": [files],
    "interfaces": [...], "rules": number of iptables lines naming a KUBE-/FLANNEL- chain,
    "nft": ["ip kube-proxy", ...]}."""

    def command(self) -> str:
        lines = [f"[ -e {p} ] && echo kubeadm" for p in KUBEADM_STATE]
        lines.append(f"[ -e {ETCD_MANIFEST} ] && echo etcd")
        lines.append(
            f'[ -n "$(find {KUBERNETES_DIR} -mindepth 1 -not -path {MANIFESTS_DIR} '
            f'2>/dev/null | head -n 1)" ] && echo dir {KUBERNETES_DIR}'
        )
        lines += [f"[ -e {d} ] && echo dir {d}" for d in DIRECTORIES[1:]]
        lines.append(f'for f in {CNI_CONF_DIR}/*; do [ -e "$f" ] && echo cni "$f"; done')
        lines += [f"[ -e /sys/class/net/{i} ] && echo link {i}" for i in INTERFACES]
        lines.append(
            f"echo rules $( (iptables-save; ip6tables-save) 2>/dev/null | grep -cE '{CHAINS}')"
        )
        lines.append("nft list tables 2>/dev/null | grep -E ' kube-proxy$' | sed 's/^table /nft /'")
        return "; ".join(f"{{ {line}; }}" for line in lines) + "; true"

    def process(self, output):
        found = {
            "kubeadm": False,
            "etcd": False,
            "directories": [],
            "cni": [],
            "interfaces": [],
            "rules": 0,
            "nft": [],
        }
        for line in output:
            word, _, rest = line.strip().partition(" ")
            if word in ("kubeadm", "etcd"):
                found[word] = True
            elif word == "dir":
                found["directories"].append(rest)
            elif word == "cni":
                found["cni"].append(rest)
            elif word == "link":
                found["interfaces"].append(rest)
            elif word == "rules" and rest.isdigit():
                found["rules"] = int(rest)
            elif word == "nft":
                found["nft"].append(rest)
        return found


# --- decisions ------------------------------------------------------------------------


def cluster_nodes(status: dict | None) -> dict[str, dict] | None:
    """{name: {"control_plane": bool, "ready": bool}} of the Nodes in a ClusterStatus
    (deploys/addons/ready.py); None when the API server did not answer."""
    if status is None:
        return None
    nodes = {}
    for item in status.get("items", []):
        if item.get("kind") != "Node":
            continue
        drained = drain.node_state(item)
        labels = item["metadata"].get("labels") or {}
        nodes[item["metadata"]["name"]] = {
            "control_plane": CONTROL_PLANE_LABEL in labels,
            "ready": drained["ready"],
        }
    return nodes


def removal_refusals(
    removing: list[str] | None,
    file_control_planes: list[str],
    nodes: dict[str, dict] | None,
    helper: str | None,
) -> list[str]:
    """Why these nodes cannot be removed now (empty: they can).

    removing: the hosts given with --limit (None: no --limit); file_control_planes: the
    control planes of the cluster file; nodes: cluster_nodes() read from `helper`, the
    control plane that stays and runs kubectl (None: none stays)."""
    if removing is None:
        return [
            "deploys/remove.py removes the hosts given with --limit NAME; without --limit it "
            "would remove every node: to tear the whole cluster down, use deploys/reset.py"
        ]
    if helper is None:
        return [
            f"removing {', '.join(removing)} would remove the last control plane of the "
            f"cluster file ({', '.join(file_control_planes)}): at least one must stay (to "
            "tear the whole cluster down, use deploys/reset.py)"
        ]
    if nodes is None:
        return [
            f"the API server does not answer on {helper}, the control plane that stays: "
            "nothing can be drained or deleted (bring it back, then run again)"
        ]
    members = [n for n, node in nodes.items() if node["control_plane"]]
    leaving = [n for n in members if n in removing]
    staying = [n for n in members if n not in removing]
    if not leaving:
        return []
    if not staying:
        return [
            f"removing {', '.join(leaving)} would remove the cluster's last control plane "
            "(and its last etcd member)"
        ]
    ready = [n for n in staying if nodes[n]["ready"]]
    needed = len(staying) // 2 + 1
    if len(ready) < needed:
        down = [n for n in staying if n not in ready]
        return [
            f"removing {', '.join(leaving)} would lose etcd quorum: {len(staying)} members "
            f"would stay and need {needed} healthy, but {', '.join(down)} "
            f"{'is' if len(down) == 1 else 'are'} not Ready. Bring "
            f"{'it' if len(down) == 1 else 'them'} back first"
        ]
    return []


def network_commands(leftovers: dict) -> list[StringCommand]:
    """Remove exactly what the pod network and kube-proxy left (nothing when nothing)."""
    commands = []
    if leftovers["cni"]:
        commands.append(StringCommand("rm", "-f", *map(QuoteString, leftovers["cni"])))
    commands += [
        StringCommand("ip", "link", "delete", QuoteString(i)) for i in leftovers["interfaces"]
    ]
    if leftovers["rules"]:
        for save, restore in (("iptables-save", "iptables-restore"),
                              ("ip6tables-save", "ip6tables-restore")):  # fmt: skip
            commands.append(
                StringCommand(
                    f"if command -v {save} >/dev/null; then {save} | grep -vE '{CHAINS}' "
                    f"| {restore}; fi"
                )
            )
    commands += [StringCommand("nft", "delete", "table", *t.split()) for t in leftovers["nft"]]
    return commands


def directories_command(leftovers: dict) -> list[StringCommand]:
    found = leftovers["directories"]
    if not found:
        return []
    commands = [StringCommand("rm", "-rf", "--one-file-system", *map(QuoteString, found))]
    if KUBERNETES_DIR in found:
        commands.append(StringCommand("install", "-d", "-m", "755", MANIFESTS_DIR))
    return commands


def remove_etcd_member_command() -> StringCommand:
    return StringCommand("kubeadm reset phase remove-etcd-member")


# --- on another host while the run executes ---------------------------------------------


def _on(target: str, command: StringCommand, what: str) -> str:
    """Output of `command` run on the inventory host `target` (never printed)."""
    other = host.inventory.get_host(target)
    return secret.output(command, what, other)


def _drain(state, host, helper: str, node: str, timeout: int) -> bool:
    # pyinfra passes state and host to a FunctionCommand's function by these names.
    try:
        _on(helper, drain.drain_command(node, timeout), f"draining {node}")
    except OperationError as exc:
        return report(host, drain.drain_refusal(node, "removal", timeout, str(exc)))
    return True


def _delete_nodes(state, host, helper: str, nodes: list) -> bool:
    try:
        _on(helper, kubectl("delete", "node", *nodes, "--ignore-not-found"), "deleting nodes")
    except OperationError as exc:
        return report(host, str(exc))
    return True


# --- the entry files' steps -------------------------------------------------------------

_FOUND: dict = {}


def _removing(state) -> list[str] | None:
    if not isinstance(state.limit_hosts, list):
        return None
    return [h.name for h in state.inventory if state.is_host_in_limit(h)]


def plan_removal(ctx: NodeContext) -> tuple[str, dict[str, dict]]:
    """The control plane that stays and runs kubectl, and the cluster's nodes; stops the
    run (before any change, one report) when the removal is refused."""
    from deploys.addons.ready import ClusterStatus  # the add-ons import this package

    state = ctx_state.get()
    if state not in _FOUND:
        removing = _removing(state)
        stays = [n.name for n in ctx.control_planes if n.name not in (removing or [])]
        helper = stays[0] if stays else None
        nodes = None
        if removing is not None and helper is not None:
            status = host.inventory.get_host(helper).get_fact(ClusterStatus)
            nodes = cluster_nodes(status)
        problems = removal_refusals(removing, [n.name for n in ctx.control_planes], nodes, helper)
        _FOUND[state] = (helper, nodes or {}, problems)
    helper, nodes, problems = _FOUND[state]
    if problems:
        raise RemovalRefused("refused before any change: " + "; ".join(problems))
    return helper, nodes


@deploy("Remove node")
def remove():
    ctx = NodeContext.of(host)
    if ctx.node.is_member:  # not the Kuboard host outside the cluster
        remove_node(ctx)


@deploy("Reset node")
def reset():
    ctx = NodeContext.of(host)
    if ctx.node.is_member:  # not the Kuboard host outside the cluster
        reset_node(ctx)


def remove_node(ctx: NodeContext) -> None:
    """This host (one of --limit) drained, its etcd member and Node removed, reset and
    cleaned (the module's docstring)."""
    helper, nodes = plan_removal(ctx)
    name, in_cluster = ctx.node.name, ctx.node.name in nodes
    leftovers = host.get_fact(NodeLeftovers)
    server.shell(
        name="kubernetes: drain node",
        commands=[FunctionCommand(_drain, (helper, name, ctx.settings.drain_timeout), {})]
        if in_cluster
        else [],
    )
    server.shell(
        name="etcd: remove member",
        commands=[remove_etcd_member_command()] if leftovers["etcd"] else [],
    )
    server.shell(
        name="kubernetes: delete node",
        commands=[FunctionCommand(_delete_nodes, (helper, [name]), {})] if in_cluster else [],
    )
    server.shell(
        name="kubeadm: reset node",
        commands=[reset_command()] if leftovers["kubeadm"] else [],
    )
    clean_node(leftovers)


def clean_node(leftovers: dict) -> None:
    """What `kubeadm reset` leaves (see the module's docstring)."""
    server.shell(
        name="network: remove CNI configuration, interfaces and rules",
        commands=network_commands(leftovers),
    )
    server.shell(
        name="kubeadm: remove kubeadm directories",
        commands=directories_command(leftovers),
    )


def reset_refusal(environ=os.environ) -> str | None:
    if environ.get(RESET_CONFIRMATION) == "yes":
        return None
    return (
        "deploys/reset.py tears Kubernetes down on every host of the run (all of the "
        "cluster file, or those given with --limit): its workloads and etcd data are lost. "
        f"Run it as `{RESET_CONFIRMATION}=yes pyinfra inventory.py deploys/reset.py` to "
        "confirm"
    )


def reset_node(ctx: NodeContext) -> None:
    """This host reset to a prepared node. The first control plane, when it is reset too,
    goes last: before it, it deletes the Node objects of the others reset in this run, so
    that the next cluster.py starts from an empty cluster."""
    refusal = reset_refusal()
    if refusal:
        raise RemovalRefused(refusal)
    state = ctx_state.get()
    members = [n.name for n in ctx.members]
    resetting = [n for n in (_removing(state) or members) if n in members]
    first = ctx.is_first_control_plane
    leftovers = host.get_fact(NodeLeftovers)
    others = [n for n in resetting if n != ctx.node.name]
    server.shell(
        name="kubeadm: reset node",
        commands=[reset_command()] if leftovers["kubeadm"] and not first else [],
    )
    server.shell(
        name="kubernetes: delete reset nodes",
        commands=[kubectl("delete", "node", *others, "--ignore-not-found")]
        if first and others and leftovers["kubeadm"]
        else [],
    )
    server.shell(
        name="kubeadm: reset first control plane",
        commands=[reset_command()] if leftovers["kubeadm"] and first else [],
    )
    clean_node(leftovers)


__all__ = [
    "remove",
    "reset",
    "NodeLeftovers",
    "RemovalRefused",
    "cluster_nodes",
    "network_commands",
    "removal_refusals",
    "remove_node",
    "reset_node",
    "reset_refusal",
]
