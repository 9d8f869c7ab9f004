"""Firewall: the ports per role and backend, the ufw changes, the firewalld service."""

import pytest

from deploys.settings import Node, Settings
from deploys.system.firewall import (
    PortRange,
    firewall_ports,
    firewalld_service,
    ufw_changes,
    ufw_rule,
)

CP = Node("cp1", "10.0.0.11", ("control_plane",))
WORKER = Node("w1", "10.0.0.21", ("worker",))
BOTH = Node("n1", "10.0.0.31", ("control_plane", "worker"))


def _specs(node, **settings):
    return [p.ufw for p in firewall_ports(node, Settings(**settings))]


@pytest.mark.parametrize(
    "node, settings, expected",
    [
        (CP, {}, ["2379:2380/tcp", "6443/tcp", "8472/udp", "10250/tcp", "10257/tcp", "10259/tcp"]),
        (WORKER, {}, ["8472/udp", "10250/tcp", "10256/tcp", "30000:32767/tcp"]),
        (
            BOTH,
            {},
            [
                "2379:2380/tcp",
                "6443/tcp",
                "8472/udp",
                "10250/tcp",
                "10256/tcp",
                "10257/tcp",
                "10259/tcp",
                "30000:32767/tcp",
            ],
        ),
        (
            CP,
            {"api_port": 8443},
            ["2379:2380/tcp", "8443/tcp", "8472/udp", "10250/tcp", "10257/tcp", "10259/tcp"],
        ),
        (WORKER, {"flannel_backend": "host-gw"}, ["10250/tcp", "10256/tcp", "30000:32767/tcp"]),
        (
            WORKER,
            {"flannel_backend": "wireguard"},
            ["10250/tcp", "10256/tcp", "30000:32767/tcp", "51820:51821/udp"],
        ),
    ],
)
def test_firewall_ports(node, settings, expected):
    assert _specs(node, **settings) == expected


@pytest.mark.parametrize(
    "port, ufw, firewalld",
    [
        (PortRange(6443, 6443, "tcp"), "6443/tcp", "6443"),
        (PortRange(2379, 2380, "tcp"), "2379:2380/tcp", "2379-2380"),
        (PortRange(8472, 8472, "udp"), "8472/udp", "8472"),
    ],
)
def test_port_spellings(port, ufw, firewalld):
    assert (port.ufw, port.firewalld) == (ufw, firewalld)


WORKER_PORTS = firewall_ports(WORKER, Settings())
WORKER_RULES = [ufw_rule(p) for p in WORKER_PORTS]


def test_ufw_rule_is_spelled_as_ufw_lists_it():
    assert (
        ufw_rule(PortRange(30000, 32767, "tcp"))
        == "allow 30000:32767/tcp comment 'pyinfra-kubeadm'"
    )


@pytest.mark.parametrize(
    "rules, add, delete",
    [
        (
            [],
            [
                "ufw allow 8472/udp comment pyinfra-kubeadm",
                "ufw allow 10250/tcp comment pyinfra-kubeadm",
                "ufw allow 10256/tcp comment pyinfra-kubeadm",
                "ufw allow 30000:32767/tcp comment pyinfra-kubeadm",
            ],
            [],
        ),
        (WORKER_RULES, [], []),
        # the operator's own rules stay, whatever they open
        (["allow 22/tcp", "allow 6443/tcp", *WORKER_RULES], [], []),
        # this node was a control plane before: its tagged rules go
        (
            [
                *WORKER_RULES,
                "allow 6443/tcp comment 'pyinfra-kubeadm'",
                "allow 2379:2380/tcp comment 'pyinfra-kubeadm'",
            ],
            [],
            ["ufw --force delete allow 6443/tcp", "ufw --force delete allow 2379:2380/tcp"],
        ),
        (
            WORKER_RULES[1:],
            ["ufw allow 8472/udp comment pyinfra-kubeadm"],
            [],
        ),
    ],
    ids=["fresh", "converged", "others-rules", "former-control-plane", "one-missing"],
)
def test_ufw_changes(rules, add, delete):
    assert ufw_changes(WORKER_PORTS, rules) == (add, delete)


def test_firewalld_service_lists_exactly_the_ports():
    xml = firewalld_service(firewall_ports(WORKER, Settings()))
    ports = [line.strip() for line in xml.splitlines() if "<port " in line]
    assert ports == [
        '<port protocol="udp" port="8472"/>',
        '<port protocol="tcp" port="10250"/>',
        '<port protocol="tcp" port="10256"/>',
        '<port protocol="tcp" port="30000-32767"/>',
    ]
    assert "<short>pyinfra-kubeadm</short>" in xml
