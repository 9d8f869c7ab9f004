"""Registry host files (deploys/runtime/registries.py): one hosts.toml per registry, mirrors
in order with the upstream as fallback, credentials as a header of their own host only."""

import base64

import pytest

from deploys.runtime.registries import basic_authorization, registry_files, upstream
from deploys.runtime.toml_text import loads
from deploys.settings import Settings

AUTH = {"username": "robot$k8s", "password": "p@ss'w\"ord; whoami\n"}


def files(**settings) -> dict[str, dict]:
    return {path: loads(text) for path, text in registry_files(Settings(**settings)).items()}


def test_no_mirrors_no_credentials_no_files():
    assert registry_files(Settings()) == {}


def test_mirrors_in_order_with_the_upstream_as_fallback():
    written = files(
        registry_mirrors={"docker.io": ["https://docker.m.daocloud.io", "https://dockerproxy.net/"]}
    )
    assert written == {
        "/etc/containerd/certs.d/docker.io/hosts.toml": {
            "server": "https://registry-1.docker.io",
            "host": {
                "https://docker.m.daocloud.io": {"capabilities": ["pull", "resolve"]},
                "https://dockerproxy.net": {"capabilities": ["pull", "resolve"]},
            },
        }
    }
    text = registry_files(
        Settings(registry_mirrors={"docker.io": ["https://b.example", "https://a.example"]})
    )["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert text.index("https://b.example") < text.index("https://a.example")


@pytest.mark.parametrize(
    ("registry", "server"),
    [
        ("docker.io", "https://registry-1.docker.io"),
        ("registry.k8s.io", "https://registry.k8s.io"),
        ("10.0.0.5:5000", "https://10.0.0.5:5000"),
    ],
)
def test_upstream(registry, server):
    assert upstream(registry) == server


def test_credentials_of_a_mirror_go_to_that_mirror_only():
    written = files(
        registry_mirrors={
            "registry.k8s.io": ["http://10.0.0.5:5000", "https://public.example"],
            "docker.io": ["http://10.0.0.5:5000"],
        },
        registry_auth={"10.0.0.5:5000": AUTH},
    )
    header = {"Authorization": [basic_authorization(AUTH)]}
    for registry in ("registry.k8s.io", "docker.io"):
        hosts = written[f"/etc/containerd/certs.d/{registry}/hosts.toml"]
        assert hosts["host"]["http://10.0.0.5:5000"]["header"] == header
        assert "header" not in hosts
    public = written["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"]["host"]
    assert "header" not in public["https://public.example"]
    assert len(written) == 2  # the mirror gets no hosts.toml of its own


def test_private_registry_without_mirrors_lists_itself_with_its_credentials():
    written = files(registry_auth={"harbor.example.internal": AUTH})
    header = {"Authorization": [basic_authorization(AUTH)]}
    assert written == {
        "/etc/containerd/certs.d/harbor.example.internal/hosts.toml": {
            "server": "https://harbor.example.internal",
            "header": header,
            "host": {
                "https://harbor.example.internal": {
                    "capabilities": ["pull", "resolve"],
                    "header": header,
                }
            },
        }
    }


@pytest.mark.parametrize("name", ["docker.io", "registry-1.docker.io"])
def test_docker_hub_credentials_by_either_name(name):
    written = files(
        registry_mirrors={"docker.io": ["https://m.example"]}, registry_auth={name: AUTH}
    )
    hosts = written["/etc/containerd/certs.d/docker.io/hosts.toml"]
    assert hosts["header"] == {"Authorization": [basic_authorization(AUTH)]}
    assert "header" not in hosts["host"]["https://m.example"]


def test_basic_authorization_encodes_the_pair_exactly():
    value = basic_authorization(AUTH)
    assert value.startswith("Basic ")
    assert (
        base64.b64decode(value.removeprefix("Basic ")).decode()
        == f"{AUTH['username']}:{AUTH['password']}"
    )


def test_files_say_who_wrote_them():
    (text,) = registry_files(Settings(registry_mirrors={"quay.io": ["https://q.example"]})).values()
    assert text.startswith("# Written by pyinfra-kubeadm")
