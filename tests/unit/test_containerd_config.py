"""config.toml (deploys/runtime/config.py): one model, written in the format of the
installed containerd, with the keys containerd documents for that format."""

import subprocess

import pytest

from deploys.runtime import config
from deploys.runtime.toml_text import loads
from deploys.settings import Settings
from tests.lab.host_packages import require_commands

SETTINGS = Settings(kubernetes_version="1.35.9")
V2_CRI = "io.containerd.grpc.v1.cri"
V3_IMAGES = "io.containerd.cri.v1.images"
V3_RUNTIME = "io.containerd.cri.v1.runtime"
RUNC = {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}


@pytest.mark.parametrize("version", ["1.6.20", "1.7.24", "containerd containerd.io 1.7.28 abc"])
def test_containerd_1_gets_config_version_2_with_one_cri_plugin(version):
    model = config.config(SETTINGS, version)
    assert model["version"] == 2
    assert model["disabled_plugins"] == []
    cri = model["plugins"][V2_CRI]
    assert set(model["plugins"]) == {V2_CRI}
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    assert cri["containerd"] == {"default_runtime_name": "runc", "runtimes": {"runc": RUNC}}
    assert cri["registry"] == {"config_path": "/etc/containerd/certs.d"}
    assert cri["cni"] == {"conf_dir": "/etc/cni/net.d", "bin_dir": "/opt/cni/bin"}


@pytest.mark.parametrize(
    ("version", "cni_bin"),
    [
        ("2.0.7", {"bin_dir": "/opt/cni/bin"}),
        ("2.1.9", {"bin_dirs": ["/opt/cni/bin"]}),
        ("containerd github.com/containerd/containerd/v2 2.2.1", {"bin_dirs": ["/opt/cni/bin"]}),
    ],
)
def test_containerd_2_gets_config_version_3_with_the_moved_plugin_ids(version, cni_bin):
    model = config.config(SETTINGS, version)
    assert model["version"] == 3
    assert set(model["plugins"]) == {V3_IMAGES, V3_RUNTIME}
    images, runtime = model["plugins"][V3_IMAGES], model["plugins"][V3_RUNTIME]
    assert images["pinned_images"] == {"sandbox": "registry.k8s.io/pause:3.10.1"}
    assert images["registry"] == {"config_path": "/etc/containerd/certs.d"}
    assert runtime["containerd"] == {"default_runtime_name": "runc", "runtimes": {"runc": RUNC}}
    assert runtime["cni"] == {"conf_dir": "/etc/cni/net.d", **cni_bin}


@pytest.mark.parametrize("version", ["1.4.13~ds1", "1.5.9", "3.0.0", "not a version"])
def test_containerd_without_a_known_format_is_refused(version):
    with pytest.raises(ValueError):
        config.config(SETTINGS, version)


@pytest.mark.parametrize("version", ["1.6.20", "1.7.24", "2.0.0", "2.2.1"])
def test_the_file_is_the_model(version):
    text = config.config_toml(SETTINGS, version)
    assert text.startswith("# containerd configuration, written whole by pyinfra-kubeadm")
    assert loads(text) == config.config(SETTINGS, version)


def test_sandbox_image_follows_image_repository_and_kubernetes_minor():
    settings = Settings(
        kubernetes_version="1.36.1", image_repository="registry.aliyuncs.com/google_containers"
    )
    assert config.sandbox_image(settings) == "registry.aliyuncs.com/google_containers/pause:3.10.2"
    text = config.config_toml(settings, "2.1.9")
    assert 'sandbox = "registry.aliyuncs.com/google_containers/pause:3.10.2"' in text


@pytest.mark.parametrize("version", [2, 3])
def test_every_verified_key_is_in_the_model(version):
    model = config.config(SETTINGS, "1.7.0" if version == 2 else "2.1.0")
    for path in config.VERIFIED_KEYS[version]:
        value = model
        for part in path:
            value = value[part]
        assert value not in (None, "", {})


def test_installed_containerd_reads_the_file(tmp_path):
    """The host's containerd (Debian's, installed from tests/lab/host_packages.py) must load
    the file written for its own version without a daemon: `containerd config dump`.
    Every other version is proven on real containerd in the lab's nodes."""
    require_commands("containerd")
    from deploys.runtime import verify

    version = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout
    path = tmp_path / "config.toml"
    path.write_text(config.config_toml(SETTINGS, version))
    dump = subprocess.run(
        ["containerd", "--config", str(path), "config", "dump"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert verify.config_problems(loads(dump), config.config(SETTINGS, version)) == []
