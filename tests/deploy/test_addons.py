"""Add-ons deploy (flannel) against recorded hosts: first run, converged run, changes."""

import hashlib
import os
import subprocess

import pytest

from deploys import addons
from deploys.addons import flannel
from deploys.addons.kubectl import ADDONS_DIR
from deploys.context import NodeContext
from deploys.settings import parse_cluster
from tests.deploy import harness

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
# A DaemonSet that selects other labels than the manifest's (a selector cannot change) is
# deleted, its pods orphaned, before the apply; a failure removes the manifest.
APPLY = (
    f"{{ selector=$( {KUBECTL} --namespace kube-flannel get daemonset kube-flannel-ds "
    "--ignore-not-found --output "
    "'go-template={{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}} {{end}}' ) && "
    '{ [ -z "$selector" ] || [ "$selector" = \'app=flannel \' ] || '
    f"{KUBECTL} --namespace kube-flannel delete daemonset kube-flannel-ds --cascade=orphan ; }} "
    f"&& {KUBECTL} apply -f {flannel.MANIFEST} ; }}"
    f" || ( rm -f {flannel.MANIFEST} && false )"
)


def first_control_plane(cluster: dict | None = None) -> NodeContext:
    parsed = parse_cluster(cluster or harness.DEFAULT_CLUSTER, "<test cluster>")
    return NodeContext.from_cluster(parsed, parsed.control_planes[0])


def applied(content: str) -> dict:
    """Facts of a first control plane on which `content` is the applied flannel manifest."""
    return {
        f"files.Directory(path={ADDONS_DIR})": {"mode": 700, "user": "root", "group": "root"},
        f"files.File(path={flannel.MANIFEST})": {
            "mode": 600,
            "user": "root",
            "group": "root",
            "size": len(content.encode()),
        },
        f"files.Sha1File(path={flannel.MANIFEST})": hashlib.sha1(content.encode()).hexdigest(),
    }


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_first_run_writes_and_applies_flannel_on_the_first_control_plane(os_release):
    run = harness.run(addons.converge, os=os_release)
    assert run.changed("cp1") == [
        "add-ons: create manifest directory",
        "flannel: render manifest",
        "flannel: apply manifest",
    ]
    assert run.uploads["cp1"] == {flannel.MANIFEST: flannel.manifest(first_control_plane())}
    commands = run.commands("cp1")
    assert f"chmod 700 {ADDONS_DIR}" in commands
    assert f"chmod 600 {flannel.MANIFEST}" in commands
    assert f"chown root:root {flannel.MANIFEST}" in commands
    assert commands[-1] == APPLY
    assert run.missing_facts == {}


@pytest.mark.parametrize("worker", ["w1", "w2"])
def test_workers_have_nothing_to_do(worker):
    run = harness.run(addons.converge)
    assert run.ops[worker] == []
    assert run.uploads[worker] == {}


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_converged_run_applies_nothing(os_release):
    run = harness.run(addons.converge, os=os_release, converged=True)
    assert run.changed("cp1") == []
    assert run.op_names("cp1") == [
        "add-ons: create manifest directory",
        "flannel: render manifest",
        "flannel: apply manifest",
    ]
    assert not any("kubectl" in command for command in run.commands("cp1"))


@pytest.mark.parametrize(
    "setting, value",
    [
        ("flannel_backend", "host-gw"),
        ("pod_subnet", "172.20.0.0/16"),
        ("flannel_image_repository", "ghcr.m.daocloud.io/flannel-io"),
        ("flannel_version", "v0.28.0"),
    ],
)
def test_a_changed_manifest_is_written_and_applied_again(setting, value):
    before = flannel.manifest(first_control_plane())
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {setting: value}}
    run = harness.run(addons.converge, cluster=cluster, host_facts={"cp1": applied(before)})
    assert run.changed("cp1") == ["flannel: render manifest", "flannel: apply manifest"]
    assert run.uploads["cp1"][flannel.MANIFEST] == flannel.manifest(first_control_plane(cluster))
    assert run.commands("cp1")[-1] == APPLY


def test_an_unchanged_manifest_on_a_drifted_file_mode_is_fixed_not_applied():
    content = flannel.manifest(first_control_plane())
    facts = applied(content)
    facts[f"files.File(path={flannel.MANIFEST})"]["mode"] = 644
    run = harness.run(addons.converge, host_facts={"cp1": facts})
    assert run.op("cp1", "flannel: render manifest").commands == [f"chmod 600 {flannel.MANIFEST}"]
    # The mode fix counts as a change of the file: the (identical) manifest is re-applied,
    # which kubectl reports as unchanged.
    assert run.op("cp1", "flannel: apply manifest").commands == [APPLY]


def test_a_failed_apply_removes_the_manifest_so_the_next_run_applies_it():
    run = harness.run(addons.converge, responses=[(r"apply -f .*flannel\.yaml", 1, "refused")])
    failed = run.failed("cp1")
    assert [op.name for op in failed] == ["flannel: apply manifest"]
    assert "refused" in failed[0].error
    assert f"|| ( rm -f {flannel.MANIFEST} && false )" in failed[0].commands[0]
    # The file is gone afterwards: the next run starts like the first one.
    directory = f"files.Directory(path={ADDONS_DIR})"
    rerun = harness.run(addons.converge, host_facts={"cp1": {directory: applied("")[directory]}})
    assert rerun.changed("cp1") == ["flannel: render manifest", "flannel: apply manifest"]


def test_first_control_plane_listed_after_workers_does_the_work():
    cluster = {
        "hosts": [
            {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
            {"name": "cpa", "address": "10.0.0.11", "roles": ["control_plane"]},
        ],
        "settings": {},
    }
    run = harness.run(addons.converge, cluster=cluster)
    assert run.ops["w1"] == []
    assert "flannel: apply manifest" in run.changed("cpa")


# --- taking over a DaemonSet with another selector ----------------------------------------

# A stand-in kubectl: `get` prints $LIVE_SELECTOR (or fails with $GET_FAILS), every call is
# logged; apply and delete succeed.
FAKE_KUBECTL = """#!/bin/sh
echo "$*" >> "$KUBECTL_LOG"
case "$*" in
  *" get daemonset "*) [ -z "$GET_FAILS" ] || exit 1; printf '%s' "$LIVE_SELECTOR" ;;
esac
"""


def run_apply(tmp_path, live_selector: str, get_fails: bool = False):
    """The first control plane's apply command, run by sh against the stand-in kubectl with
    the manifest at a temporary path: (exit code, kubectl calls, manifest still there)."""
    command = harness.run(addons.converge).commands("cp1")[-1]
    manifest = tmp_path / "flannel.yaml"
    manifest.write_text("manifest\n")
    (tmp_path / "kubectl").write_text(FAKE_KUBECTL)
    (tmp_path / "kubectl").chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "KUBECTL_LOG": str(tmp_path / "calls"),
        "LIVE_SELECTOR": live_selector,
        "GET_FAILS": "1" if get_fails else "",
    }
    result = subprocess.run(
        ["sh", "-c", command.replace(flannel.MANIFEST, str(manifest))], env=env, check=False
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    return result.returncode, calls, manifest.exists()


@pytest.mark.parametrize(
    "live, deleted",
    [
        ("", False),  # no DaemonSet yet
        ("app=flannel ", False),  # upstream's selector, or this project's now
        ("app=flannel k8s-app=flannel ", True),  # this project's before
        ("app=flannel-ds ", True),  # any other install's
    ],
)
def test_daemonset_with_another_selector_is_replaced_keeping_its_pods(tmp_path, live, deleted):
    code, calls, kept = run_apply(tmp_path, live)
    assert code == 0 and kept
    admin = "--kubeconfig /etc/kubernetes/admin.conf"
    get = (
        f"{admin} --namespace kube-flannel get daemonset kube-flannel-ds --ignore-not-found "
        "--output go-template={{range $k, $v := .spec.selector.matchLabels}}{{$k}}={{$v}} {{end}}"
    )
    delete = f"{admin} --namespace kube-flannel delete daemonset kube-flannel-ds --cascade=orphan"
    apply = f"{admin} apply -f {tmp_path}/flannel.yaml"
    assert calls == [get, *([delete] if deleted else []), apply]


def test_a_failed_selector_check_applies_nothing_and_removes_the_manifest(tmp_path):
    code, calls, kept = run_apply(tmp_path, "", get_fails=True)
    assert code != 0
    assert not kept  # the next run writes and applies it again
    assert len(calls) == 1 and " get daemonset " in calls[0]
