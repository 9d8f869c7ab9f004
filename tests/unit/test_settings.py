"""The cluster file: defaults, overrides, and every kind of bad input refused clearly."""

import copy
import json
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
    doc = cluster_with(
        settings={"time_servers": ["ntp.example"], "kubernetes_version": "1.33.4"},
        hosts__1__settings={"time_servers": ["10.0.0.1"], "time_sync": "ntp"},
    )
    cluster = parse_cluster(doc, "site.yaml")
    assert cluster.settings_for(cluster.nodes[0]).time_servers == ["ntp.example"]
    assert cluster.settings_for(cluster.nodes[1]).time_servers == ["10.0.0.1"]
    assert cluster.settings_for(cluster.nodes[1]).time_sync == "ntp"
    assert cluster.settings_for(cluster.nodes[1]).kubernetes_version == "1.33.4"


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
            {"hosts__1__settings": {"ssh_port": 70000}},
            "site.yaml: host 'w1': ssh_port: 70000 is not a TCP port",
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


def test_more_control_planes_without_a_load_balancer_need_an_endpoint():
    doc = cluster_with(hosts__1__roles=["control_plane"], settings__api_load_balancer="none")
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


# --- scopes: which settings may differ between hosts ---------------------------------------

CLUSTER_SETTINGS = settings.CLUSTER_SETTINGS
# What an operator expects to be one value for the whole cluster (issue: a worker with its
# own Kubernetes version, repository, endpoint or image repository; subnets ignored).
CLUSTER_WIDE = (
    "kubernetes_version",
    "kubernetes_apt_repo",
    "control_plane_endpoint",
    "api_port",
    "image_repository",
    "pod_subnet",
    "service_subnet",
    "dns_domain",
    "kube_proxy_mode",
    "scheduler",
    "flannel_backend",
    "flannel_version",
    "kuboard_server",
    "kuboard_agent_token",
)
PER_HOST = (
    "ssh_user",
    "ssh_key",
    "sudo",
    "time_servers",
    "sysctls",
    "registry_mirrors",
    "registry_auth",
    "firewall",
    "containerd_version",
)


@pytest.mark.parametrize("name", settings.SETTING_NAMES)
def test_every_setting_declares_a_scope_and_a_meaning(name):
    metadata = settings.FIELDS[name].metadata
    assert metadata["scope"] in ("cluster", "host")
    assert len(metadata["meaning"]) > 10


@pytest.mark.parametrize(
    ("name", "scope"), [(n, "cluster") for n in CLUSTER_WIDE] + [(n, "host") for n in PER_HOST]
)
def test_scope(name, scope):
    assert settings.FIELDS[name].metadata["scope"] == scope


@pytest.mark.parametrize("name", CLUSTER_SETTINGS)
def test_a_cluster_setting_under_a_host_is_refused(name):
    doc = cluster_with(hosts__1__settings={name: settings.DEFAULTS[name]})
    message = refused(doc)
    assert message == (
        f"site.yaml: host 'w1': settings.{name}: a cluster setting, one value for the whole "
        "cluster: set it under the top-level 'settings:', not per host"
    )


@pytest.mark.parametrize("name", [n for n in settings.SETTING_NAMES if n not in CLUSTER_SETTINGS])
def test_a_host_setting_may_differ_per_host(name):
    doc = cluster_with(hosts__1__settings={name: settings.DEFAULTS[name]})
    assert parse_cluster(doc, "site.yaml").host_overrides == {
        "cp1": {},
        "w1": {name: settings.DEFAULTS[name]},
    }


def test_every_problem_of_the_file_in_one_report():
    doc = cluster_with(
        settings__pod_subnet="bogus",
        hosts__0__settings={"kubernetes_version": "1.33.5", "time_servers": "oops"},
        hosts__1__settings={"flannel_backend": "host-gw", "ssh_port": 70000},
    )
    doc["hosts"] += [
        {"name": "w2", "address": "10.0.0.22", "roles": "worker", "settings": {"sysctl": {}}},
        {"name": "w3", "address": "10.0.0.23", "roles": "worker"},
    ]
    assert tuple(refused(doc).splitlines()) == (
        "site.yaml: host 'cp1': settings.kubernetes_version: a cluster setting, one value for "
        "the whole cluster: set it under the top-level 'settings:', not per host",
        "site.yaml: host 'cp1': settings.time_servers: expected list, got str 'oops'",
        "site.yaml: host 'w1': settings.flannel_backend: a cluster setting, one value for the "
        "whole cluster: set it under the top-level 'settings:', not per host",
        "site.yaml: host 'w2': settings: unknown key 'sysctl' (did you mean 'sysctls'?)",
        "site.yaml: settings: pod_subnet: 'bogus' is not a valid CIDR "
        "('bogus' does not appear to be an IPv4 or IPv6 network)",
    )


def test_values_of_every_host_in_one_report():
    doc = cluster_with(
        hosts__0__settings={"time_sync": "ntpd"},
        hosts__1__settings={"ssh_port": 70000},
    )
    doc["hosts"].append({"name": "w2", "address": "10.0.0.21", "roles": ["worker"]})
    assert tuple(refused(doc).splitlines()) == (
        "site.yaml: host 'w2': duplicate address '10.0.0.21' (also used by host 'w1')",
        "site.yaml: host 'cp1': time_sync: 'ntpd' is not one of ['chrony', 'ntp', 'timesyncd']",
        "site.yaml: host 'w1': ssh_port: 70000 is not a TCP port",
    )


def test_every_bad_value_of_a_host_and_of_the_cluster_once_where_it_is_set():
    doc = cluster_with(
        settings__pod_subnet="bogus",
        settings__image_gc_low_threshold=90,
        settings__registry_mirrors={"docker.io": "https://m.example"},
        hosts__1__settings={
            "ssh_port": 0,
            "firewall": "on",
            "registry_mirrors": {"docker.io": ["ftp://m.example"]},
            "sysctls": {"vm max": 1},
        },
    )
    assert tuple(refused(doc).splitlines()) == (
        "site.yaml: settings: pod_subnet: 'bogus' is not a valid CIDR "
        "('bogus' does not appear to be an IPv4 or IPv6 network)",
        "site.yaml: settings: image_gc_low_threshold: need 0 <= low < high <= 100",
        "site.yaml: settings: registry_mirrors.docker.io: expected a list of http(s):// URLs",
        "site.yaml: host 'w1': firewall: 'on' is not one of ['open', 'disabled']",
        "site.yaml: host 'w1': ssh_port: 0 is not a TCP port",
        "site.yaml: host 'w1': registry_mirrors.docker.io: expected a list of http(s):// URLs",
        "site.yaml: host 'w1': sysctls.vm max: is not a sysctl name like 'vm.max_map_count'",
    )


def test_the_cluster_shape_comes_with_the_other_problems():
    doc = cluster_with(hosts__0__roles=["worker"], hosts__1__settings={"ssh_port": 0})
    assert refused(doc).splitlines() == [
        "site.yaml: host 'w1': ssh_port: 0 is not a TCP port",
        "site.yaml: no host has the role 'control_plane'; a cluster needs one",
    ]
    doc = cluster_with(
        hosts__1__roles=["control_plane"],
        hosts__1__settings={"ssh_port": 0},
        settings__api_load_balancer="none",
    )
    assert refused(doc).splitlines() == [
        "site.yaml: host 'w1': ssh_port: 0 is not a TCP port",
        "site.yaml: settings.control_plane_endpoint: required with more than one control "
        "plane and api_load_balancer none (a load balancer or VIP in front of the API "
        "servers); or leave api_load_balancer empty for haproxy on every node",
    ]


def test_every_unknown_key_and_wrong_type_of_a_block():
    doc = cluster_with(
        settings={"pod_subnett": "x", "ssh_port": "22", "kubernetes_version": 1.3, "sudo": "yes"},
        hosts__1__foo=1,
        hosts__1__bar=2,
    )
    assert refused(doc).splitlines() == [
        "site.yaml: settings: unknown key 'pod_subnett' (did you mean 'pod_subnet'?)",
        "site.yaml: settings.ssh_port: expected int, got str '22'",
        "site.yaml: settings.kubernetes_version: expected str, got float 1.3 (quote it)",
        "site.yaml: settings.sudo: expected bool, got str 'yes'",
        "site.yaml: hosts[1] (w1): unknown key 'foo'",
        "site.yaml: hosts[1] (w1): unknown key 'bar'",
    ]


def test_every_scheduler_problem_one_line_each_named_for_the_cluster_settings():
    scheduler = {
        "percentage_of_nodes_to_score": 101,
        "profiles": [{"scheduler_name": "default-scheduler", "score_weights": {"Nope": 0}}],
    }
    doc = cluster_with(settings__scheduler=scheduler, hosts__1__settings={"ssh_port": 0})
    lines = refused(doc).splitlines()
    assert len(lines) > 2
    assert lines[-1] == "site.yaml: host 'w1': ssh_port: 0 is not a TCP port"
    assert all(line.startswith("site.yaml: settings: scheduler: ") for line in lines[:-1])


def test_a_default_that_disagrees_with_another_value_is_not_reported_again():
    doc = cluster_with(settings__pod_subnet="10.96.0.0/16", settings__service_subnet="10.96.0.0/13")
    assert (
        refused(doc)
        == "site.yaml: settings: service_subnet: 10.96.0.0/13 overlaps pod_subnet 10.96.0.0/16"
    )


def test_pyinfra_reports_every_problem_before_connecting(tmp_path):
    doc = cluster_with(
        hosts__0__settings={"pod_subnet": "10.1.0.0/16"},
        hosts__1__settings={"kubernetes_version": "1.33.5"},
    )
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = _pyinfra(path, tmp_path)
    assert result.returncode != 0
    for host, name in (("cp1", "pod_subnet"), ("w1", "kubernetes_version")):
        assert f"refused: {path}: host '{host}': settings.{name}: a cluster setting" in (
            result.stderr
        )
    assert "Connecting" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# --- the README's settings tables -----------------------------------------------------------


def test_readme_settings_tables_are_generated_from_the_model():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.readme_with_tables(readme) == readme, (
        "README.md is stale: run `python -m deploys.settings --readme`"
    )


@pytest.mark.parametrize("name", settings.SETTING_NAMES)
def test_readme_row_of_each_setting(name):
    field = settings.FIELDS[name]
    row = next(
        line for line in settings.readme_tables().splitlines() if line.startswith(f"| `{name}` |")
    )
    assert row.split(" | ")[2] == field.metadata["scope"]
    assert field.metadata["meaning"].replace("|", "\\|") in row


@pytest.mark.parametrize(
    ("stale", "fixed_by"),
    [
        ('| `pod_subnet` | `"10.244.0.0/16"` |', '| `pod_subnet` | `"10.9.0.0/16"` |'),
        ("| `pod_subnet` | `", "| `pod_subnet` | host | `"),
        ("Pod network (IPv4)", "Pod network"),
        ("| `ready_timeout` |", "| `readiness_timeout` |"),
    ],
)
def test_the_readme_command_rewrites_stale_tables(tmp_path, stale, fixed_by):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert stale in readme
    path = tmp_path / "README.md"
    path.write_text(readme.replace(stale, fixed_by), encoding="utf-8")
    assert settings.readme_with_tables(path.read_text()) != path.read_text()
    result = subprocess.run(
        [sys.executable, "-m", "deploys.settings", "--readme", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert path.read_text(encoding="utf-8") == readme


@pytest.mark.parametrize("argv", [[], ["--markdown"], ["--readme", "a", "b"]])
def test_the_readme_command_refuses_other_arguments(argv):
    assert settings.main(argv) == 2


@pytest.mark.parametrize("text", [None, "# title\n\n## Settings\n"])
def test_a_readme_without_the_markers_is_refused(tmp_path, capsys, text):
    path = tmp_path / "README.md"
    if text is not None:
        path.write_text(text)
    assert settings.main(["--readme", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"refused: {path}: ")
    assert (path.read_text() if text is not None else None) == text


# --- secrets in what Python and pyinfra print -----------------------------------------------


def test_repr_and_json_of_the_model_hold_no_secret():
    doc = cluster_with(
        settings__kuboard_server="http://10.0.0.5",
        settings__kuboard_cluster_name="site-a",
        settings__kuboard_agent_token="Tok3nValue",
        hosts__1__settings={"registry_auth": {"r.example": {"username": "u1", "password": "Pw9"}}},
    )
    cluster = parse_cluster(doc, "site.yaml")
    w1 = cluster.settings_for(cluster.nodes[1])
    assert w1.kuboard_agent_token == "Tok3nValue"
    assert w1.registry_auth == {"r.example": {"username": "u1", "password": "Pw9"}}
    printed = " ".join(
        [repr(cluster), repr(w1), str(w1), json.dumps(w1.to_json()), *map(repr, cluster.nodes)]
    )
    for secret in ("Tok3nValue", "u1", "Pw9"):
        assert secret not in printed
    assert w1.to_json()["registry_auth"] == {
        "r.example": {
            "username": "<secret: registry_auth.r.example.username>",
            "password": "<secret: registry_auth.r.example.password>",
        }
    }
