"""Version decisions for containerd (deploys/versions.py): which config.toml format, which
CNI key, and the pause tag kubeadm expects per Kubernetes minor."""

import pytest

from deploys import versions


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (1, 6, 20)),
        ("containerd github.com/containerd/containerd/v2 2.2.1", (2, 2, 1)),
        ("containerd containerd.io 1.7.28 b98a3aace656320842a23f4a392a33f46af97866", (1, 7, 28)),
        ("containerd containerd.io v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376", (2, 1, 4)),
        ("1.7.24-0ubuntu1~20.04.2", (1, 7, 24)),
        ("1.7.28-1~debian.12~bookworm", (1, 7, 28)),
        ("v1.6.0", (1, 6, 0)),
    ],
)
def test_containerd_version_is_read_from_what_containerd_or_apt_says(text, version):
    assert versions.containerd_version(text) == version


@pytest.mark.parametrize(
    "text", ["", "containerd", "containerd github.com/containerd/containerd/v2", "1.7", "; whoami"]
)
def test_text_without_a_version_is_refused(text):
    with pytest.raises(ValueError, match="no containerd version"):
        versions.containerd_version(text)


@pytest.mark.parametrize(
    ("version", "config_version"),
    [((1, 6, 0), 2), ((1, 6, 20), 2), ((1, 7, 24), 2), ((2, 0, 0), 3), ((2, 2, 1), 3)],
)
def test_config_version_follows_the_major_version(version, config_version):
    assert versions.containerd_config_version(version) == config_version


@pytest.mark.parametrize("version", [(1, 4, 13), (1, 5, 9), (0, 9, 0), (3, 0, 0)])
def test_unsupported_containerd_is_refused_with_what_is_needed(version):
    with pytest.raises(ValueError, match=r"1\.6, 1\.7 or 2\.x is needed"):
        versions.containerd_config_version(version)


@pytest.mark.parametrize(
    ("version", "bin_dirs"),
    [
        ((1, 6, 20), False),
        ((1, 7, 24), False),
        ((2, 0, 7), False),
        ((2, 1, 0), True),
        ((2, 2, 1), True),
    ],
)
def test_cni_bin_dirs_from_containerd_2_1(version, bin_dirs):
    assert versions.containerd_cni_bin_dirs(version) is bin_dirs


@pytest.mark.parametrize(
    ("minor", "tag"),
    [
        (27, "3.9"),
        (28, "3.9"),
        (29, "3.9"),
        (30, "3.9"),
        (31, "3.10"),
        (32, "3.10"),
        (33, "3.10"),
        (34, "3.10.1"),
        (35, "3.10.1"),
        (36, "3.10.2"),
    ],
)
def test_pause_tag_is_kubeadms_per_minor(minor, tag):
    assert versions.pause_tag(f"1.{minor}.0") == tag


@pytest.mark.parametrize(
    ("repository", "image"),
    [
        ("registry.k8s.io", "registry.k8s.io/pause:3.10.1"),
        (
            "registry.aliyuncs.com/google_containers/",
            "registry.aliyuncs.com/google_containers/pause:3.10.1",
        ),
        ("10.0.0.5:5000/k8s", "10.0.0.5:5000/k8s/pause:3.10.1"),
    ],
)
def test_sandbox_image_is_the_repository_and_the_tag(repository, image):
    assert versions.sandbox_image(repository, "1.35.9") == image
