"""A stand-in for the Kubernetes apt repository (pkgs.k8s.io), a test double for the lab.

The lab's nodes cannot reach pkgs.k8s.io, so this builds a repository of the same shape:
``<root>/v1.NN/deb/`` with a flat ``./`` suite (``deb [signed-by=...] URL /``), Packages,
Release signed inline (InRelease) and detached (Release.gpg) by a throwaway key, and that
key ASCII-armored as ``Release.key``, where pkgs.k8s.io serves its signing key.

Its packages kubeadm, kubelet and kubectl are stand-ins, not Kubernetes: each installs
/usr/bin/<name>, a shell script that prints the pinned version for ``version``/``--version``
and exits 0. The stand-in kubeadm also answers ``config images list`` with the control-plane
images and the sandbox image of the pinned release (etcd and CoreDNS, whose tags this
project does not model, are left out) and ``config validate`` with success.

    with stand_in_repository(workdir, "1.35.9", "1.1", "registry.k8s.io") as repo:
        with serve(repo.root, "10.213.47.1") as base_url:   # kubernetes_apt_repo
            ...
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deploys import versions

PACKAGES = ("kubeadm", "kubelet", "kubectl")
KEY_USER_ID = "Stand-in Kubernetes apt repository (test double) <stand-in@example.invalid>"
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")


@dataclass(frozen=True)
class StandInRepository:
    root: Path  # what kubernetes_apt_repo points at (served as its base URL)
    deb_dir: Path  # <root>/v1.NN/deb/, the repository of the pinned minor
    version: str  # the package version, <kubernetes_version>-<revision>

    @property
    def release_key(self) -> Path:
        return self.deb_dir / "Release.key"


def images(kubernetes_version: str, image_repository: str) -> list[str]:
    """What the stand-in `kubeadm config images list` prints."""
    base = image_repository.rstrip("/")
    return [f"{base}/{name}:v{kubernetes_version}" for name in CONTROL_PLANE_IMAGES] + [
        versions.sandbox_image(image_repository, kubernetes_version)
    ]


def script(name: str, kubernetes_version: str, image_repository: str) -> str:
    """/usr/bin/<name> of the stand-in package: its version and, for kubeadm, the two
    `kubeadm config` subcommands the deploy runs before init."""
    kubeadm = ""
    if name == "kubeadm":
        listing = "\n".join(images(kubernetes_version, image_repository))
        kubeadm = (
            f'if [ "$1 $2 $3" = "config images list" ]; then\n'
            f"  cat <<'EOF'\n{listing}\nEOF\n  exit 0\nfi\n"
            'if [ "$1 $2" = "config validate" ]; then exit 0; fi\n'
        )
    return (
        "#!/bin/sh\n"
        f"# Stand-in {name} (test double) of the pyinfra-kubeadm lab; not Kubernetes.\n"
        f"{kubeadm}"
        'case "$1" in\n'
        f"  version|--version) echo 'v{kubernetes_version}'; exit 0 ;;\n"
        "esac\n"
        f"echo 'stand-in {name}: only version is implemented' >&2\n"
        "exit 1\n"
    )


def _run(*argv: str | Path, cwd: Path | None = None, **kwargs) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, check=True, capture_output=True, text=True, **kwargs
    )
    return result.stdout


def build_package(
    out_dir: Path, name: str, kubernetes_version: str, version: str, images_repo: str
) -> Path:
    """A .deb of the stand-in `name` at `version`, built with dpkg-deb."""
    tree = out_dir / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)
    program = tree / "usr" / "bin" / name
    program.write_text(script(name, kubernetes_version, images_repo))
    program.chmod(0o755)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\n"
        f"Version: {version}\n"
        "Architecture: all\n"
        "Maintainer: pyinfra-kubeadm lab <stand-in@example.invalid>\n"
        "Section: admin\n"
        "Priority: optional\n"
        f"Description: stand-in {name} (test double), not Kubernetes\n"
        " Prints its version; used by the pyinfra-kubeadm lab only.\n"
    )
    deb = out_dir / f"{name}_{version}_all.deb"
    _run("dpkg-deb", "--root-owner-group", "--build", tree, deb)
    return deb


def _gpg(home: Path, *args: str | Path, cwd: Path | None = None) -> str:
    return _run("gpg", "--batch", "--homedir", home, *args, cwd=cwd)


@contextmanager
def stand_in_repository(
    workdir: Path, kubernetes_version: str, revision: str, image_repository: str
) -> Iterator[StandInRepository]:
    """Build the stand-in repository under `workdir`, signed by a key made for it (in a
    temporary GNUPGHOME, removed with its agent on exit)."""
    root = workdir / "repo"
    deb_dir = root / versions.kubernetes_apt_url("", kubernetes_version).strip("/")
    deb_dir.mkdir(parents=True)
    version = f"{kubernetes_version}-{revision}"
    build_dir = workdir / "build"
    build_dir.mkdir()
    for name in PACKAGES:
        deb = build_package(build_dir, name, kubernetes_version, version, image_repository)
        deb.rename(deb_dir / deb.name)
    packages = _run("apt-ftparchive", "packages", ".", cwd=deb_dir)
    (deb_dir / "Packages").write_text(packages)
    _run("gzip", "-9kn", "Packages", cwd=deb_dir)
    release = _run(
        "apt-ftparchive",
        "-o", "APT::FTPArchive::Release::Origin=stand-in",
        "-o", "APT::FTPArchive::Release::Label=stand-in Kubernetes repository (test double)",
        "release", ".",
        cwd=deb_dir,
    )  # fmt: skip
    (deb_dir / "Release").write_text(release)
    with tempfile.TemporaryDirectory(prefix="stand-in-gnupg-") as home:
        gnupg = Path(home)
        try:
            _gpg(
                gnupg,
                "--passphrase",
                "",
                "--quick-gen-key",
                KEY_USER_ID,
                "ed25519",
                "sign",
                "never",
            )
            sign = ("--digest-algo", "SHA512", "--local-user", KEY_USER_ID)
            _gpg(gnupg, *sign, "--clearsign", "--output", "InRelease", "Release", cwd=deb_dir)
            _gpg(gnupg, *sign, "--armor", "--detach-sign", "--output", "Release.gpg", "Release",
                 cwd=deb_dir)  # fmt: skip
            (deb_dir / "Release.key").write_text(_gpg(gnupg, "--armor", "--export", KEY_USER_ID))
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    yield StandInRepository(root, deb_dir, version)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base signature
        self.server.requests.append(self.path)


@contextmanager
def serve(root: Path, address: str) -> Iterator[tuple[str, list[str]]]:
    """Serve `root` over HTTP on `address` (a free port) from a thread: (base URL, the
    paths requested so far). Stopped on exit."""
    server = ThreadingHTTPServer(
        (address, 0), functools.partial(_QuietHandler, directory=str(root))
    )
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
