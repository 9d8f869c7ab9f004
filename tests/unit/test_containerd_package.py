"""Where containerd comes from (deploys/runtime/package.py)."""

import hashlib

import pytest

from deploys.distro import RELEASES
from deploys.runtime import package
from deploys.settings import Settings

NOBLE = RELEASES["ubuntu-24.04"]
BOOKWORM = RELEASES["debian-12"]
# sha256 of the key file Docker serves at https://download.docker.com/linux/<id>/gpg
DOCKER_KEY_SHA256 = "1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570"


@pytest.mark.parametrize(
    ("settings", "release", "spec"),
    [
        ({}, NOBLE, "containerd"),
        (
            {"containerd_version": "1.6.20~ds1-1+deb12u3"},
            BOOKWORM,
            "containerd=1.6.20~ds1-1+deb12u3",
        ),
        ({"containerd_source": "docker"}, NOBLE, "containerd.io"),
        (
            {"containerd_source": "docker", "containerd_version": "1.7.28-1"},
            NOBLE,
            "containerd.io=1.7.28-1~ubuntu.24.04~noble",
        ),
        (
            {"containerd_source": "docker", "containerd_version": "1.7.28-1"},
            BOOKWORM,
            "containerd.io=1.7.28-1~debian.12~bookworm",
        ),
        (
            {"containerd_source": "docker", "containerd_version": "1.7.28-1~debian.12~bookworm"},
            NOBLE,
            "containerd.io=1.7.28-1~debian.12~bookworm",
        ),
    ],
)
def test_package_spec(settings, release, spec):
    assert package.package_spec(Settings(**settings), release) == spec


@pytest.mark.parametrize(
    ("repo", "release", "line"),
    [
        (
            "https://download.docker.com/linux",
            NOBLE,
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
            "https://download.docker.com/linux/ubuntu noble stable\n",
        ),
        (
            "https://mirrors.tuna.tsinghua.edu.cn/docker-ce/linux/",
            BOOKWORM,
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
            "https://mirrors.tuna.tsinghua.edu.cn/docker-ce/linux/debian bookworm stable\n",
        ),
    ],
)
def test_docker_source_line_trusts_only_dockers_key(repo, release, line):
    files = package.docker_repository_files(Settings(docker_apt_repo=repo), release, "amd64")
    assert files[package.DOCKER_SOURCE] == line


def test_dockers_key_is_the_published_file():
    files = package.docker_repository_files(Settings(), NOBLE, "amd64")
    key = files[package.DOCKER_KEYRING]
    assert hashlib.sha256(key.encode()).hexdigest() == DOCKER_KEY_SHA256
    assert package.DOCKER_KEYRING.startswith("/etc/apt/keyrings/")
