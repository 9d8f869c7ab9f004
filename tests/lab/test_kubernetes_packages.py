"""The Kubernetes package-repository and kubeadm-configuration steps on the lab's real nodes.

The real deploy (tests/lab/deploys/kubernetes_packages.py: system, containerd, then the
Kubernetes packages and kubeadm configuration of deploys/kubernetes) runs twice with the
pyinfra command line against the lab's cluster file, pointed at a stand-in Kubernetes apt
repository (tests/lab/k8s_repo.py, a test double: the nodes cannot reach pkgs.k8s.io) served
on the lab bridge. What it leaves on the nodes is then checked over SSH, independently of
pyinfra. `kubeadm init`/join and the kubelet cannot run in the lab (runc cannot start
containers there); those steps are covered by the deploy-level tests.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deploys import versions
from deploys.kubernetes.kubeadm_config import INIT_CONFIG, SCHEDULER_CONFIG
from deploys.kubernetes.packages import KEYRING, PACKAGES, SOURCE
from deploys.settings import Settings
from tests.lab import config, k8s_repo
from tests.lab.fixture import LAB_NODES
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

DEPLOY = Path(__file__).with_name("deploys") / "kubernetes_packages.py"
DEFAULTS = Settings()
VERSION, REVISION = DEFAULTS.kubernetes_version, DEFAULTS.kubernetes_package_revision
PINNED = f"{VERSION}-{REVISION}"
# apt in the nodes goes through the lab's proxy, which reaches the Debian mirrors only.
DIRECT_CONF = "/etc/apt/apt.conf.d/90stand-in-kubernetes-repository"
FIRST_CONTROL_PLANE, WORKERS = LAB_NODES[0], LAB_NODES[1:]


@dataclass(frozen=True)
class StandIn:
    repo: k8s_repo.StandInRepository
    base_url: str  # kubernetes_apt_repo
    requests: list[str]  # paths the nodes fetched from it

    @property
    def deb_url(self) -> str:
        return versions.kubernetes_apt_url(self.base_url, VERSION)


def forget_stand_in(lab) -> None:
    """Remove from every node what the deploy installed from a stand-in repository (one
    left by an interrupted run included: its key and server are gone)."""
    for name in LAB_NODES:
        lab.ssh(
            name,
            f"apt-mark unhold {' '.join(PACKAGES)} >/dev/null 2>&1;"
            f" apt-get purge -y -q {' '.join(PACKAGES)} {k8s_repo.CRI_TOOLS} >/dev/null 2>&1;"
            f" rm -f {SOURCE} {KEYRING} {DIRECT_CONF} {INIT_CONFIG} {SCHEDULER_CONFIG}",
            check=False,
        )


@pytest.fixture(scope="module")
def stand_in(lab, tmp_path_factory):
    """The stand-in repository served on the bridge, apt in every node reaching it directly
    (not through the lab's proxy); removed from the nodes again on exit."""
    forget_stand_in(lab)
    workdir = tmp_path_factory.mktemp("stand-in-kubernetes-repo")
    with (
        k8s_repo.stand_in_repository(workdir, [VERSION], REVISION) as repo,
        k8s_repo.serve(repo.root, config.BRIDGE_ADDRESS) as (base_url, requests),
    ):
        direct = f'Acquire::http::Proxy::{config.BRIDGE_ADDRESS} "DIRECT";'
        for name in LAB_NODES:
            lab.ssh(name, f"echo '{direct}' > {DIRECT_CONF}")
        yield StandIn(repo, base_url, requests)
        forget_stand_in(lab)


@pytest.fixture(scope="module")
def cluster_file(lab, stand_in, tmp_path_factory) -> Path:
    """The lab's cluster file (its nodes, SSH access and registry_mirrors) with the
    Kubernetes packages from the stand-in and a scheduler configuration to render."""
    cluster = yaml.safe_load(lab.inventory_path.read_text())
    cluster["settings"].update(
        kubernetes_apt_repo=stand_in.base_url,
        kubernetes_version=VERSION,
        kubernetes_package_revision=REVISION,
        scheduler={"percentage_of_nodes_to_score": 50},
    )
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(yaml.safe_dump(cluster, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def runs(cluster_file) -> tuple[Run, Run]:
    """The deploy run twice: converging, then on converged nodes."""
    return pyinfra(DEPLOY, cluster_file), pyinfra(DEPLOY, cluster_file)


def remote(lab, name: str, command: str) -> str:
    return lab.ssh(name, command).stdout.strip()


def test_first_run_succeeds_and_changes_the_nodes(runs):
    first = runs[0]
    assert first.result.returncode == 0, first.failure()
    assert first.totals()["success"] > 0 and first.totals()["error"] == 0


def test_second_run_changes_nothing(runs):
    second = runs[1]
    assert second.result.returncode == 0, second.failure()
    totals = second.totals()
    assert (totals["success"], totals["error"]) == (0, 0), second.output[-5000:]


def test_nodes_fetched_key_index_and_packages_from_the_stand_in(runs, stand_in):
    path = versions.kubernetes_apt_url("", VERSION)
    wanted = {f"{path}Release.key", f"{path}InRelease"} | {
        f"{path}{name}_{PINNED}_all.deb" for name in PACKAGES
    }
    assert wanted <= {request.split("?")[0].replace("/./", "/") for request in stand_in.requests}


@pytest.mark.parametrize("name", LAB_NODES)
def test_keyring_is_the_stand_in_key_as_a_binary_keyring(lab, runs, stand_in, name):
    assert remote(lab, name, f"stat -c '%a %U %G' {KEYRING}") == "644 root root"
    assert remote(lab, name, f"head -c 5 {KEYRING} | od -An -c") != remote(
        lab, name, "printf '%s' ----- | od -An -c"
    ), "the keyring is ASCII-armored; apt wants it dearmored"
    shown = remote(lab, name, f"gpg --show-keys --with-colons {KEYRING}")
    expected = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(stand_in.repo.release_key)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fingerprints = [line.split(":")[9] for line in expected.splitlines() if line.startswith("fpr")]
    assert fingerprints and all(fpr in shown for fpr in fingerprints)


@pytest.mark.parametrize("name", LAB_NODES)
def test_apt_source_is_the_per_minor_repository_signed_by_the_keyring(lab, runs, stand_in, name):
    assert remote(lab, name, f"stat -c '%a %U %G' {SOURCE}") == "644 root root"
    assert remote(lab, name, f"cat {SOURCE}") == f"deb [signed-by={KEYRING}] {stand_in.deb_url} /"
    assert f"/v1.{versions.kubernetes_minor(VERSION)}/deb/" in stand_in.deb_url


@pytest.mark.parametrize("name", LAB_NODES)
def test_packages_are_held(lab, runs, name):
    assert set(remote(lab, name, "apt-mark showhold").split()) >= set(PACKAGES)


@pytest.mark.parametrize("name", LAB_NODES)
@pytest.mark.parametrize("package", PACKAGES)
def test_installed_version_is_the_pin(lab, runs, name, package):
    assert remote(lab, name, f"dpkg-query -W -f '${{Version}}' {package}") == PINNED
    assert remote(lab, name, f"{package} version") == f"v{VERSION}"


@pytest.mark.parametrize("path", [INIT_CONFIG, SCHEDULER_CONFIG])
def test_first_control_plane_has_root_only_configuration(lab, runs, path):
    assert remote(lab, FIRST_CONTROL_PLANE, f"stat -c '%a %U %G' {path}") == "600 root root"


@pytest.mark.parametrize(
    "path, api_version",
    [
        (INIT_CONFIG, versions.kubeadm_api_version(VERSION)),
        (SCHEDULER_CONFIG, "kubescheduler.config.k8s.io/v1"),
    ],
)
def test_configuration_has_the_api_version_of_the_release(lab, runs, path, api_version):
    documents = list(yaml.safe_load_all(remote(lab, FIRST_CONTROL_PLANE, f"cat {path}")))
    assert api_version in {document["apiVersion"] for document in documents}


def test_init_configuration_is_v1beta4_from_1_31():
    assert versions.kubernetes_minor(VERSION) >= 31
    assert versions.kubeadm_api_version(VERSION) == "kubeadm.k8s.io/v1beta4"


@pytest.mark.parametrize("name", WORKERS)
@pytest.mark.parametrize("path", [INIT_CONFIG, SCHEDULER_CONFIG])
def test_workers_have_no_control_plane_configuration(lab, runs, name, path):
    assert remote(lab, name, f"test -e {path} && echo present || echo absent") == "absent"
