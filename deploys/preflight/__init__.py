"""Preflight: every node's facts read first, then one report of every problem on every node,
before any host is changed.

The entry files call `check_cluster()` first. pyinfra plans each host in its own greenlet
before it executes any operation, and stops the whole run when planning raises; so the
first host to get here reads `PreflightState` from every host of the run (in parallel, one
remote command each), the problems of all of them are decided once per run, and every
host's planning stops with the same report when there is any. Nothing has been changed
anywhere at that point. The decisions are pure functions of the facts, tested with
recorded facts in tests/deploy/test_preflight.py (the fact: tests/unit/facts/).

Checks:
- the OS release is one this project supports;
- cgroup v2 from Kubernetes 1.35 (whose kubelet refuses cgroup v1, while kubeadm's own
  preflight only warns: `kubeadm init` and joins then time out);
- a kernel kube-proxy's nftables mode runs on (5.13), where that mode is chosen;
- CPUs and memory: kubeadm's minimums on control planes, a useful minimum on workers;
- /etc/machine-id, MAC addresses of hardware interfaces, and product_uuid where it is the
  machine's own (not in containers, which show their host's) are unique across the nodes:
  cloned VMs share them. Host names need no check here: each node is renamed to its name
  in the cluster file, which the cluster file check keeps unique;
- the ports the node will serve are free where the node is not in the cluster yet
  (no /etc/kubernetes/kubelet.conf) and keeps nothing of an earlier join (no
  /etc/kubernetes/pki/ca.crt: its kubelet may still hold its ports; the Kubernetes concern
  resets such a worker before its join, and refuses such a control plane);
- a containerd that the Kubernetes version can run (2.x from 1.36), from the version
  installed, else the one apt would install, where the settings alone did not decide it;
- with api_load_balancer vip: each control plane has its vrrp_interface, api_vip lies in
  that interface's subnet (keepalived moves it between hosts of one link), and api_vip
  does not answer on the network already unless a control plane holds it (keepalived of
  an earlier run).
"""

from __future__ import annotations

import ipaddress
import weakref
from collections import defaultdict

import gevent
import gevent.lock
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_state

from deploys import distro, versions
from deploys.context import NodeContext
from deploys.loadbalancer import model as loadbalancer
from deploys.preflight.facts import PreflightState
from deploys.runtime.package import package_name
from deploys.settings import Node, Settings
from deploys.system.firewall import NODE_PORTS, PortRange, firewall_ports, kuboard_ports
from deploys.system.kernel import nftables_kernel_refusal

# kubeadm's preflight minimums for a control plane: NumCPU (2) and Mem (1700 MiB of
# MemTotal), cmd/kubeadm/app/constants ControlPlaneNumCPU and ControlPlaneMem.
CONTROL_PLANE_MINIMUM = (2, 1700)
# Workers: kubeadm checks nothing. The minimum chosen here is a 1 GiB machine (MemTotal
# about 900 MiB): the kubelet, containerd, kube-proxy and flannel take a few hundred MiB
# before the first pod.
WORKER_MINIMUM = (1, 850)
CGROUP_V2 = "cgroup2fs"  # the filesystem type of /sys/fs/cgroup on a cgroup v2 host
CGROUP_V2_FROM_MINOR = 35
_NO_MAC = "00:00:00:00:00:00"


class PreflightRefused(PyinfraError):
    """Problems found on the hosts before any change; the message lists all of them."""


def node_problems(node: Node, settings: Settings, facts: dict) -> list[str]:
    """The problems of one node, each naming the host and what to do."""
    found = []
    label = f"host {node.name!r}"
    release = facts["release"]
    if not distro.supported(release["id"], release["version"]):
        found.append(
            f"{label}: OS release {release['id'] or '?'} {release['version'] or ''}".rstrip()
            + f" is not supported; supported: {distro.supported_text()}"
        )
    version = settings.kubernetes_version
    minor = versions.kubernetes_minor(version)
    cgroup_v1 = facts["cgroup"] and facts["cgroup"] != CGROUP_V2
    if node.is_member and minor >= CGROUP_V2_FROM_MINOR and cgroup_v1:
        found.append(
            f"{label}: cgroup v1 (/sys/fs/cgroup is {facts['cgroup']}), and the kubelet of "
            f"Kubernetes 1.{CGROUP_V2_FROM_MINOR} and later refuses cgroup v1 "
            f"(kubernetes_version is {version}). Either boot the node with cgroup v2 (add "
            "systemd.unified_cgroup_hierarchy=1 to the kernel command line, e.g. "
            "GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot), or set "
            "kubernetes_version to a 1.34 release"
        )
    if settings.kube_proxy_mode == "nftables":
        refusal = nftables_kernel_refusal(label, facts["kernel"])
        found += [refusal] if refusal else []
    role, (cpus, memory) = (
        ("control plane", CONTROL_PLANE_MINIMUM)
        if node.is_control_plane
        else ("worker" if node.is_worker else "Kuboard host", WORKER_MINIMUM)
    )
    if facts["cpus"] and facts["cpus"] < cpus:
        found.append(f"{label}: {facts['cpus']} CPU; a {role} needs at least {cpus}")
    if facts["memory_mib"] and facts["memory_mib"] < memory:
        found.append(
            f"{label}: {facts['memory_mib']} MiB of memory; a {role} needs at least {memory} MiB"
        )
    if not (facts["joined"] or facts["left_over"]):
        # The Kuboard server's own ports: its concern checks them (its server holds them);
        # haproxy's own port (vip): haproxy holds it once the load balancer ran.
        own = set(kuboard_ports(settings))
        own |= {PortRange(*port) for port in loadbalancer.ports(node, settings)}
        ports = set(firewall_ports(node, settings)) - own
        busy = _ports_in_use(ports, facts["listening"])
        if busy:
            found.append(
                f"{label}: port{'s' if len(busy) > 1 else ''} {', '.join(busy)} already in "
                "use; the node is not in a cluster yet and Kubernetes needs "
                f"{'them' if len(busy) > 1 else 'it'} (another service, or what is left "
                "of an old cluster: `kubeadm reset` removes that)"
            )
    if node.is_member:  # the Kuboard host runs no kubelet
        found += _containerd_problems(label, settings, facts["containerd"])
    return found


def _ports_in_use(ports, listening: list[str]) -> list[str]:
    """The listening "port/protocol"s among the node's ports (NodePorts aside: nothing
    binds them)."""
    wanted = [p for p in ports if p != NODE_PORTS]
    busy = []
    for entry in listening:
        number, _, protocol = entry.partition("/")
        if any(p.protocol == protocol and p.first <= int(number) <= p.last for p in wanted):
            busy.append(entry)
    return busy


def _containerd_problems(label: str, settings: Settings, packages: dict) -> list[str]:
    """containerd 1.x where the Kubernetes version needs 2.x, from the installed version
    (held: the deploy keeps it) or else the candidate; pinned versions and the distro's
    packages are refused by the cluster file check already."""
    needed = versions.containerd_major_needed(settings.kubernetes_version)
    if needed < 2 or settings.containerd_version:
        return []
    package = package_name(settings)
    seen = packages.get(package, {})
    source, version = next(
        ((what, seen[what]) for what in ("installed", "candidate") if seen.get(what)),
        ("", ""),
    )
    try:
        major = versions.containerd_version(version)[0] if version else needed
    except ValueError:
        return []
    if major >= needed:
        return []
    return [
        f"{label}: containerd: {package} {version} ({source}) is containerd {major}.x, and "
        f"Kubernetes {settings.kubernetes_version} needs containerd 2.x. Set "
        f"containerd_version to a 2.x version of {package} (containerd_source: "
        f"{settings.containerd_source}), or kubernetes_version to a 1.35 release"
    ]


def identity_problems(facts: dict[str, dict]) -> list[str]:
    """What cloned machines share: /etc/machine-id, a hardware MAC address, product_uuid
    (only where it is the machine's own: a container shows its host's). facts: per host
    name, in cluster-file order."""
    found = []
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, node_facts in facts.items():
        if node_facts["machine_id"]:
            seen[("/etc/machine-id", node_facts["machine_id"])].append(name)
        if node_facts["product_uuid"] and node_facts["container"] == "none":
            seen[("product_uuid", node_facts["product_uuid"])].append(name)
        for mac in sorted(set(node_facts["macs"].values()) - {_NO_MAC}):
            seen[("MAC address", mac)].append(name)
    advice = {
        "/etc/machine-id": "give each its own: rm /etc/machine-id && "
        "systemd-machine-id-setup, then reboot",
        "product_uuid": "cloned VMs: give each VM its own UUID in the hypervisor",
        "MAC address": "cloned VMs: give each network interface its own MAC address",
    }
    for (what, value), names in seen.items():
        if len(set(names)) > 1:
            hosts = ", ".join(repr(n) for n in dict.fromkeys(names))
            found.append(
                f"hosts {hosts}: the same {what} {value}: they must differ between the "
                f"nodes of a cluster ({advice[what]})"
            )
    return found


def vip_problems(nodes: list[tuple[Node, Settings, dict]]) -> list[str]:
    """api_load_balancer vip: each control plane's vrrp_interface and the subnets on it,
    and whether api_vip answers though no control plane holds it."""
    found, answered, held = [], [], False
    for node, settings, facts in nodes:
        if not loadbalancer.vrrp(node, settings):
            continue
        label, vip = f"host {node.name!r}", ipaddress.ip_address(settings.api_vip)
        addresses = facts["addresses"]
        held |= any(str(vip) == a.partition("/")[0] for a in sum(addresses.values(), []))
        if facts["probe"] == "answered":
            answered.append(node.name)
        interface = settings.vrrp_interface
        if interface not in addresses:
            found.append(
                f"{label}: vrrp_interface {interface!r} has no IPv4 address on the host "
                f"(interfaces with one: {', '.join(sorted(addresses)) or 'none'})"
            )
            continue
        subnets = [
            ipaddress.ip_interface(a).network
            for a in addresses[interface]
            if ipaddress.ip_interface(a).ip != vip
        ]
        if not any(vip in subnet for subnet in subnets):
            found.append(
                f"{label}: api_vip {vip} is outside the subnet of vrrp_interface {interface} "
                f"({', '.join(map(str, subnets)) or 'no address'}): keepalived moves the VIP "
                "between the control planes of one subnet"
            )
    if answered and not held:
        found.append(
            f"api_vip {nodes[0][1].api_vip} already answers on the network (seen from host "
            f"{answered[0]!r}) and no control plane holds it: another machine uses that "
            "address; choose an unused one"
        )
    return found


def problems(nodes: list[tuple[Node, Settings, dict]]) -> list[str]:
    """Every problem of the nodes of a run: (node, its settings, its PreflightState)."""
    found = [p for node, settings, facts in nodes for p in node_problems(node, settings, facts)]
    found += vip_problems(nodes)
    return found + identity_problems({node.name: facts for node, _, facts in nodes})


def report(found: list[str]) -> str:
    count = f"{len(found)} problem{'s' if len(found) > 1 else ''}"
    return f"preflight: {count}; no host was changed:\n" + "\n".join(f"  - {p}" for p in found)


# Per pyinfra State: the problems found, decided once for all hosts of the run.
_FOUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = gevent.lock.Semaphore()


def check_cluster() -> None:
    """Stop the run, before any change, when any host of it has a problem (see above)."""
    state = ctx_state.get()
    with _LOCK:
        if state not in _FOUND:
            _FOUND[state] = _gather(state)
    if _FOUND[state]:
        raise PreflightRefused(report(_FOUND[state]))


def _gather(state) -> list[str]:
    active = set(state.inventory.get_active_hosts())
    hosts = [h for h in state.inventory.get_group("k8s_cluster") if h in active]
    contexts = [NodeContext.of(h) for h in hosts]
    reads = [
        gevent.spawn(h.get_fact, PreflightState, **_probe(ctx))
        for h, ctx in zip(hosts, contexts, strict=True)
    ]
    gevent.joinall(reads, raise_error=True)
    return problems(
        [(ctx.node, ctx.settings, read.value) for ctx, read in zip(contexts, reads, strict=True)]
    )


def _probe(ctx: NodeContext) -> dict:
    """The fact's arguments: api_vip on haproxy's port is probed from the control planes
    that may hold it (none elsewhere)."""
    s = ctx.settings
    if loadbalancer.vrrp(ctx.node, s):
        return {"probe": f"{s.api_vip}:{s.api_load_balancer_port}"}
    return {}
