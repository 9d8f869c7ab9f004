"""The load balancer concern against recorded facts of every release: a fresh node gets
the release's haproxy (and keepalived on vip control planes) installed, held, configured
and started; a converged node gets no change; a node out of the load balancer, nothing."""

from __future__ import annotations

import hashlib

import pytest

from deploys import loadbalancer
from deploys.context import NodeContext
from deploys.loadbalancer import model
from deploys.loadbalancer.model import HAPROXY_CFG, KEEPALIVED_CONF
from tests.deploy import harness
from tests.deploy.test_rendered import CLUSTERS

VIP = CLUSTERS["vip"]
LOCAL = {**VIP, "settings": {"containerd_source": "docker"}}  # 3 control planes: local


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_fresh_vip_control_plane_and_worker(os_release):
    run = harness.run(loadbalancer.converge, os=os_release, cluster=VIP)
    assert run.failed("cp1") == []
    assert run.op_names("cp1") == [
        "loadbalancer: install haproxy and keepalived",
        "loadbalancer: hold haproxy and keepalived",
        f"loadbalancer: write {HAPROXY_CFG}",
        "loadbalancer: enable haproxy",
        "loadbalancer: reload haproxy",
        f"loadbalancer: write {KEEPALIVED_CONF}",
        "loadbalancer: enable keepalived",
        "loadbalancer: reload keepalived",
    ]
    assert run.op("cp1", "loadbalancer: hold haproxy and keepalived").commands == [
        "apt-mark hold haproxy keepalived"
    ]
    assert run.op("cp1", "loadbalancer: reload haproxy").commands == [
        "systemctl reload-or-restart haproxy"
    ]
    # keepalived.conf holds the VRRP password: written root-only through stdin, not uploaded
    assert KEEPALIVED_CONF not in run.uploads.get("cp1", {})
    assert "s3cret-x" not in run.log
    assert run.op_names("w1") == []


def keepalived_facts(cluster: dict) -> dict:
    """The root-only keepalived.conf of each control plane, as a converged host has it."""
    parsed = harness._cluster(cluster)
    per_host = {}
    for node in parsed.control_planes:
        content = model.keepalived_conf(NodeContext.from_cluster(parsed, node))
        per_host[node.name] = {
            f"files.File(path={KEEPALIVED_CONF})": {
                "mode": 600, "user": "root", "group": "root", "size": len(content.encode())
            },
            f"files.Sha1File(path={KEEPALIVED_CONF})": hashlib.sha1(content.encode()).hexdigest(),
        }  # fmt: skip
    return per_host


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_converged_node_changes_nothing(os_release):
    for cluster in (VIP, LOCAL):
        run = harness.run(
            loadbalancer.converge,
            os=os_release,
            cluster=cluster,
            converged=True,
            host_facts=keepalived_facts(cluster),
        )
        for host in ("cp1", "w1"):
            assert run.changed(host) == [], (cluster["settings"], host)
            assert not any(name.startswith("loadbalancer: install") for name in run.op_names(host))


def test_local_runs_haproxy_only_on_every_node():
    run = harness.run(loadbalancer.converge, cluster=LOCAL)
    for host in ("cp1", "w1"):
        assert run.op_names(host)[0] == "loadbalancer: install haproxy"
        assert KEEPALIVED_CONF not in run.written(host)
        assert "bind 127.0.0.1:8443" in run.written(host)[HAPROXY_CFG]


# Debian 12's recorded versions (tests/deploy/facts/debian-12/loadbalancer.yaml).
RECORDED = {"haproxy_version": "2.6.12-1+deb12u4", "keepalived_version": "1:2.2.7-1+b2"}


def pinned(cluster: dict, **versions: str) -> dict:
    return {**cluster, "settings": {**cluster.get("settings", {}), **versions}}


def test_pinned_versions_are_installed_exactly_and_held():
    run = harness.run(loadbalancer.converge, os="debian-12", cluster=pinned(VIP, **RECORDED))
    install = run.op("cp1", "loadbalancer: install haproxy and keepalived").commands[-1]
    assert "haproxy=2.6.12-1+deb12u4" in install
    assert "keepalived=1:2.2.7-1+b2" in install
    assert "--allow-change-held-packages" in install
    assert "loadbalancer: hold haproxy and keepalived" in run.op_names("cp1")


def converged_debian_12(**versions: str) -> harness.Run:
    """The deploy on Debian 12's converged control plane, with these pins."""
    cluster = pinned(VIP, **versions)
    return harness.run(
        loadbalancer.converge,
        os="debian-12",
        cluster=cluster,
        converged=True,
        host_facts=keepalived_facts(cluster),
    )


def test_a_pin_equal_to_the_installed_version_changes_nothing():
    assert converged_debian_12(**RECORDED).changed("cp1") == []


@pytest.mark.parametrize(
    ("versions", "reinstalled"),
    [
        ({"haproxy_version": "2.6.12-1+deb12u5"}, ["haproxy"]),
        ({"keepalived_version": "1:2.2.7-1+b3"}, ["keepalived"]),
        (
            {"haproxy_version": "2.6.12-1+deb12u5", "keepalived_version": "1:2.2.7-1+b3"},
            ["haproxy", "keepalived"],
        ),
    ],
)
def test_a_changed_pin_installs_that_version_and_holds_it_again(versions, reinstalled):
    run = converged_debian_12(**versions)
    what = " and ".join(reinstalled)
    install = run.op("cp1", f"loadbalancer: install {what}").commands[-1]
    for package in reinstalled:
        assert f"{package}={versions[package + '_version']}" in install
    hold = run.op("cp1", f"loadbalancer: hold {what}").commands
    assert hold == [f"apt-mark hold {' '.join(reinstalled)}"]
