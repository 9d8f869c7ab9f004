"""The Vagrantfile is valid and describes the same cluster as inventory/cluster.yaml."""

import os
import re
import subprocess
from pathlib import Path

from deploys.settings import load_cluster
from tests.lab.host_packages import require_commands

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = (ROOT / "Vagrantfile").read_text()


def vagrant_nodes() -> dict[str, str]:
    pattern = r'\{ name: "([^"]+)", ip: "([^"]+)"'
    return dict(re.findall(pattern, VAGRANTFILE))


def test_vagrantfile_matches_the_default_cluster_file():
    cluster = load_cluster(ROOT / "inventory" / "cluster.yaml")
    assert vagrant_nodes() == {n.name: n.address for n in cluster.nodes}
    roles = [n.roles for n in cluster.nodes]
    assert roles == [("control_plane",), ("worker",), ("worker",)]


def test_ssh_keys_in_cluster_file_are_vagrants():
    cluster = load_cluster(ROOT / "inventory" / "cluster.yaml")
    for node in cluster.nodes:
        key = cluster.settings_for(node).ssh_key
        assert key == f".vagrant/machines/{node.name}/virtualbox/private_key"


def test_vagrant_validate(tmp_path):
    require_commands("vagrant")
    env = {
        **os.environ,
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }
    result = subprocess.run(
        ["vagrant", "validate", "--ignore-provider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout
