"""deploys/node.py as a whole (OS preparation, then containerd) on each supported release."""

from pathlib import Path

import pytest
from pyinfra.api import deploy

from deploys import concerns, runtime, system
from tests.deploy import harness
from tests.deploy.test_system import converged_hosts

# Debian 11's own containerd (1.4) is too old; such sites use Docker's containerd.io.
# Ubuntu 20.04 boots with cgroup v1, which the kubelet refuses from 1.35: such sites pin 1.34.
SETTINGS = {
    "debian-11": {"containerd_source": "docker"},
    "ubuntu-20.04": {"kubernetes_version": "1.34.2"},
}
HOSTS = ("cp1", "w1", "w2")


ENTRY = Path(concerns.__file__).with_name("node.py")


@deploy("Node")
def node():
    """deploys/node.py itself, run as pyinfra runs a deploy file (it runs at import)."""
    exec(compile(ENTRY.read_text(), str(ENTRY), "exec"), {"__file__": str(ENTRY)})


def cluster(os_release):
    doc = {**harness.DEFAULT_CLUSTER, "settings": SETTINGS.get(os_release, {})}
    return doc


def test_the_entry_files_compose_exactly_these_concerns():
    assert (system, runtime) == concerns.NODE
    assert concerns.CLUSTER[: len(concerns.NODE)] == concerns.NODE


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_fresh_node_succeeds(os_release):
    run = harness.run(node, os=os_release, cluster=cluster(os_release))
    for host in HOSTS:
        assert run.failed(host) == []
        assert "containerd: write config.toml" in run.changed(host)


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
@pytest.mark.parametrize("host", HOSTS)
def test_converged_node_changes_nothing_and_reads_little(os_release, host):
    run = harness.run(
        node,
        os=os_release,
        cluster=cluster(os_release),
        converged=True,
        host_facts=converged_hosts(os_release),  # each host's own hostname and firewall rules
    )
    assert run.failed(host) == []
    assert run.changed(host) == []
    # Target: a converged re-run under 40 remote commands per host.
    assert len(run.reads[host]) < 40, run.reads[host]
