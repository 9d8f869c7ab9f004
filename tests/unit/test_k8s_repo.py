"""The stand-in Kubernetes apt repository of the lab (tests/lab/k8s_repo.py), a test double:
built, signed, served and accepted by apt on this machine, without the lab."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from deploys import versions
from tests.lab import k8s_repo
from tests.lab.host_packages import require_commands

TOOLS = ("gpg", "gpgconf", "gpgv", "dpkg-deb", "apt-ftparchive", "apt-get")


@pytest.fixture(autouse=True, scope="module")
def tools():
    require_commands(*TOOLS)


VERSION, REVISION, IMAGES = "1.35.9", "1.1", "registry.example.org/k8s"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("stand-in")
    with k8s_repo.stand_in_repository(workdir, [VERSION], REVISION) as built:
        yield built


def run(*argv, cwd=None) -> subprocess.CompletedProcess:
    """Run a command; the stand-in programs log their calls to a file of the test."""
    log = Path(tempfile.gettempdir()) / f"stand-in-calls-{os.getpid()}.log"
    env = {**os.environ, "STAND_IN_CALLS_LOG": str(log)}
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def keyring(repo, tmp_path_factory) -> Path:
    """Release.key dearmored, as apt.key installs it."""
    path = tmp_path_factory.mktemp("keyring") / "kubernetes-apt-keyring.gpg"
    with open(repo.release_key, "rb") as armored, open(path, "wb") as binary:
        subprocess.run(["gpg", "--dearmor"], stdin=armored, stdout=binary, check=True)
    return path


def test_repository_sits_where_the_deploy_looks_for_the_minor(repo):
    url = versions.kubernetes_apt_url("http://stand-in.invalid/base", VERSION)
    assert f"{repo.root.as_posix()}/{url.removeprefix('http://stand-in.invalid/base/')}" == (
        f"{repo.deb_dir.as_posix()}/"
    )


def test_release_key_is_ascii_armored(repo):
    assert repo.release_key.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_inrelease_verifies_against_the_release_key(repo, keyring):
    result = run("gpgv", "--keyring", keyring, repo.deb_dir / "InRelease")
    assert result.returncode == 0, result.stderr


def test_detached_signature_verifies_against_the_release_key(repo, keyring):
    result = run("gpgv", "--keyring", keyring, "Release.gpg", "Release", cwd=repo.deb_dir)
    assert result.returncode == 0, result.stderr


def test_tampered_release_fails_verification(repo, keyring, tmp_path):
    tampered = tmp_path / "Release"
    tampered.write_text((repo.deb_dir / "Release").read_text() + "Suite: tampered\n")
    result = run("gpgv", "--keyring", keyring, repo.deb_dir / "Release.gpg", tampered)
    assert result.returncode != 0


@pytest.mark.parametrize("name", k8s_repo.PACKAGES)
def test_packages_index_lists_each_package_at_the_pinned_version(repo, name):
    stanzas = (repo.deb_dir / "Packages").read_text().split("\n\n")
    assert any(
        f"Package: {name}\n" in s and f"\nVersion: {VERSION}-{REVISION}\n" in s for s in stanzas
    )


@pytest.fixture(scope="module")
def unpacked(repo, tmp_path_factory) -> Path:
    """Every stand-in package extracted into one tree."""
    tree = tmp_path_factory.mktemp("unpacked")
    for deb in repo.deb_dir.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
    return tree


@pytest.mark.parametrize("name", k8s_repo.PACKAGES)
@pytest.mark.parametrize("flag", ["version", "--version"])
def test_each_program_prints_the_pinned_version(unpacked, name, flag):
    result = run(unpacked / "usr/bin" / name, flag)
    printed = (
        f"Kubernetes v{VERSION}" if (name, flag) == ("kubelet", "--version") else f"v{VERSION}"
    )
    assert (result.returncode, result.stdout) == (0, f"{printed}\n")


@pytest.mark.parametrize("images", ["registry.k8s.io", IMAGES])
def test_kubeadm_lists_the_images_of_the_release_and_repository_asked_for(unpacked, images):
    flags = [] if images == "registry.k8s.io" else ["--image-repository", images]
    result = run(unpacked / "usr/bin/kubeadm", "config", "images", "list", *flags)
    assert result.returncode == 0
    assert result.stdout.splitlines() == k8s_repo.images(VERSION, images)


def test_kubeadm_validates_a_configuration_file_that_exists(unpacked, tmp_path):
    (tmp_path / "c.yaml").write_text("kind: InitConfiguration\n")
    kubeadm = unpacked / "usr/bin/kubeadm"
    assert run(kubeadm, "config", "validate", "--config", tmp_path / "c.yaml").returncode == 0
    missing = run(kubeadm, "config", "validate", "--config", tmp_path / "none.yaml")
    assert missing.returncode == 1 and "no such file" in missing.stderr


@pytest.mark.parametrize("args", [["init"], ["join", "--config", "x"], []])
def test_without_a_control_plane_the_stand_in_says_so(unpacked, args):
    result = run(unpacked / "usr/bin/kubeadm", *args)
    assert result.returncode != 0 and "stand-in control plane" in result.stderr


def test_kubelet_package_ships_an_enabled_service_running_the_placeholder(unpacked, repo):
    unit = (unpacked / "usr/lib/systemd/system/kubelet.service").read_text()
    assert "ExecStart=/usr/bin/kubelet " in unit and "test double" in unit
    control = subprocess.run(
        ["dpkg-deb", "-I", next(repo.deb_dir.glob("kubelet_*.deb")), "postinst"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "systemctl enable kubelet.service" in control
    assert (unpacked / "etc/kubernetes/manifests").is_dir()  # as the real package ships it


def test_served_over_http_with_the_requests_recorded(repo):
    with k8s_repo.serve(repo.root, "127.0.0.1") as (base_url, requests):
        url = versions.kubernetes_apt_url(base_url, VERSION) + "Release.key"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == repo.release_key.read_bytes()
    assert requests == [f"/v1.{versions.kubernetes_minor(VERSION)}/deb/Release.key"]


def test_apt_accepts_the_signed_repository(repo, keyring, tmp_path):
    """apt of this machine, in directories of its own, updates from the served stand-in
    with the deploy's source line and keyring, and offers the pinned version."""
    lists, cache = tmp_path / "lists", tmp_path / "cache"
    (lists / "partial").mkdir(parents=True)
    (cache / "archives" / "partial").mkdir(parents=True)
    with k8s_repo.serve(repo.root, "127.0.0.1") as (base_url, _):
        url = versions.kubernetes_apt_url(base_url, VERSION)
        sources = tmp_path / "kubernetes.list"
        sources.write_text(f"deb [signed-by={keyring}] {url} /\n")
        options = [
            f"-oDir::Etc::SourceList={sources}",
            "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={lists}",
            f"-oDir::Cache={cache}",
            "-oDebug::NoLocking=true",
            "-oAcquire::http::Proxy::127.0.0.1=DIRECT",
            "-oAPT::Get::List-Cleanup=false",
        ]
        update = run("apt-get", *options, "update", "--error-on=any")
        policy = run("apt-cache", *options, "policy", "kubeadm")
    assert update.returncode == 0, update.stdout + update.stderr
    assert f"Candidate: {VERSION}-{REVISION}" in policy.stdout


def test_several_releases_each_in_the_repository_of_its_minor(tmp_path):
    """What lets upgrades be rehearsed: one repository per minor, one signing key."""
    releases = ["1.35.9", "1.34.3"]
    built = k8s_repo.build_repository(tmp_path, releases, REVISION)
    assert list(built.deb_dirs) == releases
    assert built.version == f"1.35.9-{REVISION}"
    for release, deb_dir in built.deb_dirs.items():
        assert deb_dir.as_posix().endswith(versions.kubernetes_apt_url("", release).rstrip("/"))
        assert (deb_dir / f"kubeadm_{release}-{REVISION}_all.deb").is_file()
        assert (deb_dir / "Release.key").read_text() == built.release_key.read_text()
        unpacked = tmp_path / f"unpacked-{release}"
        subprocess.run(["dpkg-deb", "-x", deb_dir / f"kubeadm_{release}-{REVISION}_all.deb",
                        unpacked], check=True)  # fmt: skip
        assert run(unpacked / "usr/bin/kubeadm", "version").stdout == f"v{release}\n"


def test_each_call_is_logged_with_a_utc_microsecond_timestamp(unpacked, tmp_path):
    log = tmp_path / "calls.log"
    env = {**os.environ, "STAND_IN_CALLS_LOG": str(log)}
    argv = [unpacked / "usr/bin/kubeadm", "config", "images", "list"]
    subprocess.run([str(a) for a in argv], env=env, capture_output=True, check=True)
    (line,) = log.read_text().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z kubeadm config images list", line
    ), line


TOKEN = "abcdef.0123456789abcdef"
KEY = "0f" * 32
HASH = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("argv", "logged"),
    [
        (["join", "--token", TOKEN], ["join", "--token", "<redacted>"]),
        ([f"--token={TOKEN}"], ["--token=<redacted>"]),
        (["--certificate-key", KEY], ["--certificate-key", "<redacted>"]),
        (["x", f"a{TOKEN}b", KEY], ["x", f"a{TOKEN}b", "<redacted>"]),  # a token only as a word
        (
            [f"kubeadm join 1.2.3.4:6443 --token {TOKEN}"],
            ["kubeadm join 1.2.3.4:6443 --token <redacted>"],
        ),
        (["http://k/x?token=s3cr3t&a=b"], ["http://k/x?token=<redacted>&a=b"]),
        (["--discovery-token-ca-cert-hash", HASH], ["--discovery-token-ca-cert-hash", HASH]),
    ],
)
def test_secrets_are_redacted_from_the_calls_log(argv, logged):
    from tests.lab import stand_in_tools

    assert stand_in_tools.redact(argv) == logged


def test_kubeadm_depends_on_the_stand_in_cri_tools(repo):
    stanzas = (repo.deb_dir / "Packages").read_text().split("\n\n")
    (kubeadm,) = [s for s in stanzas if s.startswith("Package: kubeadm\n")]
    assert "\nDepends: python3, cri-tools\n" in kubeadm
    minor = ".".join(VERSION.split(".")[:2])
    assert any("Package: cri-tools\n" in s and f"Version: {minor}.0-" in s for s in stanzas)


def test_the_stand_in_crictl_saves_an_etcd_snapshot(unpacked, tmp_path):
    crictl = unpacked / "usr/bin/crictl"
    target = tmp_path / "snap.db"
    etcdctl = ["etcdctl", "--endpoints=https://127.0.0.1:2379", "snapshot", "save", target]
    saved = run(crictl, "exec", "stand-in-etcd", *etcdctl)
    assert saved.returncode == 0 and f"Snapshot saved at {target}" in saved.stdout
    assert "stand-in etcd snapshot" in target.read_text()
    assert run(crictl, "exec", "other", *etcdctl).returncode == 1
    assert run(crictl, "images").returncode == 1
