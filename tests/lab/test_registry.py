"""The lab's registry serves an image built here, and each suite's containerd pulls it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shlex
import subprocess
import tarfile

import pytest

from tests.lab import registry
from tests.lab.fixture import LAB_NODES
from tests.lab.host_packages import require_commands

MIRRORED_REGISTRY = "registry.k8s.io"


@pytest.fixture(scope="module")
def pause_image_blobs() -> registry.Image:
    require_commands("gcc")
    return registry.build_pause_image()


def test_pause_image_manifest_names_its_config_and_layer(pause_image_blobs):
    manifest = json.loads(pause_image_blobs.manifest.data)
    assert manifest["mediaType"] == registry.OCI_MANIFEST
    assert manifest["config"] == pause_image_blobs.config.descriptor()
    assert manifest["layers"] == [layer.descriptor() for layer in pause_image_blobs.layers]


def test_pause_image_config_names_the_uncompressed_layer(pause_image_blobs):
    config = json.loads(pause_image_blobs.config.data)
    layer_tar = gzip.decompress(pause_image_blobs.layers[0].data)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/pause"]


def test_pause_binary_sleeps_until_terminated(pause_image_blobs, tmp_path):
    layer_tar = gzip.decompress(pause_image_blobs.layers[0].data)
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        assert tar.getnames() == ["pause"]
        tar.extract("pause", tmp_path, filter="tar")
    process = subprocess.Popen([tmp_path / "pause"])
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.5)
    process.terminate()
    assert process.wait(timeout=5) == 0


@pytest.fixture(scope="module", params=LAB_NODES)
def containerd_node(request, lab) -> str:
    """A lab node with its suite's containerd installed and running."""
    lab.ssh(
        request.param,
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -q -y containerd"
        " && systemctl is-active containerd",
    )
    return request.param


def pulled_digest(lab, node: str, reference: str) -> str:
    """The manifest digest containerd on ``node`` recorded for ``reference``."""
    listing = lab.ssh(node, f"ctr -n k8s.io images ls name=={shlex.quote(reference)}").stdout
    rows = [line.split() for line in listing.splitlines()[1:]]
    assert [row[0] for row in rows] == [reference]
    return rows[0][2]


@pytest.mark.lab
def test_containerd_pulls_from_the_registry_over_plain_http(lab, pause_image, containerd_node):
    reference = shlex.quote(pause_image.reference)
    lab.ssh(containerd_node, f"ctr -n k8s.io images pull --plain-http {reference}")
    assert pulled_digest(lab, containerd_node, pause_image.reference) == pause_image.digest


@pytest.mark.lab
def test_containerd_pulls_through_a_hosts_dir_mirror(lab, pause_image, containerd_node):
    hosts_toml = (
        f'server = "https://{MIRRORED_REGISTRY}"\n\n'
        f'[host."http://{pause_image.registry}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    hosts_dir = "/etc/containerd/certs.d"
    reference = f"{MIRRORED_REGISTRY}/{pause_image.repository}:{pause_image.tag}"
    lab.ssh(
        containerd_node,
        f"mkdir -p {hosts_dir}/{MIRRORED_REGISTRY}"
        f" && printf %s {shlex.quote(hosts_toml)} > {hosts_dir}/{MIRRORED_REGISTRY}/hosts.toml"
        f" && ctr -n k8s.io images pull --hosts-dir {hosts_dir} {reference}",
    )
    assert pulled_digest(lab, containerd_node, reference) == pause_image.digest
