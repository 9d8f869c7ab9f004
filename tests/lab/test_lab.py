"""The lab works: booted nodes, verified SSH, apt through the proxy only, a shared bridge."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deploys.settings import load_cluster
from tests.lab import aptsources, config
from tests.lab.api import READY_STATES
from tests.lab.fixture import LAB_NODES, LAB_SUITES

pytestmark = pytest.mark.lab

# What /etc/debian_version holds on each suite.
DEBIAN_VERSION = {"bookworm": "12.", "trixie": "13.", "sid": "/sid"}
NODE_SUITES = list(zip(LAB_NODES, LAB_SUITES, strict=True))
# Sends one request line to the proxy from a node; prints the status line of the answer.
PROXY_PROBE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as conn:
    conn.sendall(sys.argv[3].encode() + b"\\r\\nHost: probe\\r\\n\\r\\n")
    print(conn.recv(200).split(b"\\r\\n")[0].decode())
"""


def proxy_answer(lab, node: str, request_line: str) -> str:
    args = [*config.PROXY_ENDPOINT.split(":"), request_line]
    command = f"python3 -c {shlex.quote(PROXY_PROBE)} {shlex.join(args)}"
    return lab.ssh(node, command).stdout.strip()


def host_mirror() -> str:
    sources = aptsources.host_sources()
    return aptsources.debian_mirrors(sources, aptsources.host_codename()).archive.uri


@pytest.mark.parametrize(("name", "suite"), NODE_SUITES)
def test_node_answers_ssh_as_itself_on_its_suite(lab, name, suite):
    result = lab.ssh(name, "hostname; cat /etc/debian_version")
    hostname, debian_version = result.stdout.split()
    assert hostname == name
    assert DEBIAN_VERSION[suite] in debian_version
    assert lab.node(name).suite == suite


@pytest.mark.parametrize("name", LAB_NODES)
def test_node_runs_systemd(lab, name):
    state = lab.ssh(name, "systemctl is-system-running", check=False).stdout.strip()
    assert state in READY_STATES
    assert lab.ssh(name, "cat /proc/1/comm").stdout.strip() == "systemd"


def test_status_shows_every_node_running_and_reachable(lab):
    rows = lab.status()
    assert [row["name"] for row in rows] == list(LAB_NODES)
    assert all(row["running"] and row["ssh"] for row in rows)


def test_inventory_is_a_valid_cluster_file(lab):
    cluster = load_cluster(lab.inventory_path)
    assert [(n.name, n.address) for n in cluster.nodes] == [(n.name, n.address) for n in lab.nodes]
    assert [n.roles for n in cluster.nodes] == [("control_plane",), ("worker",), ("worker",)]
    settings = cluster.settings_for(cluster.nodes[0])
    assert settings.ssh_key == str(lab.key_path)
    assert settings.ssh_known_hosts_file == str(lab.known_hosts_path)


@pytest.mark.parametrize("name", LAB_NODES)
def test_apt_update_works_through_the_proxy(lab, name):
    result = lab.ssh(name, "apt-get update")
    assert "Err:" not in result.stdout


@pytest.mark.parametrize("name", LAB_NODES)
def test_node_has_no_route_out(lab, name):
    assert lab.ssh(name, "ip -4 route show default; ip -6 route show default").stdout == ""


@pytest.mark.parametrize(
    "request_line",
    [
        "GET http://example.com/ HTTP/1.1",
        "CONNECT example.com:443 HTTP/1.1",
        "GET http://{mirror_host}:8080/ HTTP/1.1",
        "GET /debian/ HTTP/1.1",
    ],
    ids=["other-host", "tunnel-to-other-host", "mirror-host-other-port", "not-a-proxy-request"],
)
def test_proxy_refuses_what_is_not_an_apt_source(lab, request_line):
    mirror_host = urlsplit(host_mirror()).hostname
    answer = proxy_answer(lab, LAB_NODES[0], request_line.format(mirror_host=mirror_host))
    assert answer.split()[1] == "403", answer


def test_proxy_forwards_to_the_mirror(lab):
    answer = proxy_answer(lab, LAB_NODES[0], f"HEAD {host_mirror()}/dists/sid/Release HTTP/1.1")
    assert answer.split()[1] == "200", answer


@pytest.mark.parametrize(
    ("source", "target"), list(zip(LAB_NODES, LAB_NODES[1:] + LAB_NODES[:1], strict=True))
)
def test_nodes_reach_each_other_over_the_bridge(lab, source, target):
    address = lab.node(target).address
    lab.ssh(source, f"ping -c 1 -W 5 {address}")
    banner = lab.ssh(
        source,
        "python3 -c 'import socket, sys; "
        "print(socket.create_connection((sys.argv[1], 22), timeout=5).recv(64).decode())' "
        + address,
    )
    assert banner.stdout.startswith("SSH-2.0-")


def test_restart_power_cycles_the_node(lab):
    boot_id = "cat /proc/sys/kernel/random/boot_id"
    before = lab.ssh(LAB_NODES[1], boot_id).stdout
    old_pid = lab.node(LAB_NODES[1]).pid
    lab.ssh(LAB_NODES[1], "echo kept > /root/restart-marker && sync")

    lab.restart(LAB_NODES[1])

    assert lab.ssh(LAB_NODES[1], boot_id).stdout != before
    assert lab.node(LAB_NODES[1]).pid != old_pid
    assert lab.ssh(LAB_NODES[1], "systemctl is-system-running").stdout.strip() in READY_STATES
    assert lab.ssh(LAB_NODES[1], "cat /root/restart-marker").stdout == "kept\n"


@pytest.mark.parametrize("stopper", LAB_NODES)
def test_stopping_a_unit_in_one_node_leaves_the_same_unit_in_the_others_running(lab, stopper):
    """Each node's systemd has a cgroup tree of its own: stopping a unit in one node kills
    only that node's processes, never those of the same unit in another node (systemd from
    trixie's on kills a unit through its cgroup, which would reach every node in it)."""
    unit = f"lab-cgroup-probe-{stopper}.service"
    for name in LAB_NODES:
        lab.ssh(name, f"systemd-run --unit={unit} sleep 600")
    try:
        lab.ssh(stopper, f"systemctl stop {unit}")
        time.sleep(1)
        states = {
            name: lab.ssh(name, f"systemctl is-active {unit}", check=False).stdout.strip()
            for name in LAB_NODES
        }
        assert states == {n: "inactive" if n == stopper else "active" for n in LAB_NODES}
    finally:
        for name in LAB_NODES:
            lab.ssh(name, f"systemctl stop {unit}; systemctl reset-failed {unit}", check=False)


@pytest.mark.parametrize("name", LAB_NODES)
def test_each_node_runs_in_a_cgroup_of_its_own(lab, name):
    pid = lab.node(name).pid
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    unified = next(line.removeprefix("0::") for line in lines if line.startswith("0::"))
    # systemd-nspawn keeps itself in .../supervisor and the container in .../payload.
    assert f"/pyinfra-kubeadm-{config.LAB}/{name}/" in f"{unified}/", unified
