"""What the API load balancer is on each node, decided from the settings and the cluster:
which daemons run where, their configuration files, the firewall ports and the checks of
the settings. Pure functions, tested in tests/unit/test_loadbalancer.py.

Modes (settings.api_load_balancer; the rule for its empty default:
deploys.settings.api_load_balancer):
- local: haproxy on every node, on 127.0.0.1:api_load_balancer_port; the cluster's
  endpoint is API_NAME on that port, which the managed /etc/hosts block resolves to
  127.0.0.1 on every node (deploys/system/hosts.py), so kubelets, kube-proxy and joins
  reach every API server through their own node's haproxy;
- vip: keepalived on the control planes holds api_vip, haproxy beside it on every address
  of the control planes; the endpoint is api_vip on that port;
- none: control_plane_endpoint as given (a load balancer of the site's own).

haproxy balances TCP (the API servers terminate TLS) and checks each API server's /livez
over TLS, as kubeadm's "High Availability Considerations" (kubernetes/kubeadm,
docs/ha-considerations.md) sets up haproxy for the API servers; /livez answers anonymous
requests (the system:public-info-viewer role). keepalived follows that document too
(VRRP with PASS authentication, a check of the API server), with every control plane in
state BACKUP and priorities by cluster-file order.
"""

from __future__ import annotations

import ipaddress
import re

from deploys.context import NodeContext
from deploys.settings import Cluster, Node, Settings, api_load_balancer
from deploys.templating import render

HAPROXY = "haproxy"
KEEPALIVED = "keepalived"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
# haproxy's admin socket ("show stat"); expose-fd listeners lets a reload hand the
# listening sockets to the new worker (haproxy's management guide: seamless reload).
HAPROXY_SOCKET = "/run/haproxy/admin.sock"
# VRRP (IP protocol 112) advertisements go to this multicast group (RFC 5798, 5.1.1.2).
VRRP_GROUP = "224.0.0.18"
# keepalived priorities: the first control plane highest; a failing check lowers a node's
# priority by CHECK_WEIGHT, below every healthy node's (VRRP priorities are 1-254).
TOP_PRIORITY = 200
CHECK_WEIGHT = -100
_INTERFACE = re.compile(r"[A-Za-z0-9_.@:-]{1,15}")
# keepalived's auth_pass: "Only the first eight (8) characters are used" (keepalived.conf(5)
# of Debian's keepalived 2.2.7); no blanks, quotes, comment signs ('!', '#') or braces
# (blocks) of keepalived.conf.
_VRRP_PASSWORD = re.compile(r"[A-Za-z0-9_.,:+=/%@^~-]{1,8}")


def components(ctx: NodeContext) -> tuple[str, ...]:
    """The daemons this node runs for the load balancer (none on a host that is only the
    Kuboard server's: it is no Kubernetes node)."""
    if not ctx.node.is_member:
        return ()
    if ctx.api_load_balancer == "local":
        return (HAPROXY,)
    if ctx.api_load_balancer == "vip" and ctx.node.is_control_plane:
        return (HAPROXY, KEEPALIVED)
    return ()


def pinned_versions(settings: Settings) -> dict[str, str]:
    """{package: the exact apt version to install and hold, "" for the archive's}."""
    return {HAPROXY: settings.haproxy_version, KEEPALIVED: settings.keepalived_version}


def haproxy_cfg(ctx: NodeContext) -> str:
    s = ctx.settings
    bind = f"127.0.0.1:{s.api_load_balancer_port}" if ctx.api_load_balancer == "local" else (
        f":{s.api_load_balancer_port}"
    )  # fmt: skip
    return render(
        "loadbalancer/haproxy.cfg.j2",
        mode=ctx.api_load_balancer,
        bind=bind,
        socket=HAPROXY_SOCKET,
        servers=ctx.control_planes,
        api_port=s.api_port,
    )


def keepalived_conf(ctx: NodeContext) -> str:
    s = ctx.settings
    index = [n.name for n in ctx.control_planes].index(ctx.node.name)
    return render(
        "loadbalancer/keepalived.conf.j2",
        node=ctx.node.name,
        interface=s.vrrp_interface,
        router_id=s.vrrp_router_id,
        priority=TOP_PRIORITY - index,
        weight=CHECK_WEIGHT,
        password=s.vrrp_password,
        vip=s.api_vip,
        api_port=s.api_port,
    )


def files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of the configuration files of this node's daemons."""
    builders = {HAPROXY: (HAPROXY_CFG, haproxy_cfg), KEEPALIVED: (KEEPALIVED_CONF, keepalived_conf)}
    return {builders[c][0]: builders[c][1](ctx) for c in components(ctx)}


def ports(node: Node, settings: Settings) -> tuple[tuple[int, int, str], ...]:
    """(first, last, protocol) the load balancer serves on this node from the network:
    haproxy on the control planes with vip (local mode listens on loopback only). vip is
    never the default, so the setting alone decides."""
    if vrrp(node, settings):
        port = settings.api_load_balancer_port
        return ((port, port, "tcp"),)
    return ()


def vrrp(node: Node, settings: Settings) -> bool:
    """Whether this node speaks VRRP (its firewall lets the advertisements in)."""
    return node.is_control_plane and settings.api_load_balancer == "vip"


def check_settings(s: Settings):
    """(setting, problem) of the load balancer settings' values."""
    if s.api_vip:
        try:
            vip = ipaddress.ip_address(s.api_vip)
        except ValueError:
            vip = None
        if vip is None or vip.version != 4 or vip.is_loopback or vip.is_multicast:
            yield "api_vip", f"{s.api_vip!r} is not a unicast IPv4 address"
    if not 0 < s.api_load_balancer_port < 65536:
        yield "api_load_balancer_port", f"{s.api_load_balancer_port} is not a TCP port"
    if not 1 <= s.vrrp_router_id <= 255:
        yield "vrrp_router_id", f"{s.vrrp_router_id} is not a VRRP router id (1-255)"
    if s.vrrp_interface and not _INTERFACE.fullmatch(s.vrrp_interface):
        yield "vrrp_interface", f"{s.vrrp_interface!r} is not an interface name"
    if s.vrrp_password and not _VRRP_PASSWORD.fullmatch(s.vrrp_password):
        yield "vrrp_password", "1 to 8 characters, no blanks, quotes, '!' or '#'"


def cluster_problems(cluster: Cluster) -> list[str]:
    """What the cluster's load balancer mode needs from the other settings and hosts, for
    the cluster file check (deploys/settings.py), each naming file, host and setting."""
    path, s = cluster.path, Settings(**cluster.overrides)
    mode = api_load_balancer(s, len(cluster.control_planes))
    where = f"{path}: settings"
    if mode not in ("local", "vip", "none"):
        return []  # refused with the values of the settings
    if mode == "none":
        if len(cluster.control_planes) > 1 and not s.control_plane_endpoint:
            return [
                f"{where}.control_plane_endpoint: required with more than one control plane "
                "and api_load_balancer none (a load balancer or VIP in front of the API "
                "servers); or leave api_load_balancer empty for haproxy on every node"
            ]
        return []
    found = []
    if s.control_plane_endpoint:
        found.append(
            f"{where}.control_plane_endpoint: {s.control_plane_endpoint!r} with "
            f"api_load_balancer {mode}, which makes the endpoint itself; remove one of them"
        )
    if s.api_load_balancer_port == s.api_port:
        found.append(
            f"{where}.api_load_balancer_port: {s.api_load_balancer_port} is api_port, the "
            "API servers' own port; haproxy needs another (default 8443)"
        )
    if mode != "vip":
        return found
    for key in ("api_vip", "vrrp_password"):
        if not getattr(s, key):
            found.append(f"{where}.{key}: required with api_load_balancer vip")
    for node in cluster.control_planes:
        if not cluster.settings_for(node).vrrp_interface:
            found.append(
                f"{path}: host {node.name!r}: settings.vrrp_interface: required on control "
                "planes with api_load_balancer vip (the interface with the node's address)"
            )
    taken = {node.address: node.name for node in cluster.nodes}
    if s.api_vip in taken:
        found.append(f"{where}.api_vip: {s.api_vip} is the address of host {taken[s.api_vip]!r}")
    return found
