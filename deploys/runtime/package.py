"""Where containerd comes from: the distribution's `containerd` package or `containerd.io`
from Docker's apt repository, pinned to settings.containerd_version when set, and held
(apt-mark hold) so that no upgrade replaces it behind the deploy's back.

Docker's repository is signed with Docker's release key, shipped with the project
(deploys/templates/containerd/docker.asc, fingerprint 9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF
CD88; byte for byte the file Docker serves at <repository>/gpg, sha256 1500c1f5...b3a570)
and referenced by signed-by from /etc/apt/keyrings, never through apt-key. The repository
URL (settings.docker_apt_repo) may point at a mirror: the key stays the same.
"""

from __future__ import annotations

from deploys.distro import Release, apt
from deploys.settings import Settings
from deploys.templating import render

DOCKER_KEYRING = f"{apt.KEYRINGS_DIR}/docker.asc"
DOCKER_SOURCE = f"{apt.SOURCES_DIR}/docker.list"


def package_name(settings: Settings) -> str:
    return "containerd.io" if settings.containerd_source == "docker" else "containerd"


def pinned_version(settings: Settings, release: Release) -> str:
    """The exact apt version to install and hold, "" when not pinned. Docker's package
    versions name the release ("1.7.28-1~ubuntu.24.04~noble"); a version without it
    ("1.7.28-1") is completed for the node's release."""
    version = settings.containerd_version
    if version and settings.containerd_source == "docker" and "~" not in version:
        return f"{version}~{release.id}.{release.version_id}~{release.codename}"
    return version


def package_spec(settings: Settings, release: Release) -> str:
    """The package as apt installs it: "containerd" or "containerd.io=<version>"."""
    return apt.spec(package_name(settings), pinned_version(settings, release))


def docker_repository_files(settings: Settings, release: Release, arch: str) -> dict[str, str]:
    """{remote path: content} of Docker's apt repository for this release: the signing key
    and the source list that trusts only that key."""
    url = f"{settings.docker_apt_repo.rstrip('/')}/{release.id}"
    source = apt.source_line(url, release.codename, DOCKER_KEYRING, ("stable",), arch)
    return {DOCKER_KEYRING: render("containerd/docker.asc"), DOCKER_SOURCE: source}
