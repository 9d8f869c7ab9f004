"""deploys.preflight.facts: recorded outputs (preflight.PreflightState/*.json; the
debian12_docker_container case is this project's build machine, the others as a VM and a
lab node print them) parse to the fact, and the command itself runs under sh."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deploys.preflight.facts import (
    CLUSTER_CA,
    CONTAINERD_PACKAGES,
    KUBELET_CONF,
    PreflightState,
)

CASES = sorted((Path(__file__).parent / "preflight.PreflightState").glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_recorded_output_parses(path):
    case = json.loads(path.read_text())
    assert PreflightState().process(case["output"]) == case["fact"]


def test_no_output_is_the_default():
    assert PreflightState().process([]) == PreflightState.default()


def test_default_is_a_fresh_dict_each_time():
    first = PreflightState.default()
    first["macs"]["eth0"] = "x"
    assert PreflightState.default()["macs"] == {}


def test_ports_are_hexadecimal_and_listed_once_in_order():
    fact = PreflightState().process(
        ["listen tcp 280A", "listen tcp 0016", "listen tcp 280A", "listen udp 2118"]
    )
    assert fact["listening"] == ["22/tcp", "8472/udp", "10250/tcp"]


@pytest.mark.parametrize(
    ("lines", "joined", "left_over"),
    [
        ([], False, False),
        (["joined yes", "left-over yes"], True, True),
        (["left-over yes"], False, True),
        (["left-over no"], False, False),
    ],
)
def test_joined_and_left_over_are_read_apart(lines, joined, left_over):
    fact = PreflightState().process(lines)
    assert (fact["joined"], fact["left_over"]) == (joined, left_over)


def test_memory_is_memtotal_in_mib_and_identities_are_lower_case():
    fact = PreflightState().process(
        ["memory 1740800", "product-uuid ABCD-EF", "mac ens3 52:54:00:AB:CD:EF"]
    )
    assert fact["memory_mib"] == 1700
    assert fact["product_uuid"] == "abcd-ef"
    assert fact["macs"] == {"ens3": "52:54:00:ab:cd:ef"}


@pytest.mark.parametrize(
    "needle",
    [
        "/sys/fs/cgroup",
        "nproc",
        "MemTotal",
        "/etc/machine-id",
        "/sys/class/dmi/id/product_uuid",
        "/sys/class/net/",
        "/virtual/",
        KUBELET_CONF,
        CLUSTER_CA,
        "/proc/net/tcp6",
        "/proc/net/udp",
        f"LC_ALL=C apt-cache policy {' '.join(CONTAINERD_PACKAGES)}",
    ],
)
def test_command_asks_for(needle):
    assert needle in PreflightState().command()


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_command_is_valid_shell(shell):
    if not shutil.which(shell):
        pytest.skip(f"no {shell} here")
    result = subprocess.run([shell, "-n", "-c", PreflightState().command()], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_command_runs_here_and_reads_what_this_machine_is():
    result = subprocess.run(
        ["sh", "-c", PreflightState().command()], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    fact = PreflightState().process(result.stdout.splitlines())
    assert fact["cpus"] >= 1
    assert fact["memory_mib"] > 0
    assert fact["cgroup"]
