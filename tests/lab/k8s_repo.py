"""A stand-in for the Kubernetes apt repository (pkgs.k8s.io), a test double for the lab.

The lab's nodes cannot reach pkgs.k8s.io, so this builds a repository of the same shape:
``<root>/v1.NN/deb/`` per minor, each with a flat ``./`` suite (``deb [signed-by=...] URL /``),
Packages, Release signed inline (InRelease) and detached (Release.gpg) by one throwaway key,
and that key ASCII-armored as ``Release.key``, where pkgs.k8s.io serves its signing key.
Several releases may be given (several minors let upgrades be rehearsed).

Its packages kubeadm, kubelet and kubectl are stand-ins, not Kubernetes: each installs
/usr/bin/<name>, the Python program tests/lab/stand_in_tools.py, which logs every call to
/var/log/pyinfra-kubeadm-stand-in/calls.log and answers from the lab's stand-in control
plane (tests/lab/stand_in_control_plane.py) at ``control_plane_url``. Without one, only
what needs no cluster works: ``version``, ``kubeadm config images list|pull`` (the images
of the release; etcd and CoreDNS, whose tags this project does not model, left out) and
``kubeadm config validate``. The stand-in kubelet package also ships a kubelet.service
(enabled and started on install, like the real package) that runs the placeholder.

    with stand_in_repository(workdir, ["1.35.9"], "1.1", "http://10.213.47.1:6443") as repo:
        with serve(repo.root, "10.213.47.1") as (base_url, requests):   # kubernetes_apt_repo
            ...
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deploys import versions

PACKAGES = ("kubeadm", "kubelet", "kubectl")
# kubeadm depends on cri-tools (crictl), as the real package does; its stand-in answers what
# the upgrade's etcd snapshot asks (tests/lab/stand_in_tools.py, crictl()).
CRI_TOOLS = "cri-tools"
PROGRAMS = {CRI_TOOLS: "crictl"}
KEY_USER_ID = "Stand-in Kubernetes apt repository (test double) <stand-in@example.invalid>"
CONTROL_PLANE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
TOOLS_SOURCE = Path(__file__).with_name("stand_in_tools.py")
KUBELET_UNIT = """\
[Unit]
Description=kubelet: stand-in Kubernetes node agent (pyinfra-kubeadm lab test double)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml \\
  --kubeconfig=/etc/kubernetes/kubelet.conf
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
KUBELET_POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  systemctl enable kubelet.service >/dev/null 2>&1 || true
  systemctl restart kubelet.service >/dev/null 2>&1 || true
fi
"""
KUBELET_PRERM = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl stop kubelet.service >/dev/null 2>&1 || true; fi
"""
KUBELET_POSTRM = """\
#!/bin/sh
set -e
if [ "$1" = purge ] || [ "$1" = remove ]; then
  systemctl disable kubelet.service >/dev/null 2>&1 || true
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
"""


@dataclass(frozen=True)
class StandInRepository:
    root: Path  # what kubernetes_apt_repo points at (served as its base URL)
    deb_dirs: dict[str, Path]  # release -> <root>/v1.NN/deb/ of its minor
    revision: str

    @property
    def deb_dir(self) -> Path:
        """The repository of the first release given."""
        return next(iter(self.deb_dirs.values()))

    @property
    def version(self) -> str:
        """The package version of the first release given, <release>-<revision>."""
        return f"{next(iter(self.deb_dirs))}-{self.revision}"

    @property
    def release_key(self) -> Path:
        return self.deb_dir / "Release.key"


def images(kubernetes_version: str, image_repository: str) -> list[str]:
    """What the stand-in `kubeadm config images list` prints."""
    base = image_repository.rstrip("/")
    return [f"{base}/{name}:v{kubernetes_version}" for name in CONTROL_PLANE_IMAGES] + [
        versions.sandbox_image(image_repository, kubernetes_version)
    ]


def script(name: str, kubernetes_version: str, control_plane_url: str = "") -> str:
    """/usr/bin/<name> of the stand-in package."""
    values = {
        "@TOOL@": name,
        "@VERSION@": kubernetes_version,
        "@CONTROL_PLANE@": control_plane_url,
        "@PAUSE_TAG@": versions.pause_tag(kubernetes_version),
    }
    text = TOOLS_SOURCE.read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _run(*argv: str | Path, cwd: Path | None = None, **kwargs) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, check=True, capture_output=True, text=True, **kwargs
    )
    return result.stdout


def build_package(
    out_dir: Path, name: str, kubernetes_version: str, version: str, control_plane_url: str = ""
) -> Path:
    """A .deb of the stand-in `name` at `version`, built with dpkg-deb."""
    tree = out_dir / f"{name}-{version}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)
    program = tree / "usr" / "bin" / PROGRAMS.get(name, name)
    program.write_text(script(PROGRAMS.get(name, name), kubernetes_version, control_plane_url))
    program.chmod(0o755)
    if name == "kubelet":
        # Like the real package: the static pod directory (so /etc/kubernetes exists too).
        (tree / "etc" / "kubernetes" / "manifests").mkdir(parents=True)
        units = tree / "usr" / "lib" / "systemd" / "system"
        units.mkdir(parents=True)
        (units / "kubelet.service").write_text(KUBELET_UNIT)
        for hook, text in (("postinst", KUBELET_POSTINST), ("prerm", KUBELET_PRERM),
                           ("postrm", KUBELET_POSTRM)):  # fmt: skip
            (tree / "DEBIAN" / hook).write_text(text)
            (tree / "DEBIAN" / hook).chmod(0o755)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\n"
        f"Version: {version}\n"
        "Architecture: all\n"
        "Maintainer: pyinfra-kubeadm lab <stand-in@example.invalid>\n"
        f"Depends: python3{', ' + CRI_TOOLS if name == 'kubeadm' else ''}\n"
        "Section: admin\n"
        "Priority: optional\n"
        f"Description: stand-in {name} (test double), not Kubernetes\n"
        " Answers from the pyinfra-kubeadm lab's stand-in control plane; lab use only.\n"
    )
    deb = out_dir / f"{name}_{version}_all.deb"
    _run("dpkg-deb", "--root-owner-group", "--build", tree, deb)
    return deb


def _gpg(home: Path, *args: str | Path, cwd: Path | None = None) -> str:
    return _run("gpg", "--batch", "--homedir", home, *args, cwd=cwd)


def _index_and_sign(deb_dir: Path, gnupg: Path) -> None:
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
    sign = ("--digest-algo", "SHA512", "--local-user", KEY_USER_ID)
    _gpg(gnupg, *sign, "--clearsign", "--output", "InRelease", "Release", cwd=deb_dir)
    _gpg(gnupg, *sign, "--armor", "--detach-sign", "--output", "Release.gpg", "Release",
         cwd=deb_dir)  # fmt: skip
    (deb_dir / "Release.key").write_text(_gpg(gnupg, "--armor", "--export", KEY_USER_ID))


def build_repository(
    workdir: Path, kubernetes_versions: Sequence[str], revision: str, control_plane_url: str = ""
) -> StandInRepository:
    """Build the stand-in repository under `workdir` (every release given, one directory per
    minor), signed by a key made for it (in a temporary GNUPGHOME, removed with its agent)."""
    if isinstance(kubernetes_versions, str):
        raise TypeError("kubernetes_versions: a list of releases")
    root = workdir / "repo"
    build_dir = workdir / "build"
    build_dir.mkdir(parents=True)
    deb_dirs: dict[str, Path] = {}
    for release in kubernetes_versions:
        deb_dir = root / versions.kubernetes_apt_url("", release).strip("/")
        deb_dir.mkdir(parents=True, exist_ok=True)
        deb_dirs[release] = deb_dir
        for name in PACKAGES:
            deb = build_package(
                build_dir, name, release, f"{release}-{revision}", control_plane_url
            )
            deb.rename(deb_dir / deb.name)
        minor = ".".join(release.split(".")[:2])
        cri_tools = deb_dir / f"{CRI_TOOLS}_{minor}.0-{revision}_all.deb"
        if not cri_tools.exists():  # one per minor, as pkgs.k8s.io publishes it
            build_package(
                build_dir, CRI_TOOLS, release, f"{minor}.0-{revision}", control_plane_url
            ).rename(cri_tools)
    with tempfile.TemporaryDirectory(prefix="stand-in-gnupg-") as home:
        gnupg = Path(home)
        try:
            _gpg(gnupg, "--passphrase", "", "--quick-gen-key", KEY_USER_ID, "ed25519", "sign",
                 "never")  # fmt: skip
            for deb_dir in sorted(set(deb_dirs.values())):
                _index_and_sign(deb_dir, gnupg)
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    return StandInRepository(root, deb_dirs, revision)


@contextmanager
def stand_in_repository(
    workdir: Path, kubernetes_versions: Sequence[str], revision: str, control_plane_url: str = ""
) -> Iterator[StandInRepository]:
    """build_repository(), as a context (the repository stays in `workdir`)."""
    yield build_repository(workdir, kubernetes_versions, revision, control_plane_url)


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
