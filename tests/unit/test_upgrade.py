"""The upgrade decision (deploys/kubernetes/upgrade.py): the steps from the running control
plane to kubernetes_version, the intermediate releases, the refusals, upgrade_path's
checks, the plan's lines and the commands."""

from __future__ import annotations

import datetime

import pytest

from deploys.kubernetes import upgrade
from deploys.kubernetes.upgrade import Step, UpgradeRefused

REPO = {
    33: ["1.33.0-1.1", "1.33.7-1.1"],
    34: ["1.34.0-1.1", "1.34.3-1.1", "1.34.10-1.1", "1.34.2-1.1"],
    35: ["1.35.9-1.1"],
}


@pytest.mark.parametrize(
    ("current", "target", "path", "steps"),
    [
        ("1.35.9", "1.35.9", [], ()),
        ("1.35.2", "1.35.9", [], (Step("1.35.9", "1.35.9-1.1"),)),
        ("1.34.3", "1.35.9", [], (Step("1.35.9", "1.35.9-1.1"),)),
        # two minors: the newest 1.34 patch of its repository (10 > 3 numerically)
        ("1.33.7", "1.35.9", [], (Step("1.34.10", "1.34.10-1.1"), Step("1.35.9", "1.35.9-1.1"))),
        # upgrade_path wins over the repository
        (
            "1.33.7",
            "1.35.9",
            ["1.34.2"],
            (Step("1.34.2", "1.34.2-1.1"), Step("1.35.9", "1.35.9-1.1")),
        ),
        (
            "1.32.1",
            "1.35.9",
            ["1.33.0"],
            (
                Step("1.33.0", "1.33.0-1.1"),
                Step("1.34.10", "1.34.10-1.1"),
                Step("1.35.9", "1.35.9-1.1"),
            ),
        ),
    ],
)
def test_steps_walk_each_minor(current, target, path, steps):
    assert upgrade.plan(current, target, "1.1", path, REPO) == steps


@pytest.mark.parametrize(
    ("current", "target", "repository", "message"),
    [
        ("1.35.9", "1.35.2", REPO, "a downgrade"),
        ("1.35.9", "1.34.3", REPO, "a downgrade"),
        ("1.26.3", "1.27.1", REPO, "the cluster runs 1.26.3"),
        ("1.35.9", "1.38.0", REPO, "the target is 1.38.0"),
        ("1.31.2", "1.35.9", REPO, "crosses 4 minors"),
        ("1.33.7", "1.35.9", {}, "set upgrade_path to the 1.34 release"),
        ("1.33.7", "1.35.9", {34: ["1.35.1-1.1", "garbage"]}, "lists no kubeadm 1.34"),
    ],
)
def test_refused_before_anything_changes(current, target, repository, message):
    with pytest.raises(UpgradeRefused, match=message):
        upgrade.plan(current, target, "1.1", [], repository)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (["1.34.2", "1.34.3"], "two versions of 1.34"),
        (["1.35.1"], "not below"),
        (["1.36.0"], "not below"),
        (["banana"], "not a version"),
        (["1.20.1"], "not supported"),
    ],
)
def test_upgrade_path_problems(path, problem):
    assert any(problem in p for p in upgrade.path_problems(path, "1.35.9"))


def test_a_good_upgrade_path_has_no_problem():
    assert upgrade.path_problems(["1.33.1", "1.34.2"], "1.35.9") == []


def test_the_plan_names_every_step_and_every_node_in_order():
    steps = upgrade.plan("1.33.7", "1.35.9", "1.1", [], REPO)
    order = [("cp1",), ("cp2",), ("w1", "w2")]
    text = upgrade.lines("1.33.7", steps, "cp1", ["cp2"], order, "/snap.db")
    assert text == [
        "upgrade plan: Kubernetes 1.33.7 -> 1.35.9",
        "  etcd snapshot on cp1: /snap.db (the last 3 kept)",
        "  1.34.10: kubeadm 1.34.10-1.1; on cp1 kubeadm upgrade apply",
        "  1.34.10: on cp2 kubeadm upgrade node",
        "  1.35.9: kubeadm 1.35.9-1.1; on cp1 kubeadm upgrade apply",
        "  1.35.9: on cp2 kubeadm upgrade node",
        "  cp1: drain, kubelet and kubectl 1.35.9-1.1, restart, Ready, uncordon",
        "  cp2: drain, kubelet and kubectl 1.35.9-1.1, restart, Ready, uncordon",
        "  w1, w2: drain, kubelet and kubectl 1.35.9-1.1, restart, Ready, uncordon",
    ]
    assert upgrade.lines("1.35.9", (), "cp1", [], []) == []


@pytest.mark.parametrize(
    ("output", "version"),
    [
        (["registry.k8s.io/kube-apiserver:v1.35.9"], "1.35.9"),
        (["mirror:5000/k8s/kube-apiserver:v1.34.10"], "1.34.10"),
        ([], ""),
    ],
)
def test_control_plane_version_from_the_manifest(output, version):
    assert upgrade.ControlPlaneVersion().process(output) == version


def test_repository_versions_read_kubeadm_from_the_packages_index():
    fact = upgrade.RepositoryVersions()
    command = fact.command(url="https://pkgs.k8s.io/core:/stable:/v1.34/deb/")
    assert "curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.34/deb/Packages" in command
    assert fact.process(["1.34.0-1.1", "", "1.34.3-1.1 "]) == ["1.34.0-1.1", "1.34.3-1.1"]


def test_packages_are_unheld_pinned_and_held_again():
    commands = [c.get_raw_value() for c in upgrade.kubelet_commands("1.35.9-1.1")]
    assert commands[0] == "apt-mark unhold kubelet kubectl"
    assert commands[1].endswith(
        "--allow-change-held-packages kubelet=1.35.9-1.1 kubectl=1.35.9-1.1"
    )
    assert commands[2] == "apt-mark hold kubelet kubectl"
    assert commands[3].endswith("systemctl restart kubelet")


def test_the_etcd_snapshot_is_root_only_and_keeps_three():
    moment = datetime.datetime(2026, 11, 30, 3, 4, 5, tzinfo=datetime.UTC)
    path = upgrade.snapshot_path("1.35.9", moment)
    assert path == f"{upgrade.SNAPSHOT_DIR}/etcd-before-v1.35.9-20261130T030405Z.db"
    command = upgrade.snapshot_command(path).get_raw_value()
    assert command.startswith(f"install -d -m 700 {upgrade.SNAPSHOT_DIR} && crictl exec")
    assert "etcdctl --endpoints=https://127.0.0.1:2379" in command
    assert "chmod 600" in command and "tail -n +4 | xargs -r rm -f" in command


def test_a_steps_apt_source_is_written_byte_for_byte(tmp_path):
    """The step rewrites the apt source the packages module writes: the same bytes, or the
    next run would see it changed."""
    import subprocess

    source = "deb [signed-by=/etc/apt/keyrings/k.gpg] http://repo/v1.34/deb/ /\n"
    path = tmp_path / "kubernetes.list"
    command = upgrade.kubeadm_commands(Step("1.34.3", "1.34.3-1.1"), source, str(path))[0]
    subprocess.run(command.get_raw_value(), shell=True, check=True)
    assert path.read_text() == source
