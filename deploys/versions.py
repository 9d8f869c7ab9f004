"""Version decisions: which Kubernetes releases are supported and what follows from a version.

Pure functions on version strings, tested in tests/unit/test_versions.py.
"""

from __future__ import annotations

import re

# Pause (sandbox) image tag kubeadm expects, per Kubernetes minor. Source: kubeadm's
# cmd/kubeadm/app/constants/constants.go, `PauseVersion`, at each release branch.
PAUSE_TAGS = {
    27: "3.9",
    28: "3.9",
    29: "3.9",
    30: "3.9",
    31: "3.10",
    32: "3.10",
    33: "3.10",
    34: "3.10.1",
    35: "3.10.1",
    36: "3.10.1",
}
SUPPORTED_MINORS = tuple(sorted(PAUSE_TAGS))

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)$"
)


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of "1.34.2" or "v1.34.2"; ValueError for anything else."""
    match = _VERSION.match(str(version))
    if not match:
        raise ValueError(f"{version!r} is not a version like '1.34.2' (major.minor.patch)")
    return int(match["major"]), int(match["minor"]), int(match["patch"])


def check_kubernetes_version(version: str) -> tuple[int, int, int]:
    """Parse a Kubernetes version and refuse one this project does not support."""
    major, minor, patch = parse_version(version)
    if major != 1 or minor not in PAUSE_TAGS:
        raise ValueError(
            f"Kubernetes {version} is not supported; supported: "
            f"1.{SUPPORTED_MINORS[0]} to 1.{SUPPORTED_MINORS[-1]}"
        )
    return major, minor, patch


def kubernetes_minor(version: str) -> int:
    return check_kubernetes_version(version)[1]


def pause_tag(kubernetes_version: str) -> str:
    """The pause image tag kubeadm of this Kubernetes version expects."""
    return PAUSE_TAGS[kubernetes_minor(kubernetes_version)]


def sandbox_image(image_repository: str, kubernetes_version: str) -> str:
    """The sandbox image kubeadm expects: <imageRepository>/pause:<tag>."""
    return f"{image_repository.rstrip('/')}/pause:{pause_tag(kubernetes_version)}"


def kubeadm_api_version(kubernetes_version: str) -> str:
    """The kubeadm configuration API this release reads natively: kubeadm.k8s.io/v1beta4
    from 1.31 (where it was introduced and became the default), v1beta3 before."""
    minor = kubernetes_minor(kubernetes_version)
    return "kubeadm.k8s.io/v1beta4" if minor >= 31 else "kubeadm.k8s.io/v1beta3"


def kubernetes_apt_url(base: str, kubernetes_version: str) -> str:
    """The per-minor Kubernetes apt repository, <base>/v1.NN/deb/ (the pkgs.k8s.io layout,
    which its mirrors keep): each minor has its own repository and signing-key URL."""
    return f"{base.rstrip('/')}/v1.{kubernetes_minor(kubernetes_version)}/deb/"


def kubeadm_validates_config(kubernetes_version: str) -> bool:
    """Whether kubeadm has `kubeadm config validate` (strict: unknown fields are errors),
    added in 1.28 (kubernetes/kubernetes#118013)."""
    return kubernetes_minor(kubernetes_version) >= 28
