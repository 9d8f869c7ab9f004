"""Preflight with recorded facts: every problem on every host in one report, before any host
is changed; and, as the pyinfra CLI plans hosts (in parallel greenlets), read once per run."""

import copy
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import gevent
import pytest
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_state
from pyinfra_cli.util import load_deploy_file

from deploys.preflight import PreflightRefused, check_cluster
from deploys.preflight.facts import PreflightState
from deploys.settings import parse_cluster
from tests.deploy import harness

ROOT = Path(__file__).resolve().parents[2]
FACT = "deploys.preflight.facts.PreflightState"
HOSTS = ("cp1", "w1", "w2")


def cluster(**settings) -> dict:
    return {**harness.DEFAULT_CLUSTER, "settings": settings}


def recorded(os_release: str = "ubuntu-24.04", host: str = "cp1") -> dict:
    own = harness.load_host_facts(os_release).get(host, {}).get(FACT, {})
    return {**harness.load_facts(os_release)[FACT], **copy.deepcopy(own)}


def with_fact(os_release: str = "ubuntu-24.04", **per_host) -> dict:
    """host_facts for harness.run: each named host's recorded PreflightState changed."""
    return {
        host: {FACT: {**recorded(os_release, host), **changes}}
        for host, changes in per_host.items()
    }


def refusal(os_release="ubuntu-24.04", settings=None, **per_host) -> str:
    with pytest.raises(PreflightRefused) as exc:
        harness.run(
            check_cluster,
            os=os_release,
            cluster=cluster(**(settings or {})),
            host_facts=with_fact(os_release, **per_host),
        )
    return str(exc.value)


def passes(os_release="ubuntu-24.04", settings=None, **per_host) -> harness.Run:
    return harness.run(
        check_cluster,
        os=os_release,
        cluster=cluster(**(settings or {})),
        host_facts=with_fact(os_release, **per_host),
    )


# Settings each release needs (see tests/deploy/test_node.py).
NEEDS = {
    "debian-11": {"containerd_source": "docker"},
    "ubuntu-20.04": {"kubernetes_version": "1.34.2"},
}


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_recorded_fresh_machines_pass_with_one_fact_each(os_release):
    run = passes(os_release, NEEDS.get(os_release))
    for host in HOSTS:
        assert run.reads[host] == [FACT]
        assert run.missing_facts.get(host, set()) == set()


# --- cgroup v2 from Kubernetes 1.35 ----------------------------------------------------


CGROUP_V2_RELEASES = [r for r in harness.OS_RELEASES if r != "ubuntu-20.04"]


@pytest.mark.parametrize("os_release", CGROUP_V2_RELEASES)
def test_kubernetes_1_35_runs_on_releases_that_boot_with_cgroup_v2(os_release):
    passes(os_release, {**NEEDS.get(os_release, {}), "kubernetes_version": "1.35.9"})


def test_kubernetes_1_35_on_cgroup_v1_is_refused_with_both_ways_out():
    message = refusal("ubuntu-20.04", {"kubernetes_version": "1.35.9"})
    for host in HOSTS:
        assert f"host {host!r}: cgroup v1 (/sys/fs/cgroup is tmpfs)" in message
    assert "systemd.unified_cgroup_hierarchy=1" in message
    assert "set kubernetes_version to a 1.34 release" in message


def test_cgroup_v1_is_fine_up_to_kubernetes_1_34():
    passes("ubuntu-20.04", {"kubernetes_version": "1.34.2"})


def test_ubuntu_20_04_booted_with_cgroup_v2_passes_with_1_35():
    passes(
        "ubuntu-20.04",
        {"kubernetes_version": "1.35.9"},
        **{host: {"cgroup": "cgroup2fs"} for host in HOSTS},
    )


# --- OS release -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "release",
    [
        {"id": "ubuntu", "version": "18.04"},
        {"id": "ubuntu", "version": "25.04"},
        {"id": "debian", "version": "10"},
        {"id": "centos", "version": "9"},
        {"id": "", "version": ""},
    ],
)
def test_unsupported_release_is_refused(release):
    message = refusal(w1={"release": release})
    assert "host 'w1': OS release" in message
    assert "is not supported; supported: Ubuntu 20.04, 22.04, 24.04, Debian 11, 12, 13" in message


def test_debian_testing_and_unstable_pass():
    passes("debian-13", **{host: {"release": {"id": "debian", "version": ""}} for host in HOSTS})


# --- CPUs and memory -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "changes", "expected"),
    [
        ("cp1", {"cpus": 1}, "host 'cp1': 1 CPU; a control plane needs at least 2"),
        (
            "cp1",
            {"memory_mib": 1699},
            "host 'cp1': 1699 MiB of memory; a control plane needs at least 1700 MiB",
        ),
        ("w1", {"memory_mib": 849}, "host 'w1': 849 MiB of memory; a worker needs at least 850"),
    ],
)
def test_too_small_a_machine_is_refused(host, changes, expected):
    assert expected in refusal(**{host: changes})


@pytest.mark.parametrize(
    "changes",
    [{"cpus": 1, "memory_mib": 850}, {"cpus": 1, "memory_mib": 960}],
)
def test_a_small_worker_passes(changes):
    passes(w1=changes, w2=changes)


def test_a_node_with_both_roles_needs_control_plane_resources():
    doc = cluster()
    doc["hosts"] = [{"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane", "worker"]}]
    with pytest.raises(PreflightRefused, match="a control plane needs at least 2"):
        harness.run(check_cluster, cluster=doc, host_facts=with_fact(cp1={"cpus": 1}))


# --- identities cloned machines share --------------------------------------------------


def test_cloned_machine_id_is_refused_naming_both_hosts():
    message = refusal(w2={"machine_id": recorded(host="w1")["machine_id"]})
    assert "hosts 'w1', 'w2': the same /etc/machine-id 0d3c8f5e6a1b4c2d9e7f0a1b2c3d4e21" in message
    assert "systemd-machine-id-setup" in message


def test_cloned_mac_address_is_refused():
    message = refusal(w1={"macs": {"ens3": "52:54:00:6b:10:11"}})
    assert "hosts 'cp1', 'w1': the same MAC address 52:54:00:6b:10:11" in message


def test_cloned_product_uuid_is_refused_on_machines():
    message = refusal(w1={"product_uuid": recorded()["product_uuid"]})
    assert "hosts 'cp1', 'w1': the same product_uuid" in message


def test_containers_on_one_host_share_product_uuid_and_pass():
    uuid = recorded()["product_uuid"]
    passes(**{host: {"product_uuid": uuid, "container": "systemd-nspawn"} for host in HOSTS})


def test_unknown_identities_are_not_compared():
    passes(**{host: {"machine_id": "", "product_uuid": "", "macs": {}} for host in HOSTS})


def test_the_same_hostname_on_clones_passes_each_is_renamed_to_its_unique_name():
    # the deploy sets each node's hostname to its name in the cluster file, and the
    # cluster file check refuses a duplicate name (tests/unit/test_settings.py)
    run = passes()
    assert run.reads["w1"] == [FACT]


# --- ports ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("cp1", "6443/tcp"),
        ("cp1", "2379/tcp"),
        ("cp1", "2380/tcp"),
        ("cp1", "10250/tcp"),
        ("cp1", "10257/tcp"),
        ("cp1", "10259/tcp"),
        ("w1", "10250/tcp"),
        ("w1", "10256/tcp"),
        ("w2", "8472/udp"),
    ],
)
def test_a_port_in_use_on_a_new_node_is_refused(host, port):
    listening = [*recorded()["listening"], port]
    message = refusal(**{host: {"listening": listening}})
    assert f"host {host!r}: port {port} already in use" in message


@pytest.mark.parametrize(
    ("host", "port"),
    [("w1", "6443/tcp"), ("w1", "30080/tcp"), ("cp1", "10256/tcp"), ("cp1", "8472/tcp")],
)
def test_ports_the_node_does_not_serve_may_be_in_use(host, port):
    passes(**{host: {"listening": [*recorded()["listening"], port]}})


def test_ports_of_a_node_already_in_the_cluster_are_its_own():
    listening = [*recorded()["listening"], "6443/tcp", "10250/tcp", "2379/tcp"]
    passes(cp1={"listening": listening, "joined": True})


@pytest.mark.parametrize("host", ["w1", "cp1"])
def test_ports_of_a_node_left_with_an_earlier_join_are_its_old_kubelets(host):
    """kubelet.conf removed, the CA certificate kept: the old kubelet and kube-proxy still
    listen. The Kubernetes concern resets such a worker before its join (and refuses such
    a control plane, with the manual steps); preflight does not stop it first."""
    listening = [*recorded()["listening"], "10250/tcp", "10256/tcp", "8472/udp"]
    passes(**{host: {"listening": listening, "left_over": True}})


def test_the_api_port_setting_is_the_port_checked():
    message = refusal(settings={"api_port": 7443}, cp1={"listening": ["22/tcp", "7443/tcp"]})
    assert "port 7443/tcp already in use" in message


# --- containerd the Kubernetes version can run -----------------------------------------


# The candidate of each release's own containerd package (tests/deploy/facts/*/preflight.yaml).
DISTRO_CONTAINERD_2 = ("ubuntu-22.04", "ubuntu-24.04")
DISTRO_CONTAINERD_1 = [r for r in harness.OS_RELEASES if r not in DISTRO_CONTAINERD_2]


@pytest.mark.parametrize("os_release", DISTRO_CONTAINERD_2)
def test_kubernetes_1_36_with_the_distributions_containerd_2_passes(os_release):
    passes(os_release, {"kubernetes_version": "1.36.0"})


@pytest.mark.parametrize("os_release", DISTRO_CONTAINERD_1)
def test_kubernetes_1_36_with_the_distributions_containerd_1_is_refused(os_release):
    candidate = recorded(os_release)["containerd"]["containerd"]["candidate"]
    message = refusal(os_release, {"kubernetes_version": "1.36.0"})
    assert f"host 'cp1': containerd: containerd {candidate} (candidate) is containerd 1.x" in (
        message
    )
    assert "Set containerd_version to a 2.x version of containerd (containerd_source: distro)" in (
        message
    )
    assert "or kubernetes_version to a 1.35 release" in message


def test_an_installed_containerd_1_is_what_counts():
    installed = {
        "containerd.io": {
            "installed": "1.7.28-1~debian.12~bookworm",
            "candidate": "2.1.4-1~debian.12~bookworm",
        }
    }
    message = refusal(
        "debian-12",
        {"kubernetes_version": "1.36.0", "containerd_source": "docker"},
        w1={"containerd": installed},
    )
    assert "host 'w1': containerd: containerd.io 1.7.28-1~debian.12~bookworm (installed)" in message
    assert "host 'cp1'" not in message  # the repository is not set up there: unknown


def test_a_pinned_containerd_is_decided_by_the_cluster_file_check():
    passes("debian-12", {"kubernetes_version": "1.36.0", "containerd_version": "2.1.4-1"})


# --- one report, nothing changed -------------------------------------------------------


def test_every_problem_on_every_host_in_one_report():
    message = refusal(
        "ubuntu-20.04",
        {"kubernetes_version": "1.36.0"},
        cp1={"cpus": 1, "listening": ["22/tcp", "6443/tcp"]},
        w2={"machine_id": recorded("ubuntu-20.04", "w1")["machine_id"]},
    )
    lines = message.splitlines()
    assert lines[0] == "preflight: 9 problems; no host was changed:"
    assert sum("cgroup v1" in line for line in lines) == 3
    assert sum("containerd 1.x" in line for line in lines) == 3
    assert any("host 'cp1': 1 CPU" in line for line in lines)
    assert any("port 6443/tcp" in line for line in lines)
    assert any("hosts 'w1', 'w2': the same /etc/machine-id" in line for line in lines)


def test_as_the_cli_plans_hosts_in_parallel_facts_are_read_once_and_nothing_is_planned():
    """The pyinfra CLI loads the entry file once per host, each in its own greenlet; the
    fact reads yield (as SSH does), so the greenlets interleave."""
    state = harness._state(parse_cluster(cluster(), "<test cluster>"))
    facts = {host: recorded(host=host) for host in HOSTS}
    facts["w2"]["machine_id"] = facts["w1"]["machine_id"]
    reads = []

    def get_fact(state_, host, cls, args=None, kwargs=None, **_):
        assert cls is PreflightState
        reads.append(host.name)
        gevent.sleep(0.01)
        return facts[host.name]

    state.set_stage(StateStage.Prepare)
    with (
        mock.patch("pyinfra.api.host.get_fact", get_fact),
        mock.patch("pyinfra.api.facts.get_fact", get_fact),
        ctx_state.use(state),
        pytest.raises(PreflightRefused, match="hosts 'w1', 'w2': the same /etc/machine-id"),
    ):
        load_deploy_file(state, str(ROOT / "deploys" / "node.py"))
    assert sorted(reads) == sorted(HOSTS)
    assert all(not state.ops[host] for host in state.inventory)


def test_the_real_pyinfra_command_stops_before_any_operation(tmp_path):
    """`pyinfra` itself, on this machine (@local, --dry so that nothing could run anyway),
    with the API port taken by a socket this test holds: preflight stops the run while
    pyinfra prepares, before any other fact or operation, with the report and no traceback."""
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "from deploys.settings import Node, Settings\n"
        "_node = Node('cp1', '127.0.0.1', ('control_plane',))\n"
        f"_settings = Settings(api_port={port}, kubernetes_version='1.34.2')\n"
        "_data = {'node': _node, 'nodes': (_node,), 'settings': _settings}\n"
        "k8s_cluster = [('@local', _data)]\nkube_control_plane = ['@local']\nkube_node = []\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pyinfra", "--dry", "-v", str(inventory), "deploys/node.py"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        listener.close()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "; no host was changed:" in output
    assert f"  - host 'cp1': port {port}/tcp already in use" in output
    assert "Traceback" not in output
    # the preflight fact is the only one read: nothing else was planned
    assert output.count("Loaded fact") == 1, output
    assert "Loaded fact deploys.preflight.facts.PreflightState" in output


# --- kube-proxy's nftables mode needs kernel 5.13 ----------------------------------------

NFTABLES = {"kube_proxy_mode": "nftables"}
OLD_KERNELS = ("ubuntu-20.04", "debian-11")


@pytest.mark.parametrize("os_release", OLD_KERNELS)
def test_nftables_mode_refuses_a_stock_kernel_older_than_5_13(os_release):
    kernel = recorded(os_release)["kernel"]
    message = refusal(os_release, {**NEEDS[os_release], **NFTABLES})
    for host in HOSTS:
        assert (
            f"host {host!r} runs kernel {kernel}, and kube-proxy in nftables mode needs 5.13"
            in (message)
        )
    assert "kube_proxy_mode to 'iptables'" in message


@pytest.mark.parametrize("os_release", [r for r in harness.OS_RELEASES if r not in OLD_KERNELS])
def test_nftables_mode_runs_on_the_stock_kernel_of_newer_releases(os_release):
    passes(os_release, NFTABLES)


def test_nftables_mode_takes_an_old_release_with_a_newer_kernel():
    """Ubuntu 20.04 with its HWE kernel (5.15) runs kube-proxy in nftables mode."""
    passes(
        "ubuntu-20.04",
        {**NEEDS["ubuntu-20.04"], **NFTABLES},
        **{host: {"kernel": "5.15.0-139-generic"} for host in HOSTS},
    )
