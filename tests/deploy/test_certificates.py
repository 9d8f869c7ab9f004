"""Control-plane certificates (deploys/kubernetes/certificates.py): expiry read from
`kubeadm certs check-expiration` (its output recorded below, in kubeadm's format),
renewal within cert_renew_days one control plane at a time, the optional timer."""

from __future__ import annotations

import datetime

import pytest

from deploys import kubernetes
from deploys.kubernetes import certificates
from deploys.settings import ClusterError, parse_cluster
from tests.deploy import harness, live
from tests.deploy.test_kubernetes import RESPONSES
from tests.deploy.test_reconfigure import HA

EXPIRY = "deploys.kubernetes.certificates.CertificateExpiry"
RENEW = "kubeadm: renew certificates"
# `kubeadm certs check-expiration` (kubeadm 1.35; the layout of kubeadm-certs.md).
CHECK_EXPIRATION = """\
[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...
[check-expiration] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.

CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Dec 30, 2026 23:36 UTC   30d             ca                      no
apiserver                  Dec 12, 2026 08:05 UTC   12d             ca                      no
apiserver-etcd-client      Dec 30, 2026 23:36 UTC   30d             etcd-ca                 no
super-admin.conf           Dec 30, 2026 23:36 UTC   30d             ca                      no

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      Dec 28, 2026 23:36 UTC   28d             no
etcd-ca                 Dec 28, 2035 23:36 UTC   9y              no
"""  # noqa: E501
NOW = datetime.datetime(2026, 11, 30, 3, 0, tzinfo=datetime.UTC)


def expiring_in(days: float) -> dict[str, str]:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return {"apiserver": moment.isoformat(), "admin.conf": "2099-01-01T00:00:00+00:00"}


def run(cluster=None, host_facts=None, facts=None) -> harness.Run:
    host_facts = {**live.as_left(cluster), **(host_facts or {})}
    return harness.run(kubernetes.converge, cluster=cluster, converged=True,
                       host_facts=host_facts, facts=facts, responses=RESPONSES)  # fmt: skip


def test_check_expiration_is_parsed_without_the_authorities():
    found = certificates.parse_expiry(CHECK_EXPIRATION.splitlines())
    assert set(found) == {"admin.conf", "apiserver", "apiserver-etcd-client", "super-admin.conf"}
    assert found["apiserver"] == "2026-12-12T08:05:00+00:00"
    name, moment = certificates.earliest(found)
    assert name == "apiserver"
    assert certificates.expiry_line("cp1", found, NOW) == (
        "cp1: earliest certificate expiry 2026-12-12 08:05 UTC (apiserver, 12 days)"
    )


@pytest.mark.parametrize("text", ["", "kubeadm: command not found", "CERTIFICATE  EXPIRES\n"])
def test_no_expiry_when_kubeadm_does_not_say(text):
    assert certificates.parse_expiry(text.splitlines()) is None
    assert not certificates.renewal_due(None, 30, NOW)
    assert "certificates unknown" in certificates.expiry_line("cp1", None, NOW)


@pytest.mark.parametrize(("days", "due"), [(12, True), (30, True), (31, False)])
def test_renewal_is_due_within_cert_renew_days(days, due):
    expiry = {"apiserver": (NOW + datetime.timedelta(days=days)).isoformat()}
    assert certificates.renewal_due(expiry, 30, NOW) is due


def test_due_certificates_are_renewed_one_control_plane_at_a_time():
    result = run(HA, facts={EXPIRY: expiring_in(10)})
    assert result.changed("cp1") == [RENEW] and result.changed("cp2") == [RENEW]
    assert result.changed("w1") == []
    for host in ("cp1", "cp2"):
        op = result.op(host, RENEW)
        assert op.serial
        assert op.commands[0] == "kubeadm certs renew all"
        for pod in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
            assert any(c.startswith(f"mv -f /etc/kubernetes/manifests/{pod}.yaml ")
                       for c in op.commands[1:5])  # fmt: skip
        assert (
            op.commands[-1].endswith("--timeout=600s")
            and f"kube-apiserver-{host}" in (op.commands[-1])
        )


def test_certificates_far_from_expiry_are_left_alone():
    assert run(HA, facts={EXPIRY: expiring_in(200)}).changed("cp1") == []


def test_cert_renew_days_is_checked_with_the_cluster_file():
    for days in (0, 365, -3):
        with pytest.raises(ClusterError, match="cert_renew_days"):
            parse_cluster({**harness.DEFAULT_CLUSTER, "settings": {"cert_renew_days": days}})


def test_the_timer_is_installed_on_control_planes_only():
    cluster = {**HA, "settings": {**HA["settings"], "cert_auto_renew": True,
                                  "cert_renew_days": 45}}  # fmt: skip
    first = harness.run(kubernetes.converge, cluster=cluster, host_facts=live.as_left(cluster),
                        converged=False, responses=RESPONSES)  # fmt: skip
    for host in ("cp1", "cp2"):
        written = first.uploads[host]
        assert "days=45" in written[certificates.RENEW_SCRIPT]
        timer = written["/etc/systemd/system/kubeadm-certs-renew.timer"]
        assert "OnCalendar=monthly" in timer and "Persistent=true" in timer
        assert "kubeadm: reload systemd units" in first.changed(host)
        enable = first.op(host, "kubeadm: enable certificate renewal timer").commands
        assert "systemctl enable kubeadm-certs-renew.timer" in enable
    assert certificates.RENEW_SCRIPT not in first.uploads["w1"]


def test_turning_the_timer_off_stops_it_and_removes_its_files():
    installed = {f"files.File(path={p})": {"mode": 644, "user": "root", "group": "root"}
                 for p in (certificates.RENEW_SCRIPT,
                           "/etc/systemd/system/kubeadm-certs-renew.service",
                           "/etc/systemd/system/kubeadm-certs-renew.timer")}  # fmt: skip
    result = run(facts=installed)
    assert result.op("cp1", "kubeadm: stop certificate renewal timer").commands == [
        "systemctl disable --now kubeadm-certs-renew.timer"
    ]
    assert "rm -f /etc/systemd/system/kubeadm-certs-renew.timer" in result.commands("cp1")


def test_the_timers_script_decides_like_a_run():
    """The script's date arithmetic, run by sh against the recorded output."""
    import subprocess

    settings = parse_cluster(harness.DEFAULT_CLUSTER).settings_for(
        parse_cluster(harness.DEFAULT_CLUSTER).nodes[0]
    )
    script = certificates.renew_script(settings)
    fake = (
        'kubeadm() { if [ "$1" = certs ] && [ "$2" = check-expiration ]; then '
        f"cat <<'X'\n{CHECK_EXPIRATION}X\nelse echo RENEW \"$@\"; exit 0; fi; }}\n"
        'mv() { echo MV "$@"; }\nsleep() { :; }\n'
    )
    body = script.replace("#!/bin/sh\n", "", 1)
    out = subprocess.run(["sh", "-c", fake + body], capture_output=True, text=True, check=True)
    # 2026-12-12 is within 30 days of the real date only near it: decide as Python does
    due = certificates.renewal_due(
        certificates.parse_expiry(CHECK_EXPIRATION.splitlines()),
        30,
        datetime.datetime.now(datetime.UTC),
    )
    assert ("RENEW certs renew all" in out.stdout) is due
