"""Settings travel whole: the checked cluster reaches every deploy as objects, not as
flattened host data rebuilt without checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyinfra import host
from pyinfra.api import Inventory, OperationError, deploy

from deploys import settings
from deploys.context import NodeContext
from deploys.inventory import host_data
from deploys.settings import parse_cluster
from tests.deploy import harness

ROOT = Path(__file__).resolve().parents[2]
DOC = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {
            "name": "w1",
            "address": "10.0.0.21",
            "roles": ["worker"],
            "settings": {"time_servers": ["10.0.0.1"], "registry_mirrors": {"docker.io": []}},
        },
        {"name": "w2", "address": "10.0.0.22", "roles": ["worker", "control_plane"]},
    ],
    "settings": {
        "ssh_user": "ops",
        "sudo": True,
        "control_plane_endpoint": "10.0.0.10:6443",
        "pod_subnet": "10.32.0.0/16",
    },
}
CLUSTER = parse_cluster(DOC, "<test cluster>")
# The keys pyinfra's SSH connector reads.
CONNECTION_KEYS = {"ssh_hostname", "ssh_user", "ssh_port", "_sudo"}


@pytest.mark.parametrize("node", CLUSTER.nodes, ids=lambda n: n.name)
def test_host_data_is_the_node_the_nodes_and_the_settings(node):
    data = host_data(CLUSTER, node)
    assert set(data) == {"node", "nodes", "settings", *CONNECTION_KEYS}
    assert data["node"] is node
    assert data["nodes"] is CLUSTER.nodes
    assert data["settings"] == CLUSTER.settings_for(node)
    assert (data["ssh_hostname"], data["ssh_user"], data["_sudo"]) == (node.address, "ops", True)


def test_no_setting_is_flattened_into_host_data():
    for node in CLUSTER.nodes:
        flat = set(host_data(CLUSTER, node)) & set(settings.SETTING_NAMES)
        # pyinfra's own keys of the same names
        assert flat <= {"ssh_user", "ssh_port", "ssh_key", "ssh_known_hosts_file"}


SEEN: dict[str, NodeContext] = {}


@deploy("Record the context")
def record_context():
    SEEN[host.name] = NodeContext.of(host)


def test_a_deploy_reads_the_checked_cluster():
    SEEN.clear()
    harness.run(record_context, cluster=DOC)
    assert set(SEEN) == {"cp1", "w1", "w2"}
    for node in CLUSTER.nodes:
        ctx = SEEN[node.name]
        assert ctx.node == node
        assert ctx.nodes == CLUSTER.nodes
        assert ctx.settings == CLUSTER.settings_for(node)
    assert SEEN["w1"].settings.time_servers == ["10.0.0.1"]
    assert SEEN["w2"].settings.time_servers == ["pool.ntp.org"]
    assert SEEN["w2"].control_planes == (CLUSTER.nodes[0], CLUSTER.nodes[2])


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"pod_subnet": "bogus"}, "pod_subnet"),  # pyinfra --data pod_subnet=bogus
        ({"kubernetes_version": "1.99.0", "time_sync": "ntp"}, "kubernetes_version, time_sync"),
        ({"kuboard_server": "http://evil.example"}, "kuboard_server"),
    ],
)
def test_a_setting_given_as_pyinfra_data_stops_the_run(data, named):
    hosts = [(n.name, host_data(CLUSTER, n)) for n in CLUSTER.nodes]
    inventory = Inventory((hosts, {}), override_data=data)
    with pytest.raises(OperationError) as exc:
        NodeContext.of(inventory.get_host("w1"))
    assert str(exc.value) == (
        f"w1: {named} given as pyinfra data (--data or group_data/), which settings are "
        "never read from: set it in the cluster file"
    )


@pytest.mark.parametrize("data", [{"ssh_user": "admin"}, {"ssh_port": 2222}, {"anything": 1}])
def test_pyinfra_data_of_its_own(data):
    hosts = [(n.name, host_data(CLUSTER, n)) for n in CLUSTER.nodes]
    inventory = Inventory((hosts, {}), override_data=data)
    assert NodeContext.of(inventory.get_host("w1")).settings == CLUSTER.settings_for(
        CLUSTER.nodes[1]
    )


def test_the_command_line_stops_before_any_operation(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(DOC))
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.cli", "ubuntu-24.04", "-y"]
        + ["--data", "pod_subnet=10.9.0.0/16", "inventory.py", "deploys/node.py"],
        cwd=ROOT,
        env={"CLUSTER": str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "pod_subnet given as pyinfra data" in result.stderr
    assert "Starting operation" not in result.stderr
    assert "Traceback" not in result.stderr
