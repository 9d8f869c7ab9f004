"""The cluster file: defaults, overrides, and every kind of bad input refused clearly."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploys import settings, versions
from deploys.settings import ClusterError, Settings, load_cluster, parse_cluster

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
    ],
    "settings": {"kubernetes_version": "1.33.4"},
}


def cluster_with(**changes):
    doc = copy.deepcopy(GOOD)
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return doc


DELETE = object()


def refused(doc) -> str:
    with pytest.raises(ClusterError) as exc:
        parse_cluster(doc, "site.yaml")
    return str(exc.value)


def test_defaults_are_settings_defaults():
    cluster = parse_cluster(GOOD, "site.yaml")
    cp1 = cluster.nodes[0]
    assert cluster.settings_for(cp1).kubernetes_version == "1.33.4"
    assert cluster.settings_for(cp1).pod_subnet == Settings().pod_subnet == "10.244.0.0/16"


def test_host_overrides_beat_cluster_settings():
    doc = cluster_with(hosts__1__settings={"kubernetes_version": "1.33.5", "time_sync": "ntp"})
    cluster = parse_cluster(doc, "site.yaml")
    assert cluster.settings_for(cluster.nodes[0]).kubernetes_version == "1.33.4"
    assert cluster.settings_for(cluster.nodes[1]).kubernetes_version == "1.33.5"
    assert cluster.settings_for(cluster.nodes[1]).time_sync == "ntp"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"settings__kubernetes_verison": "1.33.4"},
            "settings: unknown key 'kubernetes_verison' (did you mean 'kubernetes_version'?)",
        ),
        (
            {"hosts__0__adress": "10.0.0.1"},
            "hosts[0] (cp1): unknown key 'adress' (did you mean 'address'?)",
        ),
        (
            {"hosts__1__settings": {"pod_subnett": "10.1.0.0/16"}},
            "host 'w1': settings: unknown key 'pod_subnett'",
        ),
        ({"clusters": {}}, "unknown key 'clusters'"),
        ({"hosts__0__address": DELETE}, "hosts[0] (cp1): 'address' is required"),
        ({"hosts__0__name": DELETE}, "hosts[0]: 'name' is required"),
        ({"hosts__1__roles": []}, "hosts[1] (w1): 'roles' is required"),
        ({"hosts": []}, "'hosts' must be a non-empty list"),
        ({"hosts__1__name": "cp1"}, "host 'cp1': duplicate name 'cp1' (also used by host 'cp1')"),
        (
            {"hosts__1__address": "10.0.0.11"},
            "host 'w1': duplicate address '10.0.0.11' (also used by host 'cp1')",
        ),
        (
            {"hosts__1__address": "10.0.0.300"},
            "host 'w1': address '10.0.0.300' is not an IP address",
        ),
        (
            {"hosts__1__address": "w1.example; whoami"},
            "host 'w1': address 'w1.example; whoami' is not an IP address",
        ),
        ({"hosts__1__name": "W_1"}, "name 'W_1' is not a valid host name"),
        ({"hosts__1__roles": ["master"]}, "host 'w1': roles ['master']: each role must be one of"),
        (
            {"settings__pod_subnet": "10.244.0.0/33"},
            "settings: pod_subnet: '10.244.0.0/33' is not a valid CIDR",
        ),
        (
            {"settings__service_subnet": "10.96.0.1/12"},
            "settings: service_subnet: '10.96.0.1/12' is not a valid CIDR",
        ),
        (
            {"settings__service_subnet": "10.244.128.0/20"},
            "settings: service_subnet: 10.244.128.0/20 overlaps pod_subnet 10.244.0.0/16",
        ),
        ({"settings__pod_subnet": "10.0.0.0/8"}, "overlaps pod_subnet 10.0.0.0/8"),
        ({"hosts__0__roles": ["worker"]}, "no host has the role 'control_plane'"),
        (
            {"settings__kubernetes_version": "1.26.15"},
            "settings: kubernetes_version: Kubernetes 1.26.15 is not supported; supported: 1.27 to",
        ),
        ({"settings__kubernetes_version": "2.0.0"}, "Kubernetes 2.0.0 is not supported"),
        (
            {"settings__kubernetes_version": "1.33"},
            "kubernetes_version: '1.33' is not a version like '1.34.2'",
        ),
        ({"settings__kubernetes_version": "latest"}, "'latest' is not a version"),
        ({"settings__kubernetes_version": "1.33.4; rm -rf /"}, "is not a version"),
        (
            {"settings__kubernetes_version": 1.33},
            "settings.kubernetes_version: expected str, got float 1.33 (quote it)",
        ),
        ({"settings__api_port": "6443"}, "settings.api_port: expected int, got str"),
        ({"settings__api_port": 70000}, "api_port: 70000 is not a TCP port"),
        ({"settings__sudo": "yes"}, "settings.sudo: expected bool"),
        (
            {"settings__time_sync": "ntpd"},
            "time_sync: 'ntpd' is not one of ['chrony', 'ntp', 'timesyncd']",
        ),
        ({"settings__containerd_source": "snap"}, "containerd_source: 'snap' is not one of"),
        (
            {"settings__registry_mirrors": {"docker.io": "https://m.example"}},
            "registry_mirrors.docker.io: expected a list of http(s):// URLs",
        ),
        (
            {"settings__registry_mirrors": {"docker.io": ['https://m.example"\nx']}},
            "registry_mirrors.docker.io",
        ),
        (
            {"settings__registry_auth": {"r.example": {"user": "a"}}},
            "registry_auth.r.example: expected {username",
        ),
        (
            {"settings__control_plane_endpoint": "lb.example"},
            "control_plane_endpoint: 'lb.example' is not 'host:port'",
        ),
        (
            {"settings__kuboard_server": "http://10.0.0.5"},
            "kuboard_agent_token: required when kuboard_server is set",
        ),
        (
            {"settings__image_gc_low_threshold": 90},
            "image_gc_low_threshold: need 0 <= low < high <= 100",
        ),
        ({"settings__flannel_version": "latest"}, "flannel_version: 'latest' is not a release"),
        (
            {"hosts__1__settings": {"pod_subnet": "bogus"}},
            "site.yaml: host 'w1': pod_subnet: 'bogus' is not a valid CIDR",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_is_refused_with_a_clear_message(changes, expected):
    message = refused(cluster_with(**changes))
    assert message.startswith("site.yaml: ")
    assert expected in message


def test_not_a_mapping():
    assert "expected a mapping" in refused(["cp1"])


def test_more_control_planes_need_an_endpoint():
    doc = cluster_with(hosts__1__roles=["control_plane"])
    assert "control_plane_endpoint: required with more than one control plane" in refused(doc)


def test_even_number_of_control_planes_is_warned_about():
    doc = cluster_with(
        hosts__1__roles=["control_plane", "worker"],
        settings__control_plane_endpoint="10.0.0.10:6443",
    )
    cluster = parse_cluster(doc, "site.yaml")
    assert len(cluster.control_planes) == 2
    assert any("2 control planes" in w and "odd number" in w for w in cluster.warnings)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ClusterError, match="cannot read cluster file"):
        load_cluster(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [\n")
    with pytest.raises(ClusterError, match="bad.yaml: not valid YAML"):
        load_cluster(bad)


@pytest.mark.parametrize("name", ["cluster.yaml", "example-mirrored.yaml"])
def test_shipped_cluster_files_are_valid(name):
    cluster = load_cluster(ROOT / "inventory" / name)
    assert cluster.control_planes
    assert cluster.warnings == ()


def test_every_setting_has_a_comment():
    source = Path(settings.__file__).read_text().splitlines()
    for name in settings.SETTING_NAMES:
        line = next(i for i, text in enumerate(source) if text.strip().startswith(f"{name}:"))
        above = source[line - 1].strip()
        assert above.startswith("#") or source[line - 2].strip().startswith("#"), name


def _pyinfra(cluster_file, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", "inventory.py", "deploys/node.py"],
        cwd=ROOT,
        env={"CLUSTER": str(cluster_file), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pyinfra_refuses_a_bad_file_before_connecting(tmp_path):
    doc = cluster_with(settings__pod_subnet="10.244.0.0/33")
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = _pyinfra(path, tmp_path)
    assert result.returncode != 0
    assert f"refused: {path}: settings: pod_subnet: '10.244.0.0/33'" in result.stderr
    assert "Connecting" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", settings.SETTING_NAMES)
def test_readme_documents_every_setting(name):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Settings", 1)[1]
    assert f"| `{name}` |" in section


# --- kube-proxy mode against the Kubernetes release ---------------------------------------

MINORS = versions.SUPPORTED_MINORS


@pytest.mark.parametrize("minor", [m for m in MINORS if m >= 33])
def test_nftables_mode_from_kubernetes_1_33(minor):
    doc = cluster_with(
        settings__kubernetes_version=f"1.{minor}.2", settings__kube_proxy_mode="nftables"
    )
    cluster = parse_cluster(doc, "site.yaml")
    assert cluster.settings_for(cluster.nodes[1]).kube_proxy_mode == "nftables"
    assert cluster.warnings == ()


@pytest.mark.parametrize("minor", [m for m in MINORS if m < 33])
def test_nftables_mode_before_1_33_is_refused_with_the_way_out(minor):
    doc = cluster_with(
        settings__kubernetes_version=f"1.{minor}.2", settings__kube_proxy_mode="nftables"
    )
    assert refused(doc) == (
        f"site.yaml: settings: kube_proxy_mode: 'nftables' needs Kubernetes 1.33 or later, "
        f"where kube-proxy's nftables mode is GA (kubernetes_version is 1.{minor}.2): set "
        "kubernetes_version to 1.33 or later, or kube_proxy_mode to 'iptables'"
    )


def test_nftables_mode_refused_for_the_host_whose_release_is_too_old():
    doc = cluster_with(
        settings__kube_proxy_mode="nftables", hosts__1__settings={"kubernetes_version": "1.32.9"}
    )
    assert refused(doc).startswith("site.yaml: host 'w1': kube_proxy_mode: 'nftables' needs")


@pytest.mark.parametrize("mode", ["nft", "NFTABLES", "userspace", "kernelspace", ""])
def test_unknown_kube_proxy_modes_are_refused(mode):
    message = refused(cluster_with(settings__kube_proxy_mode=mode))
    assert f"kube_proxy_mode: {mode!r} is not one of ['iptables', 'nftables', 'ipvs']" in message


@pytest.mark.parametrize(
    "mode, minor",
    [
        (mode, minor)
        for mode in ("iptables", "nftables", "ipvs")
        for minor in MINORS
        if not (mode == "nftables" and minor < 33)  # refused, see above
    ],
)
def test_ipvs_is_warned_about_from_1_35_once(mode, minor):
    doc = cluster_with(settings__kubernetes_version=f"1.{minor}.0", settings__kube_proxy_mode=mode)
    warnings = parse_cluster(doc, "site.yaml").warnings
    if mode == "ipvs" and minor >= 35:
        assert warnings == (
            "site.yaml: settings: kube_proxy_mode: 'ipvs' is deprecated from Kubernetes 1.35 "
            "(KEP-5495; it is planned to be off by default in 1.40 and then removed): "
            "consider 'nftables'",
        )
    else:
        assert warnings == ()


def test_ipvs_warning_comes_with_the_other_warnings():
    doc = cluster_with(
        hosts__1__roles=["control_plane", "worker"],
        settings__control_plane_endpoint="10.0.0.10:6443",
        settings__kubernetes_version="1.35.9",
        settings__kube_proxy_mode="ipvs",
    )
    warnings = parse_cluster(doc, "site.yaml").warnings
    assert len(warnings) == 2
    assert "'ipvs' is deprecated" in warnings[0]
    assert "2 control planes" in warnings[1]
