"""The offline renderer (`python -m deploys.render`), and what must agree across concerns in
what it renders: the sandbox image with kubeadm's pause tag, the pod network with
flannel's, and no secret unless asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from deploys import render, settings, versions
from deploys.kubernetes import kubeadm_config
from deploys.runtime import toml_text
from deploys.settings import load_cluster, parse_cluster
from tests.deploy import harness

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "inventory" / "cluster.yaml"
MIRRORED = ROOT / "inventory" / "example-mirrored.yaml"
# The secrets example-mirrored.yaml holds.
EXAMPLE_SECRETS = ("change-me", "replace-with-the-token-from-kuboard")


def rendered_tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != render.MARKER
    }


def cluster_documents(files: dict[str, str]) -> dict[str, dict]:
    text = files[kubeadm_config.INIT_CONFIG]
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}


# --- the command -------------------------------------------------------------------------


def test_renders_every_host_of_the_cluster_file(tmp_path):
    out = tmp_path / "rendered"
    assert render.main([str(MIRRORED), str(out)]) == 0
    hosts = {n.name for n in load_cluster(MIRRORED).nodes}
    assert {p.name for p in out.iterdir() if p.is_dir()} == hosts
    tree = rendered_tree(out)
    assert "cp1/etc/kubernetes/kubeadm-init.yaml" in tree
    assert "cp2/etc/kubernetes/kubeadm-join.yaml" in tree
    assert "node1/etc/kubernetes/kubeadm-join.yaml" in tree
    assert "node1/etc/kubernetes/kubeadm-init.yaml" not in tree
    assert "node3/etc/apt/sources.list.d/kubernetes.list" in tree
    assert "cp1/etc/containerd/config.toml" in tree
    assert all(f"{host}/etc/crictl.yaml" in tree for host in hosts)
    assert "cp1/etc/kubernetes/addons/flannel.yaml" in tree


def test_files_are_owner_only(tmp_path):
    render.render(str(DEFAULT), str(tmp_path / "out"))
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert modes == {0o600}


def test_default_cluster_file_when_only_out_dir_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CLUSTER", raising=False)
    assert render.main([str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "k8s-cp1" / "etc/kubernetes/kubeadm-init.yaml").is_file()


def test_refuses_a_bad_cluster_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: []\n")
    assert render.main([str(bad), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("refused: ")
    assert not (tmp_path / "out").exists()


def test_refuses_with_every_problem_one_per_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    doc = {
        "hosts": [
            {"name": "cp1", "address": "10.0.0.11", "roles": "control_plane"},
            {"name": "w1", "address": "10.0.0.21", "roles": "worker", "settings": {"api_port": 1}},
        ],
        "settings": {"pod_subnet": "10.244.0.0/33"},
    }
    bad.write_text(yaml.safe_dump(doc))
    assert render.main([str(bad), str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"refused: {bad}: host 'w1': settings.api_port: a cluster setting")
    assert lines[1].startswith(f"refused: {bad}: settings: pod_subnet: '10.244.0.0/33'")


def test_refuses_an_unknown_os_release(tmp_path, capsys):
    assert render.main([str(DEFAULT), str(tmp_path / "out"), "--os", "centos-9"]) == 2
    assert "centos" in capsys.readouterr().err


def test_never_empties_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(render.Refused, match="not empty"):
        render.render(str(DEFAULT), str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_rendering_again_replaces_the_previous_rendering(tmp_path):
    out = tmp_path / "out"
    render.render(str(MIRRORED), str(out))
    (out / "cp1" / "stale").write_text("from an older cluster file\n")
    render.render(str(DEFAULT), str(out))
    assert not (out / "cp1").exists()
    assert (out / "k8s-cp1").is_dir()


# --- secrets -------------------------------------------------------------------------------


def test_secrets_are_placeholders(tmp_path):
    render.render(str(MIRRORED), str(tmp_path / "out"))
    tree = rendered_tree(tmp_path / "out")
    for secret in EXAMPLE_SECRETS:
        assert not [path for path, text in tree.items() if secret in text]
    curlrc = tree["cp1/etc/kubernetes/addons/kuboard-agent.curlrc"]
    assert "secret" in curlrc


def test_secrets_with_with_secrets(tmp_path):
    render.render(str(MIRRORED), str(tmp_path / "out"), with_secrets=True)
    tree = "\n".join(rendered_tree(tmp_path / "out").values())
    assert "replace-with-the-token-from-kuboard" in tree


def test_join_secrets_are_placeholders_even_with_secrets(tmp_path):
    render.render(str(MIRRORED), str(tmp_path / "out"), with_secrets=True)
    join = yaml.safe_load_all(
        (tmp_path / "out/cp2/etc/kubernetes/kubeadm-join.yaml").read_text()
    ).__next__()
    assert join["discovery"]["bootstrapToken"]["token"].startswith("<bootstrap token")
    assert join["controlPlane"]["certificateKey"].startswith("<certificate key")


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("", ""),
        ("token", "<secret: kuboard_agent_token>"),
        (
            {"harbor": {"username": "u", "password": "p"}},
            {
                "harbor": {
                    "username": "<secret: kuboard_agent_token.harbor.username>",
                    "password": "<secret: kuboard_agent_token.harbor.password>",
                }
            },
        ),
        (["a", ""], ["<secret: kuboard_agent_token[0]>", ""]),
        ({}, {}),
    ],
)
def test_redacted(value, placeholder):
    assert settings.redacted(value, "kuboard_agent_token") == placeholder


@pytest.mark.parametrize(
    ("os_name", "source"),
    [
        ("ubuntu-24.04", "https://download.docker.com/linux/ubuntu noble stable"),
        ("debian-12", "https://download.docker.com/linux/debian bookworm stable"),
    ],
)
def test_host_dependent_files_follow_the_assumed_release(os_name, source):
    cluster = cluster_with(containerd_source="docker", containerd_version="2.1.4-1")
    files = node_files(cluster, "w1", os_name=os_name, arch="arm64")
    assert files["/etc/apt/sources.list.d/docker.list"].endswith(f"] {source}\n")
    assert "arch=arm64" in files["/etc/apt/sources.list.d/docker.list"]
    # The cluster file's containerd pin decides config.toml's format: 2.x reads version 3.
    assert toml_text.loads(files["/etc/containerd/config.toml"])["version"] == 3


def test_distro_containerd_has_no_docker_repository():
    files = node_files(cluster_with(), "w1", containerd_version="1.6.20")
    assert "/etc/apt/sources.list.d/docker.list" not in files
    assert toml_text.loads(files["/etc/containerd/config.toml"])["version"] == 2


# --- agreement across concerns -------------------------------------------------------------


def node_files(cluster, name: str, **kwargs) -> dict[str, str]:
    node = next(n for n in cluster.nodes if n.name == name)
    return render.node_files(cluster, node, **kwargs)


def cluster_with(**settings):
    return parse_cluster({**harness.DEFAULT_CLUSTER, "settings": settings})


@pytest.mark.parametrize("containerd", ["1.6.20", "1.7.24", "2.0.5", "2.1.4"])
@pytest.mark.parametrize("minor", versions.SUPPORTED_MINORS)
@pytest.mark.parametrize("registry", ["registry.k8s.io", "registry.aliyuncs.com/google_containers"])
def test_sandbox_image_is_the_pause_image_kubeadm_expects(containerd, minor, registry):
    cluster = cluster_with(kubernetes_version=f"1.{minor}.1", image_repository=registry)
    files = node_files(cluster, "cp1", containerd_version=containerd)
    toml = toml_text.loads(files["/etc/containerd/config.toml"])
    plugins = toml["plugins"]
    if toml["version"] == 2:
        sandbox = plugins["io.containerd.grpc.v1.cri"]["sandbox_image"]
    else:
        sandbox = plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"]
    kubeadm = cluster_documents(files)["ClusterConfiguration"]["imageRepository"]
    assert sandbox == f"{kubeadm}/pause:{versions.PAUSE_TAGS[minor]}"


@pytest.mark.parametrize("pod_subnet", ["10.244.0.0/16", "10.32.0.0/12", "172.20.0.0/16"])
def test_pod_subnet_is_flannels_network(pod_subnet):
    files = node_files(cluster_with(pod_subnet=pod_subnet), "cp1")
    cluster = cluster_documents(files)["ClusterConfiguration"]
    manifest = yaml.safe_load_all(files["/etc/kubernetes/addons/flannel.yaml"])
    config_map = next(d for d in manifest if d and d["kind"] == "ConfigMap")
    network = json.loads(config_map["data"]["net-conf.json"])["Network"]
    assert cluster["networking"]["podSubnet"] == network == pod_subnet
