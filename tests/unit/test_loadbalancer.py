"""The API load balancer's decisions (deploys/loadbalancer/model.py, the mode and endpoint
in deploys/settings.py and deploys/context.py), its checks of the cluster file and of the
hosts (deploys/preflight: vip_problems), and its fact."""

from __future__ import annotations

import copy

import pytest
import yaml

from deploys.context import API_NAME, NodeContext
from deploys.kubernetes import kubeadm_config
from deploys.loadbalancer import model
from deploys.loadbalancer.facts import LoadBalancerState
from deploys.preflight import PreflightState, vip_problems
from deploys.settings import ClusterError, Settings, parse_cluster
from deploys.system.firewall import firewall_ports, firewalld_service, ufw_changes
from deploys.system.hosts import hosts_block, local_api_name

HOSTS = [
    {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
    {"name": "cp2", "address": "10.0.0.12", "roles": ["control_plane"]},
    {"name": "cp3", "address": "10.0.0.13", "roles": ["control_plane"]},
    {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
]
VIP = {
    "api_load_balancer": "vip",
    "api_vip": "10.0.0.100",
    "vrrp_password": "s3cret-x",
    "vrrp_interface": "eth0",
}


def cluster(hosts=HOSTS, **settings):
    return parse_cluster({"hosts": copy.deepcopy(hosts), "settings": settings}, "site.yaml")


def ctx(name: str = "cp1", hosts=HOSTS, **settings) -> NodeContext:
    parsed = cluster(hosts, **settings)
    return NodeContext.from_cluster(parsed, next(n for n in parsed.nodes if n.name == name))


def refused(hosts=HOSTS, **settings) -> list[str]:
    with pytest.raises(ClusterError) as exc:
        cluster(hosts, **settings)
    return list(exc.value.problems)


# --- the mode and the endpoint ------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "settings", "mode", "endpoint"),
    [
        (HOSTS, {}, "local", f"{API_NAME}:8443"),
        (HOSTS[:1] + HOSTS[3:], {}, "none", "10.0.0.11:6443"),
        (HOSTS, {"control_plane_endpoint": "lb.site:6443"}, "none", "lb.site:6443"),
        (HOSTS[:1], {"api_load_balancer": "local"}, "local", f"{API_NAME}:8443"),
        (HOSTS, {**VIP, "api_load_balancer_port": 9443}, "vip", "10.0.0.100:9443"),
    ],
    ids=["several-cps", "one-cp", "own-endpoint", "local-asked", "vip"],
)
def test_mode_default_rule_and_endpoint(hosts, settings, mode, endpoint):
    context = ctx(hosts=hosts, **settings)
    assert context.api_load_balancer == mode
    assert context.api_endpoint == endpoint


@pytest.mark.parametrize("name", ["cp1", "w1"])
def test_local_endpoint_name_is_in_hosts_and_certificate(name):
    context = ctx(name)
    assert hosts_block(context.nodes, local_api_name(context))[-1] == f"127.0.0.1 {API_NAME}"
    docs = list(yaml.safe_load_all(kubeadm_config.init_file(ctx("cp1", cert_sans=["a.b"]))))
    assert docs[1]["controlPlaneEndpoint"] == f"{API_NAME}:8443"
    assert docs[1]["apiServer"]["certSANs"] == ["a.b", API_NAME]


def test_no_load_balancer_adds_no_name_and_no_san():
    context = ctx(control_plane_endpoint="lb.site:6443")
    assert local_api_name(context) == ""
    assert hosts_block(context.nodes, local_api_name(context)) == hosts_block(context.nodes)
    docs = list(yaml.safe_load_all(kubeadm_config.init_file(context)))
    assert "apiServer" not in docs[1]


def test_vip_is_in_the_certificate_and_in_no_hosts_line():
    context = ctx(**VIP)
    assert local_api_name(context) == ""
    docs = list(yaml.safe_load_all(kubeadm_config.init_file(context)))
    assert docs[1]["apiServer"]["certSANs"] == ["10.0.0.100"]


# --- which daemons where, and their files -------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name", "daemons"),
    [
        ({}, "cp1", ("haproxy",)),
        ({}, "w1", ("haproxy",)),
        (VIP, "cp2", ("haproxy", "keepalived")),
        (VIP, "w1", ()),
        ({"control_plane_endpoint": "lb.site:6443"}, "cp1", ()),
    ],
)
def test_components(settings, name, daemons):
    assert model.components(ctx(name, **settings)) == daemons
    assert len(model.files(ctx(name, **settings))) == len(daemons)


def test_a_kuboard_host_outside_the_cluster_gets_no_load_balancer():
    hosts = [*HOSTS, {"name": "kb1", "address": "10.0.0.5", "roles": ["kuboard"]}]
    kuboard = {"kuboard_cluster_name": "site-a"}
    context = ctx("kb1", hosts, **kuboard)
    assert model.components(context) == () and local_api_name(context) == ""
    assert model.components(ctx("w1", hosts, **kuboard)) == ("haproxy",)
    backends = model.haproxy_cfg(ctx("w1", hosts, **kuboard))
    assert "kb1" not in backends


def test_haproxy_local_binds_loopback_and_checks_every_api_server_over_tls():
    text = model.haproxy_cfg(ctx("w1"))
    assert "    bind 127.0.0.1:8443\n" in text
    assert "option httpchk GET /livez" in text and "check-ssl verify none" in text
    servers = [line.split()[1:] for line in text.splitlines() if line.startswith("    server ")]
    assert servers == [["cp1", "10.0.0.11:6443"], ["cp2", "10.0.0.12:6443"],
                       ["cp3", "10.0.0.13:6443"]]  # fmt: skip


def test_haproxy_vip_binds_every_address_on_its_own_port():
    text = model.haproxy_cfg(ctx("cp1", **VIP, api_load_balancer_port=9443))
    assert "    bind :9443\n" in text


def test_an_added_control_plane_changes_the_backends_of_every_node():
    more = [*HOSTS, {"name": "cp4", "address": "10.0.0.14", "roles": ["control_plane"]}]
    for name in ("cp1", "w1"):
        before, after = model.haproxy_cfg(ctx(name)), model.haproxy_cfg(ctx(name, more))
        assert after == before.replace(
            "    server cp3 10.0.0.13:6443\n",
            "    server cp3 10.0.0.13:6443\n    server cp4 10.0.0.14:6443\n",
        )


def test_keepalived_priorities_follow_the_cluster_file_and_a_failed_check_drops_below():
    priorities = []
    for name in ("cp1", "cp2", "cp3"):
        text = model.keepalived_conf(ctx(name, **VIP))
        assert "    interface eth0\n" in text and "10.0.0.100/32 dev eth0" in text
        assert f"auth_pass {VIP['vrrp_password']}\n" in text
        assert "https://127.0.0.1:6443/livez" in text
        priorities.append(int(text.split("    priority ")[1].split()[0]))
    assert priorities == sorted(priorities, reverse=True)
    assert priorities[0] + model.CHECK_WEIGHT < priorities[-1]


def test_rendered_secrets_are_placeholders_only_in_keepalived_conf():
    from deploys import render

    parsed = cluster(**VIP)
    files = render.node_files(parsed, parsed.nodes[0])
    assert VIP["vrrp_password"] not in "".join(files.values())
    assert "<secret: vrrp_password>" in files[model.KEEPALIVED_CONF]
    assert model.HAPROXY_CFG in files


# --- firewall ---------------------------------------------------------------------------


def test_vip_opens_haproxys_port_and_vrrp_on_control_planes_only():
    parsed = cluster(**VIP)
    cp, worker = parsed.nodes[0], parsed.nodes[3]
    ports = firewall_ports(cp, parsed.settings_for(cp))
    assert any(p.first == 8443 and p.protocol == "tcp" for p in ports)
    assert not any(p.first == 8443 for p in firewall_ports(worker, parsed.settings_for(worker)))
    assert model.vrrp(cp, parsed.settings_for(cp)) and not model.vrrp(worker, Settings(**VIP))
    add, delete = ufw_changes((), [], vrrp=True)
    assert add == ["ufw allow to 224.0.0.18 comment pyinfra-kubeadm"] and delete == []
    ours = "allow to 224.0.0.18 comment 'pyinfra-kubeadm'"
    assert ufw_changes((), [ours], vrrp=False) == ([], ["ufw --force delete allow to 224.0.0.18"])
    assert '<protocol value="vrrp"/>' in firewalld_service(ports, vrrp=True)
    assert "protocol value" not in firewalld_service(ports)


def test_local_opens_nothing_more():
    parsed = cluster()
    node = parsed.nodes[3]
    assert firewall_ports(node, parsed.settings_for(node)) == firewall_ports(node, Settings())


# --- the cluster file ---------------------------------------------------------------------


def test_vip_needs_its_settings_and_an_interface_on_every_control_plane():
    problems = refused(api_load_balancer="vip")
    assert problems == [
        "site.yaml: settings.api_vip: required with api_load_balancer vip",
        "site.yaml: settings.vrrp_password: required with api_load_balancer vip",
        *(
            f"site.yaml: host '{n}': settings.vrrp_interface: required on control planes with "
            "api_load_balancer vip (the interface with the node's address)"
            for n in ("cp1", "cp2", "cp3")
        ),
    ]


def test_one_host_may_have_its_own_interface():
    hosts = copy.deepcopy(HOSTS)
    hosts[1]["settings"] = {"vrrp_interface": "ens3"}
    context = ctx("cp2", hosts, **VIP)
    assert "    interface ens3\n" in model.keepalived_conf(context)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"api_load_balancer": "local", "control_plane_endpoint": "lb:6443"},
         "settings.control_plane_endpoint: 'lb:6443' with api_load_balancer local"),
        ({"api_load_balancer_port": 6443}, "settings.api_load_balancer_port: 6443 is api_port"),
        ({**VIP, "api_vip": "10.0.0.12"},
         "settings.api_vip: 10.0.0.12 is the address of host 'cp2'"),
        ({"api_load_balancer": "none"},
         "settings.control_plane_endpoint: required with more than one control plane"),
        ({"api_load_balancer": "haproxy"}, "api_load_balancer: 'haproxy' is not one of"),
        ({**VIP, "api_vip": "fd00::1"}, "api_vip: 'fd00::1' is not a unicast IPv4 address"),
        ({**VIP, "api_vip": "224.0.0.18"}, "is not a unicast IPv4 address"),
        ({**VIP, "api_vip": "10.0.0.100; reboot"}, "is not a unicast IPv4 address"),
        ({**VIP, "vrrp_password": "123456789"}, "vrrp_password: 1 to 8 characters"),
        ({**VIP, "vrrp_password": 'a"b'}, "vrrp_password: 1 to 8 characters"),
        ({**VIP, "vrrp_password": "a b"}, "vrrp_password: 1 to 8 characters"),
        ({**VIP, "vrrp_password": "a}\n{b"}, "vrrp_password: 1 to 8 characters"),
        ({**VIP, "vrrp_password": "#x"}, "vrrp_password: 1 to 8 characters"),
        ({**VIP, "vrrp_interface": "eth0 }"}, "vrrp_interface: 'eth0 }' is not an interface"),
        ({**VIP, "vrrp_router_id": 256}, "vrrp_router_id: 256 is not a VRRP router id"),
        ({"api_load_balancer_port": 0}, "api_load_balancer_port: 0 is not a TCP port"),
        ({"haproxy_version": "2.6; reboot"}, "haproxy_version: '2.6; reboot' is not an apt"),
        ({"haproxy_version": "latest"}, "haproxy_version: 'latest' is not an apt version"),
        ({"keepalived_version": "1:2.2.7 x"}, "keepalived_version: '1:2.2.7 x' is not an apt"),
    ],
    ids=lambda v: str(v)[:40],
)  # fmt: skip
def test_refused(settings, problem):
    problems = refused(**settings)
    assert any(problem in p for p in problems), problems


def test_the_vrrp_password_is_never_in_a_refusal():
    problems = refused(**{**VIP, "vrrp_password": "toolong-secret"})
    assert "toolong-secret" not in "\n".join(problems)
    assert "toolong-secret" not in repr(Settings(**{**VIP, "vrrp_password": "toolong-secret"}))


# --- preflight ----------------------------------------------------------------------------


def facts(addresses: dict, probe: str = "silent") -> dict:
    return {**PreflightState.default(), "addresses": addresses, "probe": probe}


def vip_nodes(*per_cp: dict):
    parsed = cluster(**VIP)
    return [
        (node, parsed.settings_for(node), per_cp[i] if i < len(per_cp) else facts({}))
        for i, node in enumerate(parsed.nodes)
    ]


ETH0 = {"lo": ["127.0.0.1/8"], "eth0": ["10.0.0.11/24"]}


def test_a_free_vip_in_the_subnet_passes():
    assert vip_problems(vip_nodes(facts(ETH0), facts(ETH0), facts(ETH0))) == []


def test_a_vip_held_by_a_control_plane_answers_and_passes():
    held = {"eth0": ["10.0.0.12/24", "10.0.0.100/32"]}
    found = vip_problems(vip_nodes(facts(ETH0, "answered"), facts(held, "answered"), facts(ETH0)))
    assert found == []


def test_a_vip_answering_from_elsewhere_is_refused():
    found = vip_problems(vip_nodes(facts(ETH0, "answered"), facts(ETH0), facts(ETH0)))
    assert found == [
        "api_vip 10.0.0.100 already answers on the network (seen from host 'cp1') and no "
        "control plane holds it: another machine uses that address; choose an unused one"
    ]


def test_a_vip_outside_the_subnet_and_a_missing_interface_are_refused_per_host():
    other = {"eth0": ["192.168.1.5/24"]}
    found = vip_problems(vip_nodes(facts(other), facts({"ens3": ["10.0.0.12/24"]}), facts(ETH0)))
    assert found == [
        "host 'cp1': api_vip 10.0.0.100 is outside the subnet of vrrp_interface eth0 "
        "(192.168.1.0/24): keepalived moves the VIP between the control planes of one subnet",
        "host 'cp2': vrrp_interface 'eth0' has no IPv4 address on the host (interfaces with "
        "one: ens3)",
    ]


def test_the_vip_itself_does_not_make_its_subnet():
    found = vip_problems(vip_nodes(facts({"eth0": ["192.168.1.5/24", "10.0.0.100/24"]})))
    assert "outside the subnet of vrrp_interface eth0 (192.168.1.0/24)" in found[0]


def test_preflight_probes_the_vip_only_with_vip():
    assert "probe" not in PreflightState().command()
    command = PreflightState().command(probe="10.0.0.100:8443")
    assert "/dev/tcp/10.0.0.100/8443" in command


# --- the fact ------------------------------------------------------------------------------


def test_fact_parses_packages_holds_and_units():
    output = [
        "release debian 12 bookworm",
        "package hi  haproxy 2.6.12-1+deb12u4",
        "package ii  keepalived 1:2.2.7-1+b2",
        "unit ActiveState=active",
        "unit Id=haproxy.service",
        "unit UnitFileState=enabled",
        "unit ",
        "unit Id=keepalived.service",
        "unit ActiveState=inactive",
        "unit UnitFileState=disabled",
        "junk",
    ]
    assert LoadBalancerState().process(output) == {
        "release": {"id": "debian", "version": "12", "codename": "bookworm"},
        "packages": {
            "haproxy": {"version": "2.6.12-1+deb12u4", "held": True},
            "keepalived": {"version": "1:2.2.7-1+b2", "held": False},
        },
        "units": {
            "haproxy.service": {"active": True, "enabled": True},
            "keepalived.service": {"active": False, "enabled": False},
        },
    }
    assert LoadBalancerState().process([]) == LoadBalancerState.default()
