"""Firewall and SELinux.

`firewall: open` (the default) opens exactly the ports this node's roles need
(kubernetes.io "Ports and Protocols", plus the network plugin's, deploys/addons/network.py):

- ufw (Ubuntu): one rule per port range, tagged with the comment "pyinfra-kubeadm";
  tagged rules no longer wanted (a role or backend changed) are deleted, rules of anyone
  else are left alone. ufw is never enabled by the deploy: on an inactive ufw the rules
  wait there, so the cluster keeps working the day someone enables it.
- firewalld (where installed): a service definition "pyinfra-kubeadm" listing the ports,
  added to the default zone (offline when firewalld is stopped: it is not started);
  firewalld reloads only when the definition changed.

`firewall: disabled` turns ufw off and stops and disables firewalld.

SELinux, where /etc/selinux/config exists: "enforcing" becomes "permissive" in the config
and now (as kubeadm's install guide asks: containers must read the host's filesystem, e.g.
for pod networks); "disabled" stays disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy, operation
from pyinfra.operations import files, server, systemd

from deploys.addons.network import PLUGIN as NETWORK
from deploys.context import NodeContext
from deploys.loadbalancer import model as loadbalancer
from deploys.settings import Node, Settings
from deploys.templating import render

FIREWALL_TAG = "pyinfra-kubeadm"  # ufw rule comment and firewalld service name
FIREWALLD_SERVICE_FILE = f"/etc/firewalld/services/{FIREWALL_TAG}.xml"


@dataclass(frozen=True, order=True)
class PortRange:
    first: int
    last: int
    protocol: str  # "tcp" or "udp"

    @property
    def ufw(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}:{self.last}"
        return f"{ports}/{self.protocol}"

    @property
    def firewalld(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def _port(first: int, protocol: str, last: int | None = None) -> PortRange:
    return PortRange(first, first if last is None else last, protocol)


# NodePort services: kube-proxy forwards them; no process listens on them.
NODE_PORTS = _port(30000, "tcp", 32767)


def kuboard_ports(settings: Settings) -> tuple[PortRange, ...]:
    """What the Kuboard server's host serves: its web and agent server ports (deploys/kuboard)."""
    return (_port(settings.kuboard_web_port, "tcp"), _port(settings.kuboard_agent_port, "tcp"))


def firewall_ports(node: Node, settings: Settings) -> tuple[PortRange, ...]:
    """The ports this node serves, sorted, without duplicates."""
    ports = set(kuboard_ports(settings)) if node.is_kuboard else set()
    if not node.is_member:  # only the Kuboard server's host
        return tuple(sorted(ports))
    ports.add(_port(10250, "tcp"))  # kubelet API, on every node
    if node.is_control_plane:
        ports |= {
            _port(settings.api_port, "tcp"),  # kube-apiserver
            _port(2379, "tcp", 2380),  # etcd client and peer
            _port(10257, "tcp"),  # kube-controller-manager
            _port(10259, "tcp"),  # kube-scheduler
        }
    if node.is_worker:
        ports |= {
            _port(10256, "tcp"),  # kube-proxy health check
            NODE_PORTS,
        }
    ports |= {PortRange(*port) for port in NETWORK.ports(node, settings)}
    ports |= {PortRange(*port) for port in loadbalancer.ports(node, settings)}
    return tuple(sorted(ports))


# VRRP (IP protocol 112, keepalived with api_load_balancer vip): firewalld names it as a
# protocol of the service; ufw knows "proto vrrp" only from 0.36.2 (not Ubuntu 20.04 or
# 22.04), so its rule lets in what is sent to VRRP's multicast group instead.
UFW_VRRP = f"to {loadbalancer.VRRP_GROUP}"


def ufw_rule(port: PortRange) -> str:
    """A rule as `ufw show added` lists it (without the leading "ufw ")."""
    return f"allow {port.ufw} comment '{FIREWALL_TAG}'"


def ufw_changes(
    ports: tuple[PortRange, ...], rules: list[str], vrrp: bool = False
) -> tuple[list[str], list[str]]:
    """(ufw commands to add the missing rules, to delete this project's unwanted ones);
    vrrp: let VRRP in as well."""
    wanted = {ufw_rule(p): p.ufw for p in ports}
    if vrrp:
        wanted[f"allow {UFW_VRRP} comment '{FIREWALL_TAG}'"] = UFW_VRRP
    add = [f"ufw allow {a} comment {FIREWALL_TAG}" for r, a in wanted.items() if r not in rules]
    ours = [r for r in rules if r.endswith(f" comment '{FIREWALL_TAG}'") and r not in wanted]
    delete = [f"ufw --force delete {r.split(' comment ')[0]}" for r in ours]
    return add, delete


def firewalld_service(ports: tuple[PortRange, ...], vrrp: bool = False) -> str:
    return render(
        "system/firewalld-service.xml.j2",
        short=FIREWALL_TAG,
        description=f"Ports this Kubernetes node serves (kubeadm, kubelet, {NETWORK.NAME}).",
        ports=ports,
        protocols=["vrrp"] if vrrp else [],
    )


@operation()
def ufw_open(ports: tuple[PortRange, ...], ufw: dict | None, vrrp: bool = False):
    """ufw allows exactly this node's ports, and VRRP where it speaks it (among the rules
    tagged with FIREWALL_TAG)."""
    if ufw is None:
        host.noop("ufw is not installed")
        return
    add, delete = ufw_changes(ports, ufw["rules"], vrrp)
    if not (add or delete):
        host.noop("ufw allows the node's ports")
    yield from add + delete


@operation()
def ufw_off(ufw: dict | None):
    if ufw is not None and ufw["active"]:
        yield "ufw disable"
    else:
        host.noop("ufw is not active")


@operation()
def firewalld_has_service(firewalld: dict):
    """The service definition is in firewalld's default zone, permanently and now."""
    if FIREWALL_TAG in firewalld["services"]:
        host.noop(f"firewalld has the service {FIREWALL_TAG}")
    elif firewalld["running"]:
        yield f"firewall-cmd --permanent --add-service={FIREWALL_TAG}"
        yield f"firewall-cmd --add-service={FIREWALL_TAG}"
    else:
        yield f"firewall-offline-cmd --add-service={FIREWALL_TAG}"


@operation()
def selinux_permissive(selinux: dict | None):
    """ "enforcing" becomes "permissive", in the config and now."""
    if selinux is None or (selinux["config"] != "enforcing" and selinux["mode"] != "Enforcing"):
        host.noop("SELinux is not enforcing")
        return
    if selinux["config"] == "enforcing":
        yield from files.replace._inner(
            path="/etc/selinux/config", text="^SELINUX=enforcing$", replace="SELINUX=permissive"
        )
    if selinux["mode"] == "Enforcing":
        yield "setenforce 0"


@deploy("Firewall")
def configure_firewall(ctx: NodeContext, current: dict):
    firewalld = current["firewalld"]
    if ctx.settings.firewall == "open":
        ports = firewall_ports(ctx.node, ctx.settings)
        vrrp = loadbalancer.vrrp(ctx.node, ctx.settings)
        ufw_open(
            name="firewall: allow kubernetes ports in ufw",
            ports=ports,
            vrrp=vrrp,
            ufw=current["ufw"],
        )
        if firewalld is not None:
            service = files.put(
                name=f"firewall: write firewalld service {FIREWALL_TAG}",
                src=StringIO(firewalld_service(ports, vrrp)),
                dest=FIREWALLD_SERVICE_FILE,
                mode="644",
                create_remote_dir=False,  # firewalld's own directory
            )
            if firewalld["running"]:
                server.shell(
                    name="firewall: reload firewalld",
                    commands=["firewall-cmd --reload"],
                    _if=service.did_change,
                )
            firewalld_has_service(
                name=f"firewall: add service {FIREWALL_TAG} to firewalld", firewalld=firewalld
            )
    else:
        ufw_off(name="firewall: disable ufw", ufw=current["ufw"])
        if firewalld is not None:
            systemd.service(
                name="firewall: stop and disable firewalld",
                service="firewalld.service",
                running=False,
                enabled=False,
            )
    selinux_permissive(name="selinux: set permissive", selinux=current["selinux"])
