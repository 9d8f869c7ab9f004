"""Time sync: the daemon per release and choice, its whole config, and when it is started."""

import pytest

from deploys.distro import RELEASES, Release
from deploys.settings import ClusterError, Settings, parse_cluster
from deploys.system.timesync import (
    service_converged,
    should_start,
    time_daemon,
    time_sources,
    time_sync_file,
)

UBUNTU_20 = RELEASES["ubuntu-20.04"]
UBUNTU_22 = RELEASES["ubuntu-22.04"]
UBUNTU_24 = RELEASES["ubuntu-24.04"]
DEBIAN_11 = RELEASES["debian-11"]
DEBIAN_12 = RELEASES["debian-12"]
DEBIAN_13 = RELEASES["debian-13"]
SID = Release("debian", "")


@pytest.mark.parametrize(
    "choice, release, package, unit, path",
    [
        ("chrony", UBUNTU_20, "chrony", "chrony.service", "/etc/chrony/chrony.conf"),
        ("chrony", DEBIAN_13, "chrony", "chrony.service", "/etc/chrony/chrony.conf"),
        ("ntp", UBUNTU_20, "ntp", "ntp.service", "/etc/ntp.conf"),
        ("ntp", UBUNTU_22, "ntp", "ntp.service", "/etc/ntp.conf"),
        ("ntp", UBUNTU_24, "ntpsec", "ntpsec.service", "/etc/ntpsec/ntp.conf"),
        ("ntp", DEBIAN_11, "ntp", "ntp.service", "/etc/ntp.conf"),
        ("ntp", DEBIAN_12, "ntpsec", "ntpsec.service", "/etc/ntpsec/ntp.conf"),
        ("ntp", DEBIAN_13, "ntpsec", "ntpsec.service", "/etc/ntpsec/ntp.conf"),
        ("ntp", SID, "ntpsec", "ntpsec.service", "/etc/ntpsec/ntp.conf"),
        (
            "timesyncd",
            UBUNTU_20,
            "systemd-timesyncd",
            "systemd-timesyncd.service",
            "/etc/systemd/timesyncd.conf.d/kubernetes.conf",
        ),
    ],
)
def test_time_daemon(choice, release, package, unit, path):
    daemon = time_daemon(choice, release)
    assert (daemon.package, daemon.unit, daemon.config_path) == (package, unit, path)


def test_unknown_choice_refused():
    with pytest.raises(ValueError):
        time_daemon("openntpd", DEBIAN_12)


@pytest.mark.parametrize(
    "servers, sources",
    [
        (["pool.ntp.org"], [("pool", "pool.ntp.org")]),
        (
            ["cn.pool.ntp.org", "ntp.aliyun.com"],
            [("pool", "cn.pool.ntp.org"), ("pool", "ntp.aliyun.com")],
        ),
        (["10.0.0.1", "fd00::123"], [("server", "10.0.0.1"), ("server", "fd00::123")]),
    ],
)
def test_time_sources(servers, sources):
    assert time_sources(servers) == sources


def test_chrony_conf_is_whole_and_lists_the_servers():
    path, content = time_sync_file(
        Settings(time_servers=["cn.pool.ntp.org", "10.0.0.1"]), UBUNTU_20
    )
    assert path == "/etc/chrony/chrony.conf"
    assert content.splitlines()[1:] == [
        "pool cn.pool.ntp.org iburst",
        "server 10.0.0.1 iburst",
        "driftfile /var/lib/chrony/chrony.drift",
        "makestep 1.0 3",
        "rtcsync",
    ]


@pytest.mark.parametrize(
    "release, driftfile, restrict_source",
    [(DEBIAN_11, "/var/lib/ntp/ntp.drift", True), (DEBIAN_12, "/var/lib/ntpsec/ntp.drift", False)],
)
def test_ntp_conf(release, driftfile, restrict_source):
    _, content = time_sync_file(Settings(time_sync="ntp", time_servers=["pool.ntp.org"]), release)
    lines = content.splitlines()
    assert f"driftfile {driftfile}" in lines
    assert "pool pool.ntp.org iburst" in lines
    assert ("restrict source nomodify noquery" in lines) is restrict_source


def test_timesyncd_drop_in():
    _, content = time_sync_file(
        Settings(time_sync="timesyncd", time_servers=["ntp1.example", "10.0.0.1"]), UBUNTU_24
    )
    assert content.splitlines()[1:] == ["[Time]", "NTP=ntp1.example 10.0.0.1"]


@pytest.mark.parametrize(
    "servers",
    [["pool.ntp.org\nserver evil.example"], ["pool.ntp.org; whoami"], ["-x"], [""], [], [1]],
)
def test_cluster_file_refuses_time_servers(servers):
    doc = {
        "hosts": [{"name": "cp1", "address": "10.0.0.1", "roles": ["control_plane"]}],
        "settings": {"time_servers": servers},
    }
    with pytest.raises(ClusterError, match="time_servers"):
        parse_cluster(doc)


NOT_FOUND = {
    "LoadState": "not-found",
    "UnitFileState": "",
    "ActiveState": "inactive",
    "ConditionResult": "no",
    "ConditionTimestampMonotonic": "0",
}
RUNNING = {
    "LoadState": "loaded",
    "UnitFileState": "enabled",
    "ActiveState": "active",
    "ConditionResult": "yes",
    "ConditionTimestampMonotonic": "5361447",
}
SKIPPED = {
    "LoadState": "loaded",
    "UnitFileState": "enabled",
    "ActiveState": "inactive",
    "ConditionResult": "no",
    "ConditionTimestampMonotonic": "1830551",
}
STOPPED = {**RUNNING, "ActiveState": "inactive"}
DISABLED = {**RUNNING, "UnitFileState": "disabled"}


@pytest.mark.parametrize(
    "unit, container, start",
    [
        ({}, "none", True),
        (NOT_FOUND, "none", True),  # not installed yet: ConditionResult "no" was never checked
        (RUNNING, "none", True),
        (STOPPED, "none", True),
        (SKIPPED, "none", False),  # e.g. timesyncd next to VirtualBox's time sync
        (NOT_FOUND, "systemd-nspawn", False),
        (RUNNING, "lxc", False),
    ],
)
def test_should_start(unit, container, start):
    assert should_start(unit, container) is start


@pytest.mark.parametrize(
    "unit, start, converged",
    [
        (RUNNING, True, True),
        (STOPPED, True, False),
        (DISABLED, True, False),
        (NOT_FOUND, True, False),
        (SKIPPED, False, True),
        (DISABLED, False, False),
    ],
)
def test_service_converged(unit, start, converged):
    assert service_converged(unit, start) is converged
