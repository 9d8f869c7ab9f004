"""Which release a node runs, and which packages OS preparation installs on it."""

import dataclasses
import itertools

import pytest

from deploys.distro import RELEASES, Release
from deploys.settings import Settings
from deploys.system.facts import PACKAGES
from deploys.system.packages import BASE_PACKAGES, node_packages
from deploys.system.timesync import TIME_PACKAGES


@pytest.mark.parametrize(
    "release_id, version, expected",
    [
        ("ubuntu", "20.04", Release("ubuntu", "20.04")),
        ("ubuntu", "24.04", Release("ubuntu", "24.04")),
        ("debian", "11", Release("debian", "11")),
        ("debian", "", Release("debian", "")),  # sid / testing: no VERSION_ID
    ],
)
def test_release_parse(release_id, version, expected):
    assert Release.parse(release_id, version) == expected


@pytest.mark.parametrize(
    "release_id, version",
    [("centos", "9"), ("", ""), ("ubuntu", "24.04; whoami"), ("debian", "trixie")],
)
def test_release_parse_refuses(release_id, version):
    with pytest.raises(ValueError):
        Release.parse(release_id, version)


@pytest.mark.parametrize(
    "release, older",
    [
        (Release("ubuntu", "20.04"), True),
        (Release("ubuntu", "22.04"), False),
        (Release("ubuntu", "24.04"), False),
        (Release("debian", "11"), True),
        (Release("debian", "12"), False),
        (Release("debian", ""), False),
    ],
)
def test_older_than(release, older):
    assert release.older_than(ubuntu=(22, 4), debian=(12,)) is older


@pytest.mark.parametrize("os_release", RELEASES)
def test_base_packages_everywhere(os_release):
    packages = node_packages(Settings(), RELEASES[os_release])
    assert set(BASE_PACKAGES) <= set(packages)
    assert len(packages) == len(set(packages))


@pytest.mark.parametrize(
    "os_release, wanted",
    [
        ("ubuntu-20.04", True),
        ("ubuntu-22.04", False),
        ("ubuntu-24.04", False),
        ("debian-11", True),
        ("debian-12", False),
        ("debian-13", False),
    ],
)
def test_apt_transport_https_only_on_old_releases(os_release, wanted):
    assert ("apt-transport-https" in node_packages(Settings(), RELEASES[os_release])) is wanted


@pytest.mark.parametrize(
    "mode, tools",
    [("iptables", set()), ("nftables", {"nftables"}), ("ipvs", {"ipset", "ipvsadm"})],
)
def test_each_kube_proxy_mode_gets_its_inspection_tools(mode, tools):
    packages = node_packages(Settings(kube_proxy_mode=mode), RELEASES["debian-12"])
    assert set(packages) & {"nftables", "ipset", "ipvsadm"} == tools


@pytest.mark.parametrize(
    "choice, os_release, package",
    [
        ("chrony", "ubuntu-20.04", "chrony"),
        ("chrony", "debian-13", "chrony"),
        ("ntp", "ubuntu-20.04", "ntp"),
        ("ntp", "ubuntu-22.04", "ntp"),
        ("ntp", "ubuntu-24.04", "ntpsec"),
        ("ntp", "debian-11", "ntp"),
        ("ntp", "debian-12", "ntpsec"),
        ("timesyncd", "ubuntu-20.04", "systemd-timesyncd"),
    ],
)
def test_time_daemon_package_included(choice, os_release, package):
    packages = node_packages(Settings(time_sync=choice), RELEASES[os_release])
    assert packages[-1] == package
    assert not set(packages[:-1]) & set(TIME_PACKAGES)


COMBINATIONS = list(
    itertools.product(RELEASES, ("chrony", "ntp", "timesyncd"), ("iptables", "nftables", "ipvs"))
)


@pytest.mark.parametrize("os_release, choice, mode", COMBINATIONS)
def test_the_fact_reads_every_package_that_can_be_wanted(os_release, choice, mode):
    settings = dataclasses.replace(Settings(), time_sync=choice, kube_proxy_mode=mode)
    assert set(node_packages(settings, RELEASES[os_release])) <= set(PACKAGES)


def test_the_fact_reads_every_time_daemon():
    assert set(TIME_PACKAGES) <= set(PACKAGES)
