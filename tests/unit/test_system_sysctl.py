"""sysctl: the file, what is set live (and what a container cannot set), and what a cluster
file may not ask for."""

import pytest

from deploys.settings import ClusterError, Settings, parse_cluster
from deploys.system.sysctl import is_namespaced, live_changes, sysctl_file, sysctl_values

REQUIRED = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.ipv4.ip_forward": "1",
}


def test_required_values():
    assert sysctl_values(Settings()) == REQUIRED


def test_extras_follow_the_required_ones():
    settings = Settings(
        sysctls={"vm.max_map_count": 262144, "net.ipv4.tcp_rmem": "4096  87380\t6291456"}
    )
    assert list(sysctl_values(settings).items()) == [
        *REQUIRED.items(),
        ("vm.max_map_count", "262144"),
        ("net.ipv4.tcp_rmem", "4096 87380 6291456"),
    ]


def test_file_lists_every_value():
    settings = Settings(sysctls={"fs.inotify.max_user_watches": 524288})
    assert sysctl_file(settings).splitlines()[2:] == [
        "net.bridge.bridge-nf-call-iptables = 1",
        "net.bridge.bridge-nf-call-ip6tables = 1",
        "net.ipv4.ip_forward = 1",
        "fs.inotify.max_user_watches = 524288",
    ]


@pytest.mark.parametrize(
    "key, namespaced",
    [
        ("net.ipv4.ip_forward", True),
        ("net.bridge.bridge-nf-call-iptables", True),
        ("vm.max_map_count", False),
        ("kernel.pid_max", False),
        ("fs.inotify.max_user_watches", False),
        ("netfoo.bar", False),
    ],
)
def test_is_namespaced(key, namespaced):
    assert is_namespaced(key) is namespaced


WANTED = {**REQUIRED, "vm.max_map_count": "262144", "net.ipv4.tcp_rmem": "4096 87380 6291456"}


@pytest.mark.parametrize(
    "live, container, settable, read_only",
    [
        # converged: live values as pyinfra's Sysctl fact parses them (ints, lists)
        (
            {
                **{k: 1 for k in REQUIRED},
                "vm.max_map_count": 262144,
                "net.ipv4.tcp_rmem": [4096, 87380, 6291456],
            },
            "none",
            {},
            {},
        ),
        # fresh VM: br_netfilter not loaded (keys absent), forwarding off
        (
            {
                "net.ipv4.ip_forward": 0,
                "vm.max_map_count": 65530,
                "net.ipv4.tcp_rmem": [4096, 131072, 6291456],
            },
            "none",
            WANTED,
            {},
        ),
        # container: the vm.* parameter is the host kernel's, read-only here
        (
            {"net.ipv4.ip_forward": 0, "vm.max_map_count": 65530},
            "systemd-nspawn",
            {k: v for k, v in WANTED.items() if k != "vm.max_map_count"},
            {"vm.max_map_count": "262144"},
        ),
        # container whose host already has the value: nothing to report
        (
            {
                **{k: 1 for k in REQUIRED},
                "vm.max_map_count": 262144,
                "net.ipv4.tcp_rmem": [4096, 87380, 6291456],
            },
            "lxc",
            {},
            {},
        ),
    ],
    ids=["converged", "fresh-vm", "container", "container-converged"],
)
def test_live_changes(live, container, settable, read_only):
    assert live_changes(WANTED, live, container) == (settable, read_only)


@pytest.mark.parametrize(
    "sysctls",
    [
        {"; whoami": 1},
        {"vm.max_map_count; reboot": 1},
        {"vm max": 1},
        {"vm": 1},
        {"vm.max_map_count": "1\nkernel.panic = 1"},
        {"vm.max_map_count": "   "},
        {"vm.max_map_count": True},
        {"vm.max_map_count": 1.5},
        {"net.ipv4.ip_forward": 0},
        {"net.bridge.bridge-nf-call-iptables": "0"},
    ],
)
def test_cluster_file_refuses(sysctls):
    doc = {
        "hosts": [{"name": "cp1", "address": "10.0.0.1", "roles": ["control_plane"]}],
        "settings": {"sysctls": sysctls},
    }
    with pytest.raises(ClusterError, match="sysctls"):
        parse_cluster(doc)


@pytest.mark.parametrize(
    "sysctls",
    [
        {"net.ipv4.ip_forward": 1},  # the required value itself is fine
        {"vm.max_map_count": 262144},
        {"kernel.core_pattern": "|/usr/lib/systemd/systemd-coredump %P %u"},
        {"net.ipv4.conf.eth0.rp_filter": "2"},
    ],
)
def test_cluster_file_accepts(sysctls):
    doc = {
        "hosts": [{"name": "cp1", "address": "10.0.0.1", "roles": ["control_plane"]}],
        "settings": {"sysctls": sysctls},
    }
    assert parse_cluster(doc).overrides["sysctls"] == sysctls
