"""Secrets never in what pyinfra prints: its inventory dump, -vvv and --debug.

The cluster file holds registry credentials (cluster-wide and for one host) and a Kuboard
agent token. `debug-inventory` runs the real `pyinfra` command; the runs with -vvv and
--debug go through pyinfra's own command line too, once against unreachable addresses (the
real SSH connector) and once against recorded hosts (tests/deploy/cli.py) so that every
operation of the deploy is prepared and executed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy import test_addons_kuboard, test_kubernetes

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Reg1stryPassw0rd"
HOST_PASSWORD = "H0stOnlyPassw0rd"
USERNAME = "robot-puller"
TOKEN = test_addons_kuboard.TOKEN
SECRETS = (PASSWORD, HOST_PASSWORD, USERNAME, TOKEN)
# What the recorded hosts answer: join credentials, then the Kuboard agent manifest.
RESPONSES = [*test_kubernetes.RESPONSES, (test_addons_kuboard.FETCH, 0, test_addons_kuboard.SERVED)]


def cluster_file(tmp_path: Path, prefix: str) -> Path:
    doc = {
        "hosts": [
            {"name": "cp1", "address": f"{prefix}.11", "roles": ["control_plane"]},
            {
                "name": "w1",
                "address": f"{prefix}.21",
                "roles": ["worker"],
                "settings": {
                    "registry_auth": {
                        "10.0.0.5:5000": {"username": USERNAME, "password": HOST_PASSWORD}
                    }
                },
            },
        ],
        "settings": {
            "registry_auth": {
                "harbor.example.internal": {"username": USERNAME, "password": PASSWORD}
            },
            "kuboard_server": "http://10.0.0.5:80",
            "kuboard_cluster_name": "site-a",
            "kuboard_agent_token": TOKEN,
        },
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(tmp_path: Path, command: list[str], prefix: str = "192.0.2") -> str:
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={
            "CLUSTER": str(cluster_file(tmp_path, prefix)),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout + result.stderr


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output


PYINFRA = [sys.executable, "-m", "pyinfra"]


@pytest.mark.parametrize("options", [[], ["--json"], ["--debug", "-vvv"]])
def test_debug_inventory_prints_settings_with_secret_placeholders(tmp_path, options):
    output = run(tmp_path, [*PYINFRA, *options, "inventory.py", "debug-inventory"])
    assert_no_secret(output)
    assert output.count('"kuboard_agent_token": "<secret: kuboard_agent_token>"') == 2
    placeholder = "<secret: registry_auth.10.0.0.5:5000.password>"
    assert output.count(placeholder) == 1  # w1's own credentials
    assert output.count("<secret: registry_auth.harbor.example.internal.password>") == 1
    assert '"kubernetes_version": "1.35.9"' in output


@pytest.mark.parametrize("options", [["-vvv"], ["--debug"], ["--debug", "-vvv"]])
def test_unreachable_hosts(tmp_path, options):
    command = [*PYINFRA, "-y", *options, "inventory.py", "deploys/cluster.py"]
    output = run(tmp_path, command)
    assert "Could not connect" in output
    assert_no_secret(output)


RAN = (
    "[cp1] Success",
    "containerd: write /etc/containerd/certs.d/10.0.0.5:5000/hosts.toml",
    "kuboard: fetch agent manifest",
    "kuboard: apply agent manifest",
)
PLANNED = ("containerd: write /etc/containerd/certs.d/", "kuboard: fetch agent manifest")


@pytest.mark.parametrize(
    ("options", "printed"),
    [
        (["-y", "-vvv"], RAN),
        (["-y", "--debug"], RAN),
        (["-y", "--debug", "-vvv"], RAN),
        (["--dry", "--diff", "-vvv"], PLANNED),
        (["--debug-operations"], PLANNED),
    ],
)
def test_a_whole_run_on_recorded_hosts(tmp_path, options, printed):
    command = [
        *[sys.executable, "-m", "tests.deploy.cli", "ubuntu-24.04"],
        f"--responses={__name__}:RESPONSES",
        *[*options, "inventory.py", "deploys/cluster.py"],
    ]
    output = run(tmp_path, command, prefix="10.0.0")
    assert_no_secret(output)
    for text in printed:  # what shows that the run got that far
        assert text in output
