"""The cluster file's containerd settings are checked before anything runs: what ends up in
a path, an apt command or a registry header is refused unless it is what it claims to be."""

import pytest

from deploys.settings import ClusterError, parse_cluster

AUTH = {"username": "robot", "password": "s3cret"}


def cluster(**settings) -> dict:
    return {
        "hosts": [{"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]}],
        "settings": settings,
    }


def refused(**settings) -> str:
    with pytest.raises(ClusterError) as exc:
        parse_cluster(cluster(**settings), "site.yaml")
    return str(exc.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"registry_mirrors": {"docker.io": ["https://docker.m.daocloud.io"]}},
        {"registry_mirrors": {"10.0.0.5:5000": ["http://10.0.0.5:5001/v2/cache"]}},
        {
            "registry_auth": {
                "harbor.example.internal": {"username": "robot$k8s", "password": "p w;'\""}
            }
        },
        {"containerd_source": "docker", "containerd_version": "1.7.28-1"},
        {"containerd_version": "1.6.20~ds1-1+deb12u3"},
        {"containerd_version": "1:2.0.0-1"},
        {"docker_apt_repo": "https://mirrors.tuna.tsinghua.edu.cn/docker-ce/linux"},
    ],
)
def test_good_containerd_settings_are_taken(settings):
    assert parse_cluster(cluster(**settings), "site.yaml").overrides == settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"registry_mirrors": {"../../etc": ["https://m.example"]}}, "not a registry host[:port]"),
        ({"registry_mirrors": {"docker.io/x": ["https://m.example"]}}, "not a registry host"),
        ({"registry_mirrors": {"docker.io": ["https://m.example/a b"]}}, "http(s):// URLs"),
        ({"registry_mirrors": {"docker.io": ['https://m.example/"]']}}, "http(s):// URLs"),
        ({"registry_mirrors": {"docker.io": ["https://user:pw@m.example"]}}, "http(s):// URLs"),
        ({"registry_mirrors": {"docker.io": ["ftp://m.example"]}}, "http(s):// URLs"),
        ({"registry_auth": {"a/../b": AUTH}}, "not a registry host[:port]"),
        (
            {"registry_auth": {"h.example": {"username": "a:b", "password": "x"}}},
            "cannot contain ':'",
        ),
        ({"registry_auth": {"h.example": {"username": "a", "password": "x\ny"}}}, "one line"),
        ({"registry_auth": {"h.example": {"username": "", "password": "x"}}}, "one line"),
        ({"registry_auth": {"h.example": {"username": "a", "password": 5}}}, "one line"),
        ({"containerd_version": "1.7; whoami"}, "is not an apt version"),
        ({"containerd_version": "latest"}, "is not an apt version"),
        (
            {"docker_apt_repo": "https://d.example/linux\ndeb http://evil.example x main"},
            "http(s) URL",
        ),
        ({"docker_apt_repo": "file:///srv/repo"}, "http(s) URL"),
    ],
)
def test_bad_containerd_settings_are_refused_by_name(settings, message):
    text = refused(**settings)
    assert text.startswith("site.yaml: settings: ")
    assert message in text


def test_a_refused_password_is_not_repeated():
    text = refused(registry_auth={"h.example": {"username": "a", "password": "top\nsecret"}})
    assert "secret" not in text


@pytest.mark.parametrize(
    ("settings", "advice"),
    [
        (
            {
                "kubernetes_version": "1.36.0",
                "containerd_source": "docker",
                "containerd_version": "1.7.28-1",
            },
            "Pin a 2.x version of containerd.io",
        ),
        (
            {"kubernetes_version": "1.37.2", "containerd_version": "1.7.24-0ubuntu1~20.04.2"},
            "Pin a 2.x version of containerd,",
        ),
    ],
)
def test_pinned_containerd_1_with_kubernetes_1_36_is_refused(settings, advice):
    refusal = refused(**settings)
    version = settings["containerd_version"]
    assert refusal.startswith(f"site.yaml: settings: containerd_version: {version!r}")
    assert "needs containerd 2.x" in refusal
    assert advice in refusal
    assert "kubernetes_version to a 1.35 release" in refusal


@pytest.mark.parametrize(
    "settings",
    [
        {"kubernetes_version": "1.35.9", "containerd_version": "1.6.20~ds1-1+deb12u3"},
        # unpinned: Ubuntu 22.04/24.04's own package is 2.x; preflight decides per node
        {"kubernetes_version": "1.36.0"},
        {"kubernetes_version": "1.36.0", "containerd_source": "docker"},
        {"kubernetes_version": "1.36.0", "containerd_version": "2.2.1-0ubuntu1~24.04.3"},
        {
            "kubernetes_version": "1.36.0",
            "containerd_source": "docker",
            "containerd_version": "2.1.4-1",
        },
    ],
)
def test_containerd_that_can_run_the_kubernetes_version_is_taken(settings):
    parse_cluster(cluster(**settings), "site.yaml")


def test_containerd_of_a_host_is_checked_with_that_hosts_settings():
    doc = cluster(kubernetes_version="1.36.0")
    doc["hosts"][0]["settings"] = {"containerd_version": "1.7.24~ds1-6"}
    with pytest.raises(ClusterError) as exc:
        parse_cluster(doc, "site.yaml")
    assert str(exc.value).startswith("site.yaml: host 'cp1': containerd_version: '1.7.24~ds1-6'")
