"""The real fetch (curl with the deploy's own config file and command) against a stand-in
for the Kuboard server on 127.0.0.1."""

import os
import subprocess

import pytest
import yaml

from deploys.addons import kuboard
from deploys.settings import Settings
from tests.lab.host_packages import require_commands
from tests.stand_ins.kuboard_server import AGENT_KEY, KuboardServerStandIn

TOKEN = "l2cTNnbw9TmtdblOvuonpxARV3cHQbRk"
MIRROR = "registry.local:5000/kuboard"


@pytest.fixture(autouse=True)
def curl():
    require_commands("curl")


@pytest.fixture
def server():
    with KuboardServerStandIn("site-a", TOKEN) as stand_in:
        yield stand_in


def fetch(tmp_path, **values) -> subprocess.CompletedProcess:
    """What the deploy does on the first control plane: write the fetch config root-only
    (here: owner-only), then run the fetch command."""
    config = tmp_path / "kuboard-agent.curlrc"
    config.write_text(kuboard.fetch_config(Settings(**values)))
    os.chmod(config, 0o600)
    command = kuboard.fetch_command(str(config)).get_raw_value()
    assert TOKEN not in command
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)


def agent_settings(server, **values) -> dict:
    return {
        "kuboard_server": server.url,
        "kuboard_cluster_name": "site-a",
        "kuboard_agent_token": TOKEN,
        **values,
    }


def test_fetch_gets_the_agent_manifest_from_the_install_endpoint(server, tmp_path):
    result = fetch(tmp_path, **agent_settings(server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == server.manifest
    assert server.requests == [
        "/kuboard-api/cluster/site-a/kind/KubernetesCluster/site-a"
        f"/resource/installAgentToKubernetes?token={TOKEN}"
    ]


def test_fetched_manifest_is_rewritten_for_the_mirror(server, tmp_path):
    manifest = kuboard.rewrite_images(fetch(tmp_path, **agent_settings(server)).stdout, MIRROR)
    documents = [d for d in yaml.safe_load_all(manifest) if d]
    assert [d["kind"] for d in documents] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRoleBinding",
        "ServiceAccount",
        "ClusterRoleBinding",
        "Deployment",
        "Deployment",
    ]
    images = [
        c["image"]
        for d in documents
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [f"{MIRROR}/kuboard-agent:v3"] * 2
    assert all(d["metadata"].get("namespace", "kuboard") == kuboard.NAMESPACE for d in documents)


def test_server_path_prefix_is_kept(tmp_path):
    with KuboardServerStandIn("site-a", TOKEN) as stand_in:
        result = fetch(tmp_path, **agent_settings(stand_in, kuboard_server=stand_in.url + "/"))
        assert result.returncode == 0, result.stderr
        assert stand_in.requests[0].startswith("/kuboard-api/cluster/site-a/")


@pytest.mark.parametrize(
    "values, exit_code, error",
    [
        ({"kuboard_agent_token": "WrongToken0123"}, 22, "returned error: 401"),
        ({"kuboard_cluster_name": "site-b"}, 22, "returned error: 404"),
    ],
)
def test_refusals_fail_the_fetch_without_echoing_the_url(
    server, tmp_path, values, exit_code, error
):
    result = fetch(tmp_path, **agent_settings(server, **values))
    assert result.returncode == exit_code
    assert error in result.stderr
    assert result.stdout == ""
    for secret in (TOKEN, values.get("kuboard_agent_token", TOKEN), "installAgent"):
        assert secret not in result.stderr


def test_an_unreachable_server_fails_without_echoing_the_token(tmp_path):
    with KuboardServerStandIn("site-a", TOKEN) as stand_in:
        url = stand_in.url
    result = fetch(tmp_path, **agent_settings(stand_in, kuboard_server=url))
    assert result.returncode == 7
    assert TOKEN not in result.stderr


def test_served_credentials_appear_only_in_the_fetched_text(server, tmp_path):
    # The stand-in's manifest carries a credential, as a real agent manifest does: it is
    # part of the output (written root-only by the deploy), never of errors or commands.
    result = fetch(tmp_path, **agent_settings(server))
    assert AGENT_KEY in result.stdout
    assert AGENT_KEY not in result.stderr


@pytest.fixture
def https_server():
    with KuboardServerStandIn("site-a", TOKEN, tls=True) as stand_in:
        yield stand_in


def test_a_self_signed_server_is_refused_by_default(https_server, tmp_path):
    result = fetch(tmp_path, **agent_settings(https_server))
    assert result.returncode == 60, result.stderr
    assert "certificate" in result.stderr
    assert https_server.requests == []  # nothing was sent: the token stayed on the host
    assert TOKEN not in result.stderr


def test_kuboard_tls_verify_false_fetches_from_a_self_signed_server(https_server, tmp_path):
    result = fetch(tmp_path, **agent_settings(https_server, kuboard_tls_verify=False))
    assert result.returncode == 0, result.stderr
    assert result.stdout == https_server.manifest


def test_kuboard_tls_verify_false_does_not_change_a_plain_http_fetch(server, tmp_path):
    assert fetch(tmp_path, **agent_settings(server, kuboard_tls_verify=False)).returncode == 0
