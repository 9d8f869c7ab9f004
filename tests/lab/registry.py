"""A local image registry on the lab's bridge, and a tiny image built here to push into it.

Nodes cannot reach any public registry, so containerd tests pull from Debian's
``docker-registry`` (the CNCF distribution registry) serving plain HTTP on the bridge:

    address = start_registry(lab)                      # "10.213.47.1:5000"
    image = build_pause_image()
    digest = push_image(address, "google_containers/pause", "3.10", image)

``Lab.up`` starts it and pushes the pause image the deploy's sandbox image guard pulls
(mirror_pause_images). The registry keeps its storage in the lab's state directory;
``Lab.down`` stops it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deploys.settings import Settings
from deploys.versions import PAUSE_TAGS
from tests.lab import config, host

if TYPE_CHECKING:
    from tests.lab.api import Lab

PAUSE_SOURCE = Path(__file__).with_name("pause.c")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def start_registry(lab: Lab) -> str:
    """Run the registry on the bridge (unless it runs already); its ``address:port``."""
    directory = config.STATE_DIR / "registry"
    directory.mkdir(exist_ok=True)
    config_path = directory / "config.yml"
    config_path.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {json.dumps(str(directory / 'storage'))}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {json.dumps(config.REGISTRY_ENDPOINT)}\n"
    )
    lab.ensure_service(
        "registry",
        ["docker-registry", "serve", str(config_path)],
        marker=str(config_path),
        port=config.REGISTRY_PORT,
    )
    return config.REGISTRY_ENDPOINT


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def manifest(self) -> Blob:
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.config.descriptor(),
            "layers": [layer.descriptor() for layer in self.layers],
        }
        return Blob(OCI_MANIFEST, json.dumps(manifest, sort_keys=True).encode())


def _compile_pause() -> bytes:
    """pause.c compiled statically for this machine's architecture."""
    with tempfile.TemporaryDirectory() as build:
        binary = Path(build) / "pause"
        host.run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(PAUSE_SOURCE)])
        return binary.read_bytes()


def _single_file_tar(name: str, data: bytes, mode: int) -> bytes:
    """An uncompressed tar holding one root-owned file, with fixed timestamps."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_pause_image() -> Image:
    """A one-layer OCI image whose entrypoint ``/pause`` sleeps until it is stopped."""
    layer_tar = _single_file_tar("pause", _compile_pause(), 0o755)
    architecture = host.run(["dpkg", "--print-architecture"]).stdout.strip()
    image_config = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
        },
    }
    return Image(
        config=Blob(OCI_CONFIG, json.dumps(image_config, sort_keys=True).encode()),
        layers=(Blob(OCI_LAYER, gzip.compress(layer_tar, mtime=0)),),
    )


def _request(url: str, method: str, data: bytes | None = None, content_type: str = ""):
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    return urllib.request.urlopen(request, timeout=60)


def _push_blob(base: str, repository: str, blob: Blob) -> None:
    """Upload one blob (monolithic POST then PUT) unless the registry has it already."""
    try:
        _request(f"{base}/v2/{repository}/blobs/{blob.digest}", "HEAD").close()
        return
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    with _request(f"{base}/v2/{repository}/blobs/uploads/", "POST") as response:
        location = urllib.parse.urljoin(base, response.headers["Location"])
    separator = "&" if "?" in location else "?"
    upload = f"{location}{separator}digest={urllib.parse.quote(blob.digest)}"
    _request(upload, "PUT", blob.data, "application/octet-stream").close()


def push_image(registry: str, repository: str, tag: str, image: Image) -> str:
    """Push ``image`` as ``repository:tag`` over the registry's HTTP API; the manifest digest."""
    base = f"http://{registry}"
    for blob in (image.config, *image.layers):
        _push_blob(base, repository, blob)
    manifest = image.manifest
    url = f"{base}/v2/{repository}/manifests/{tag}"
    with _request(url, "PUT", manifest.data, manifest.media_type) as response:
        pushed = response.headers["Docker-Content-Digest"]
    if pushed != manifest.digest:
        raise RuntimeError(f"registry stored {repository}:{tag} as {pushed}, not {manifest.digest}")
    return pushed


def mirror_pause_images(lab: Lab) -> dict[str, list[str]]:
    """Serve the lab's pause image under every tag kubeadm may expect (deploys.versions), as
    the mirror of the default image repository; the cluster file's ``registry_mirrors``.

    With ``image_repository`` "registry.k8s.io" containerd asks the mirror for ``pause:<tag>``;
    with "host/google_containers" for ``google_containers/pause:<tag>``.
    """
    address = start_registry(lab)
    upstream, _, path = Settings().image_repository.partition("/")
    repository = f"{path}/pause" if path else "pause"
    image = build_pause_image()
    for tag in sorted(set(PAUSE_TAGS.values())):
        push_image(address, repository, tag, image)
    return {upstream: [f"http://{address}"]}
