"""Version decisions: which Kubernetes releases are supported and what follows from a version.

Pure functions on version strings, tested in tests/unit/test_kubeadm_decisions.py (Kubernetes)
and tests/unit/test_containerd_versions.py (containerd).
"""

from __future__ import annotations

import re

# Pause (sandbox) image tag kubeadm expects, per Kubernetes minor. Source: kubeadm's
# cmd/kubeadm/app/constants/constants.go, `PauseVersion`, at each release branch: 3.9 up to
# release-1.30, 3.10 from release-1.31 (kubernetes/kubernetes#125112), 3.10.1 from
# release-1.34 (kubernetes/kubernetes#130713), 3.10.2 in release-1.36 (the bump of
# kubernetes/kubernetes#138195; kubeclipper/kubeclipper#947 records 1.36 using it).
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
    36: "3.10.2",
    # 1.37: as 1.36 (downstream distributions pin 3.10.2 for it; not read from kubeadm
    # itself). bootstrap checks `kubeadm config images list` against containerd before
    # init anyway, so a wrong entry here stops the run instead of hanging it.
    37: "3.10.2",
}
SUPPORTED_MINORS = tuple(sorted(PAUSE_TAGS))

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)$"
)


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of "1.34.2" or "v1.34.2"; ValueError for anything else."""
    match = _VERSION.fullmatch(str(version))
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


# containerd releases the deploy configures. Older ones lack the CRI v1 API the kubelet of
# every supported Kubernetes release speaks (Debian 11's containerd package is 1.4).
CONTAINERD_MINIMUM = (1, 6)
# The first version number in `containerd --version` output or in a package version:
# "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3",
# "containerd containerd.io v2.1.4 75cb2b7...", "1.7.28-1~ubuntu.22.04~jammy".
_CONTAINERD_VERSION = re.compile(r"(?:^|\s)v?([0-9]+)\.([0-9]+)\.([0-9]+)")


def containerd_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a containerd version as containerd or a package states it."""
    match = _CONTAINERD_VERSION.search(str(text))
    if not match:
        raise ValueError(f"no containerd version in {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


# Kubernetes from this minor needs containerd 2.x: 1.35 is the last release that supports
# containerd 1.x (its kubelet warns about 1.x; kubernetes.io blog "Kubernetes v1.35: ..."
# and the containerd 1.x end-of-support notice in the v1.35 release notes).
CONTAINERD_2_FROM_MINOR = 36


def containerd_major_needed(kubernetes_version: str) -> int:
    """The containerd major version the kubelet of this Kubernetes release runs with."""
    return 2 if kubernetes_minor(kubernetes_version) >= CONTAINERD_2_FROM_MINOR else 1


def containerd_config_version(version: tuple[int, int, int]) -> int:
    """The config.toml format containerd of this version reads: version 2 for 1.6 and 1.7,
    version 3 (introduced in 2.0, plugin ids moved) for 2.x. Source: containerd's
    docs/cri/config.md, "Config versions"."""
    if version[:2] < CONTAINERD_MINIMUM or version[0] > 2:
        raise ValueError(
            "containerd {}.{}.{} is not supported: 1.6, 1.7 or 2.x is needed".format(*version)
        )
    return 2 if version[0] == 1 else 3


def containerd_cni_bin_dirs(version: tuple[int, int, int]) -> bool:
    """Whether the CRI CNI directories are a list, `bin_dirs`: containerd 2.1 added it and
    deprecated the single `bin_dir` (containerd/containerd#11311)."""
    return version >= (2, 1, 0)


def kubeadm_validates_config(kubernetes_version: str) -> bool:
    """Whether kubeadm has `kubeadm config validate` (strict: unknown fields are errors),
    added in 1.28 (kubernetes/kubernetes#118013)."""
    return kubernetes_minor(kubernetes_version) >= 28


# kube-proxy's nftables mode is GA from 1.33 (KEP-3866: alpha 1.29, beta 1.31, stable 1.33).
NFTABLES_PROXY_MINOR = 33
# kube-proxy's ipvs mode is deprecated from 1.35 (KEP-5495: kube-proxy warns from 1.35; the
# KubeProxyIPVS feature gate, on by default, comes in 1.37 and is planned off in 1.40).
IPVS_DEPRECATED_MINOR = 35


def kube_proxy_mode_refusal(mode: str, kubernetes_version: str) -> str | None:
    """Why kube-proxy cannot run in `mode` on this Kubernetes release; None if it can."""
    minor = kubernetes_minor(kubernetes_version)
    if mode == "nftables" and minor < NFTABLES_PROXY_MINOR:
        return (
            f"'nftables' needs Kubernetes 1.{NFTABLES_PROXY_MINOR} or later, where kube-proxy's "
            f"nftables mode is GA (kubernetes_version is {kubernetes_version}): set "
            f"kubernetes_version to 1.{NFTABLES_PROXY_MINOR} or later, or kube_proxy_mode to "
            "'iptables'"
        )
    return None


def kube_proxy_mode_warning(mode: str, kubernetes_version: str) -> str | None:
    """What an operator should know about running kube-proxy in `mode` on this release."""
    if mode == "ipvs" and kubernetes_minor(kubernetes_version) >= IPVS_DEPRECATED_MINOR:
        return (
            f"'ipvs' is deprecated from Kubernetes 1.{IPVS_DEPRECATED_MINOR} (KEP-5495; it is "
            "planned to be off by default in 1.40 and then removed): consider 'nftables'"
        )
    return None
