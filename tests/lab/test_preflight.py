"""Preflight on real nodes: lab2 given lab1's /etc/machine-id (as a cloned machine has it)
makes the real `pyinfra` command stop with the report while it prepares, and no node is
changed; with the machine-id put back, preflight lets the same command through.

What a node is, before and after, is read with plain commands (never the deploy's facts):
the files the deploy writes, the packages and their holds, the enabled units, the hostname.
"""

from __future__ import annotations

import pytest

from tests.lab.fixture import LAB_NODES
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

# Everything the node deploy could change, in one SSH round trip (missing files included).
_OBSERVE = """
hostname
sha256sum /etc/hosts /etc/fstab /etc/modules-load.d/k8s.conf /etc/sysctl.d/99-kubernetes.conf \
  /etc/containerd/config.toml /etc/chrony/chrony.conf /etc/apt/sources.list.d/* 2>&1
dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n' | sha256sum
apt-mark showhold
systemctl list-unit-files --no-legend --no-pager --state=enabled | sha256sum
sysctl -n net.ipv4.ip_forward
"""


def observed(lab, name: str) -> str:
    return lab.ssh(name, _OBSERVE, check=False).stdout


def machine_id(lab, name: str) -> str:
    return lab.ssh(name, "cat /etc/machine-id").stdout.strip()


def run_pyinfra(lab) -> Run:
    return pyinfra("deploys/node.py", lab.inventory_path, timeout=900)


def test_cloned_machine_id_stops_the_run_and_changes_no_node(lab):
    first, second = LAB_NODES[0], LAB_NODES[1]
    own, cloned = machine_id(lab, second), machine_id(lab, first)
    assert own != cloned, "the lab's nodes should start with their own machine-ids"
    before = {name: observed(lab, name) for name in LAB_NODES}
    lab.ssh(second, f"printf '%s\\n' {cloned} > /etc/machine-id")
    try:
        result = run_pyinfra(lab)
    finally:
        lab.ssh(second, f"printf '%s\\n' {own} > /etc/machine-id")

    output = result.output
    assert result.result.returncode != 0, output[-6000:]
    assert f"hosts '{first}', '{second}': the same /etc/machine-id {cloned}" in output, output
    assert "; no host was changed:" in output
    assert "Beginning operation run" not in output
    assert "Traceback" not in output
    assert {name: observed(lab, name) for name in LAB_NODES} == before


def test_with_its_own_machine_id_back_preflight_lets_the_run_through(lab):
    result = run_pyinfra(lab)
    assert "preflight:" not in result.output, result.output[-6000:]
    assert "Beginning operation run" in result.output
