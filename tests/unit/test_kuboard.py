"""Kuboard agent: the manifest URL, the fetch config, and the image rewrite for a mirror."""

import pytest
import yaml

from deploys.addons import kuboard
from deploys.context import NodeContext
from deploys.settings import ClusterError, Settings, parse_cluster

MIRROR = "swr.cn-east-2.myhuaweicloud.com/kuboard"
TOKEN = "BpLnfgDsc2WD8F2qNfHK5a84jjJkwzDk"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def settings(**values) -> Settings:
    base = {
        "kuboard_server": "http://10.0.0.5:80",
        "kuboard_cluster_name": "site-a",
        "kuboard_agent_token": TOKEN,
    }
    return Settings(**{**base, **values})


def deployment(*images: str, init: str = "") -> str:
    containers = "\n".join(
        f"        - name: c{i}\n          image: {img}" for i, img in enumerate(images)
    )
    init_block = (
        f"      initContainers:\n        - name: init\n          image: {init}\n" if init else ""
    )
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kuboard-agent
  namespace: kuboard
spec:
  template:
    spec:
{init_block}      containers:
{containers}
"""


def images_of(manifest: str) -> list[str]:
    return [c["image"] for d in yaml.safe_load_all(manifest) if d for c in kuboard._containers(d)]


# --- the endpoint and the fetch config ---


def test_agent_manifest_url_is_kuboards_install_endpoint():
    assert kuboard.agent_manifest_url(settings()) == (
        "http://10.0.0.5:80/kuboard-api/cluster/site-a/kind/KubernetesCluster/site-a"
        f"/resource/installAgentToKubernetes?token={TOKEN}"
    )


@pytest.mark.parametrize(
    "server, base",
    [
        ("http://10.0.0.5:80/", "http://10.0.0.5:80"),
        ("https://ops.example/kuboard", "https://ops.example/kuboard"),
        ("http://[fd00::5]:8080", "http://[fd00::5]:8080"),
    ],
)
def test_url_below_the_servers_address(server, base):
    url = kuboard.agent_manifest_url(settings(kuboard_server=server))
    assert url.startswith(f"{base}/kuboard-api/cluster/site-a/")


@pytest.mark.parametrize(
    "name, token, encoded_name, encoded_token",
    [
        ("a b", "x&y=z", "a%20b", "x%26y%3Dz"),
        ("../admin", "<kuboard_agent_token>", "..%2Fadmin", "%3Ckuboard_agent_token%3E"),
        ('q"uote', "new\nline", "q%22uote", "new%0Aline"),
    ],
)
def test_name_and_token_are_url_encoded(name, token, encoded_name, encoded_token):
    url = kuboard.agent_manifest_url(settings(kuboard_cluster_name=name, kuboard_agent_token=token))
    assert f"/cluster/{encoded_name}/kind/KubernetesCluster/{encoded_name}/" in url
    assert url.endswith(f"?token={encoded_token}")


def test_fetch_config_holds_the_url_and_fails_on_http_errors():
    lines = kuboard.fetch_config(settings()).splitlines()
    assert f'url = "{kuboard.agent_manifest_url(settings())}"' in lines
    assert {"fail", "silent", "show-error"} <= set(lines)
    assert any(line.startswith("max-time = ") for line in lines)


@pytest.mark.parametrize(
    "server", ['http://x"\nurl = "http://evil', "http://x\\y", "http://x\ny", "http://x\ty"]
)
def test_fetch_config_refuses_a_server_that_would_break_out_of_its_string(server):
    with pytest.raises(ValueError, match="is not a plain URL"):
        kuboard.fetch_config(settings(kuboard_server=server))


def test_fetch_command_reads_everything_from_the_config_file():
    command = kuboard.fetch_command().get_raw_value()
    assert command == f"curl --config {kuboard.FETCH_CONFIG}"
    assert TOKEN not in command


@pytest.mark.parametrize(
    "node, server, expected",
    [
        ("cp1", "http://10.0.0.5:80", [kuboard.FETCH_CONFIG]),
        ("w1", "http://10.0.0.5:80", []),
        ("cp1", "", []),
    ],
)
def test_fetch_config_only_on_the_first_control_plane_with_a_server(node, server, expected):
    values = {"kuboard_server": server}
    if server:
        values |= {"kuboard_cluster_name": "site-a", "kuboard_agent_token": TOKEN}
    doc = {
        "hosts": [
            {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
            {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
        ],
        "settings": values,
    }
    cluster = parse_cluster(doc, "site.yaml")
    ctx = NodeContext.from_cluster(cluster, next(n for n in cluster.nodes if n.name == node))
    assert list(kuboard.rendered_files(ctx)) == expected


# --- one image reference moved to the mirror ---


@pytest.mark.parametrize(
    "image, expected",
    [
        ("eipwork/kuboard-agent:v3", f"{MIRROR}/kuboard-agent:v3"),
        ("kuboard-agent:v3", f"{MIRROR}/kuboard-agent:v3"),
        ("kuboard-agent", f"{MIRROR}/kuboard-agent"),
        ("docker.io/eipwork/kuboard-agent:v3", f"{MIRROR}/kuboard-agent:v3"),
        ("docker.io/library/busybox:1.36", f"{MIRROR}/busybox:1.36"),
        (f"{MIRROR}/kuboard-agent:v3", f"{MIRROR}/kuboard-agent:v3"),
        ("registry.local:5000/kuboard/kuboard-agent:v3", f"{MIRROR}/kuboard-agent:v3"),
        ("localhost:5000/kuboard-agent", f"{MIRROR}/kuboard-agent"),
        ("[fd00::1]:5000/a/b/kuboard-agent:v3.5", f"{MIRROR}/kuboard-agent:v3.5"),
        (f"eipwork/kuboard-agent@{DIGEST}", f"{MIRROR}/kuboard-agent@{DIGEST}"),
        (f"r.example:443/eipwork/kuboard-agent:v3@{DIGEST}", f"{MIRROR}/kuboard-agent:v3@{DIGEST}"),
        ("questdb/questdb:6.0.5", f"{MIRROR}/questdb:6.0.5"),
        ("eipwork/etcd-host:3.4.16-1", f"{MIRROR}/etcd-host:3.4.16-1"),
        ("a/b__c/d-e.f_g:T_1.x-y", f"{MIRROR}/d-e.f_g:T_1.x-y"),
    ],
)
def test_mirror_image_keeps_name_tag_and_digest(image, expected):
    assert kuboard.mirror_image(image, MIRROR) == expected


@pytest.mark.parametrize("image", ["eipwork/kuboard-agent:v3", f"x/y@{DIGEST}", "busybox"])
def test_no_mirror_leaves_images_alone(image):
    assert kuboard.mirror_image(image, "") == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "eipwork/kuboard-agent:v3; whoami",
        "eipwork/kuboard-agent:v3\nkind: Secret",
        "eipwork/Kuboard-Agent:v3",
        "eipwork/kuboard-agent:",
        "eipwork/kuboard-agent/",
        "eipwork/kuboard-agent@sha256:short",
        "$(reboot)",
        "'eipwork/kuboard-agent:v3'",
    ],
)
def test_mirror_image_refuses_what_is_not_an_image_reference(image):
    with pytest.raises(ValueError, match="is not an image reference"):
        kuboard.mirror_image(image, MIRROR)


# --- the whole manifest ---


@pytest.mark.parametrize(
    "manifest, expected",
    [
        (deployment("eipwork/kuboard-agent:v3"), [f"{MIRROR}/kuboard-agent:v3"]),
        (deployment("'eipwork/kuboard-agent:v3'"), [f"{MIRROR}/kuboard-agent:v3"]),
        (deployment('"eipwork/kuboard-agent:v3"'), [f"{MIRROR}/kuboard-agent:v3"]),
        (deployment(f"eipwork/kuboard-agent@{DIGEST}"), [f"{MIRROR}/kuboard-agent@{DIGEST}"]),
        (
            deployment("registry.local:5000/k/kuboard-agent:v3", "questdb/questdb:6.0.5"),
            [f"{MIRROR}/kuboard-agent:v3", f"{MIRROR}/questdb:6.0.5"],
        ),
        (
            deployment("eipwork/kuboard-agent:v3", init="busybox:1.36"),
            [f"{MIRROR}/busybox:1.36", f"{MIRROR}/kuboard-agent:v3"],
        ),
        (
            deployment("eipwork/kuboard-agent:v3 # image: evil.example/x:1"),
            [f"{MIRROR}/kuboard-agent:v3"],
        ),
    ],
    ids=["plain", "single-quoted", "double-quoted", "digest", "port-and-two", "init", "comment"],
)
def test_rewrite_moves_every_container_image(manifest, expected):
    assert images_of(kuboard.rewrite_images(manifest, MIRROR)) == expected


def test_image_lines_in_comments_and_text_are_left_alone():
    manifest = """\
# image: evil.example/not-a-container:1
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
  namespace: kuboard
data:
  README: |
    image: eipwork/kuboard-agent:v3
    containers:
      - image: eipwork/kuboard-agent:v3
  KUBOARD_AGENT_IMAGE: eipwork/kuboard-agent:v3
"""
    rewritten = kuboard.rewrite_images(manifest, MIRROR)
    assert yaml.safe_load(rewritten) == yaml.safe_load(manifest)
    assert "evil.example" not in rewritten
    assert MIRROR not in rewritten


def test_env_values_that_name_images_are_not_container_images():
    manifest = deployment("eipwork/kuboard-agent:v3").replace(
        "image: eipwork/kuboard-agent:v3",
        "image: eipwork/kuboard-agent:v3\n          env:\n"
        "            - name: KUBOARD_AGENT_IMAGE\n              value: eipwork/kuboard-agent:v3",
    )
    container = yaml.safe_load(kuboard.rewrite_images(manifest, MIRROR))["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["image"] == f"{MIRROR}/kuboard-agent:v3"
    assert container["env"][0]["value"] == "eipwork/kuboard-agent:v3"


def test_pod_templates_of_every_workload_kind_and_lists():
    manifest = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: sweep, namespace: kuboard}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: s, image: eipwork/sweep:1}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p, namespace: kuboard}
    spec:
      containers: [{name: p, image: "eipwork/pod:2"}]
      ephemeralContainers: [{name: debug, image: busybox}]
"""
    assert images_of(kuboard.rewrite_images(manifest, MIRROR)) == [
        f"{MIRROR}/sweep:1",
        f"{MIRROR}/pod:2",
        f"{MIRROR}/busybox",
    ]


def test_aliased_containers_are_rewritten_everywhere():
    manifest = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, namespace: kuboard}
    spec:
      containers: &agents
        - {name: a, image: eipwork/kuboard-agent:v3}
  - apiVersion: v1
    kind: Pod
    metadata: {name: b, namespace: kuboard}
    spec:
      containers: *agents
"""
    rewritten = kuboard.rewrite_images(manifest, MIRROR)
    assert images_of(rewritten) == [f"{MIRROR}/kuboard-agent:v3"] * 2
    assert "&" not in rewritten and "*" not in rewritten


def test_rewrite_is_idempotent():
    once = kuboard.rewrite_images(deployment("eipwork/kuboard-agent:v3"), MIRROR)
    assert kuboard.rewrite_images(once, MIRROR) == once


def test_no_mirror_keeps_images_and_objects():
    manifest = deployment("eipwork/kuboard-agent:v3", init="busybox:1.36")
    assert yaml.safe_load(kuboard.rewrite_images(manifest, "")) == yaml.safe_load(manifest)


def test_multi_line_values_survive_as_block_text():
    manifest = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: script, namespace: kuboard}
data:
  run.sh: |
    #!/bin/sh
    echo "it's quoted" \\
      && exit 0
"""
    rewritten = kuboard.rewrite_images(manifest, MIRROR)
    assert "run.sh: |" in rewritten
    assert yaml.safe_load(rewritten) == yaml.safe_load(manifest)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("---\n---\n", "is empty"),
        ("<html><body>Kuboard login AGENT-KEY-123</body></html>", "document 1 .* not an object"),
        ("just AGENT-KEY-123 text", "document 1 .* not an object"),
        ("- a\n- AGENT-KEY-123\n", "document 1 .* not an object"),
        ("kind: Pod\nmetadata: {name: AGENT-KEY-123}\n", "document 1 .* not an object"),
        ("apiVersion: v1\nkind: Pod\n---\nAGENT-KEY-123: [\n", "not valid YAML"),
        (
            deployment("eipwork/x:1").replace("image: eipwork/x:1", "image: [AGENT-KEY-123]"),
            "a container's image is not a string",
        ),
        (deployment("eipwork/x:1") + "---\nAGENT-KEY-123\n", "document 2 .* not an object"),
    ],
)
def test_what_is_not_a_manifest_is_refused_without_quoting_it(text, message):
    with pytest.raises(ValueError, match=message) as refused:
        kuboard.rewrite_images(text, MIRROR)
    assert "AGENT-KEY-123" not in str(refused.value)


# --- the Kuboard settings ---

CLUSTER = {"hosts": [{"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]}]}


def refused(**values) -> str:
    base = {
        "kuboard_server": "http://10.0.0.5:80",
        "kuboard_cluster_name": "site-a",
        "kuboard_agent_token": TOKEN,
    }
    with pytest.raises(ClusterError) as error:
        parse_cluster({**CLUSTER, "settings": {**base, **values}}, "site.yaml")
    return str(error.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"kuboard_cluster_name": ""}, "kuboard_cluster_name: '': required with kuboard_server"),
        ({"kuboard_cluster_name": "a/b"}, "kuboard_cluster_name: 'a/b'"),
        ({"kuboard_cluster_name": "a b"}, "kuboard_cluster_name: 'a b'"),
        ({"kuboard_server": "10.0.0.5:80"}, "kuboard_server: '10.0.0.5:80' is not like"),
        ({"kuboard_server": "ftp://10.0.0.5"}, "kuboard_server: 'ftp://10.0.0.5' is not like"),
        ({"kuboard_server": "http://admin:pw@10.0.0.5"}, "kuboard_server: "),
        ({"kuboard_server": "http://10.0.0.5/?token=x"}, "kuboard_server: "),
        ({"kuboard_server": "http://10.0.0.5\n"}, "kuboard_server: "),
        ({"kuboard_server": 'http://10.0.0.5"; whoami'}, "kuboard_server: "),
        ({"kuboard_image_repository": "swr.example/kuboard/"}, "is not a registry prefix"),
        ({"kuboard_image_repository": "swr.example/kuboard; id"}, "is not a registry prefix"),
        ({"ready_timeout": 0}, "ready_timeout: 0 is not a positive number of seconds"),
    ],
)
def test_bad_kuboard_settings_are_refused(values, message):
    assert message in refused(**values)


@pytest.mark.parametrize(
    "token", ["secret token", 'secret"token', "secret\ntoken", "secret&token=1", "sécret"]
)
def test_a_bad_token_is_refused_without_echoing_it(token):
    message = refused(kuboard_agent_token=token)
    assert "kuboard_agent_token: may hold only letters, digits" in message
    assert "secret" not in message.replace("kuboard_agent_token", "")


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"kuboard_server": "https://ops.example/kuboard/"},
        {"kuboard_server": "http://[fd00::5]:8080", "kuboard_cluster_name": "Lab_2.k8s"},
        {"kuboard_image_repository": "registry.local:5000/mirror/kuboard"},
    ],
)
def test_good_kuboard_settings_load(values):
    base = {
        "kuboard_server": "http://10.0.0.5:80",
        "kuboard_cluster_name": "site-a",
        "kuboard_agent_token": TOKEN,
    }
    cluster = parse_cluster({**CLUSTER, "settings": {**base, **values}}, "site.yaml")
    assert cluster.settings_for(cluster.nodes[0]).kuboard_agent_token == TOKEN
