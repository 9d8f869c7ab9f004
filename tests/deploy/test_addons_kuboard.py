"""Kuboard agent deploy against recorded hosts, with the manifest served by a stand-in for
the Kuboard server: first run, converged run, changed manifest, failures, and the token
never printed."""

import hashlib
import os
import subprocess

import pytest
import yaml

from deploys import addons
from deploys.addons import flannel, kuboard
from deploys.addons.kubectl import ADDONS_DIR
from deploys.context import NodeContext
from deploys.settings import parse_cluster
from tests.deploy import harness
from tests.lab.host_packages import require_commands
from tests.stand_ins.kuboard_server import AGENT_KEY, AGENT_MANIFEST, KuboardServerStandIn

TOKEN = "zyrsQqY6Krsy3gvWUNHK2kvKWHmJZneL"
MIRROR = "swr.cn-east-2.myhuaweicloud.com/kuboard"
SERVED = AGENT_MANIFEST.replace("{name}", "site-a")
FETCH = r"^curl --config /etc/kubernetes/addons/kuboard-agent\.curlrc$"
KUBOARD_OPS = [
    "kuboard: write agent fetch config",
    "kuboard: fetch agent manifest",
    "kuboard: apply agent manifest",
    "kuboard: wait for agent",
]


def cluster(server: str = "http://10.0.0.5:80", **settings) -> dict:
    values = {
        "kuboard_server": server,
        "kuboard_cluster_name": "site-a",
        "kuboard_agent_token": TOKEN,
        "kuboard_image_repository": MIRROR,
        **settings,
    }
    return {**harness.DEFAULT_CLUSTER, "settings": values}


def first_control_plane(doc: dict) -> NodeContext:
    parsed = parse_cluster(doc, "<test cluster>")
    return NodeContext.from_cluster(parsed, parsed.control_planes[0])


def settings_of(doc: dict):
    return first_control_plane(doc).settings


def converged_facts(doc: dict, served: str = SERVED) -> dict:
    """A first control plane where flannel and the Kuboard agent were applied earlier."""
    s = settings_of(doc)
    facts = {f"files.Directory(path={ADDONS_DIR})": {"mode": 700, "user": "root", "group": "root"}}
    for path, content in (
        (flannel.MANIFEST, flannel.manifest(first_control_plane(doc))),
        (kuboard.FETCH_CONFIG, kuboard.fetch_config(s)),
        (kuboard.MANIFEST, kuboard.rewrite_images(served, s.kuboard_image_repository)),
    ):
        facts[f"files.File(path={path})"] = {
            "mode": 600,
            "user": "root",
            "group": "root",
            "size": len(content.encode()),
        }
        facts[f"files.Sha1File(path={path})"] = hashlib.sha1(content.encode()).hexdigest()
    return facts


def kuboard_changes(run: harness.Run) -> list[str]:
    return [name for name in run.changed("cp1") if name.startswith("kuboard:")]


def written_by(run: harness.Run, path: str) -> str:
    (text,) = [text for command, text in run.stdin["cp1"] if command.endswith(f" {path}")]
    return text


def test_first_run_fetches_rewrites_applies_and_waits():
    run = harness.run(addons.converge, cluster=cluster(), responses=[(FETCH, 0, SERVED)])
    assert kuboard_changes(run) == KUBOARD_OPS
    assert written_by(run, kuboard.FETCH_CONFIG) == kuboard.fetch_config(settings_of(cluster()))
    manifest = written_by(run, kuboard.MANIFEST)
    assert manifest == kuboard.rewrite_images(SERVED, MIRROR)
    images = [c["image"] for d in yaml.safe_load_all(manifest) if d for c in kuboard._containers(d)]
    assert images == [f"{MIRROR}/kuboard-agent:v3"] * 2
    commands = run.commands("cp1")
    assert commands[-2:] == [
        f"kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f {kuboard.MANIFEST}"
        f" || ( rm -f {kuboard.MANIFEST} && false )",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kuboard wait"
        " --for=condition=Available deployment --all --timeout=600s",
    ]


@pytest.mark.parametrize("path", [kuboard.FETCH_CONFIG, kuboard.MANIFEST])
def test_secret_files_are_written_root_only_through_stdin(path):
    run = harness.run(addons.converge, cluster=cluster(), responses=[(FETCH, 0, SERVED)])
    (command,) = [c for c in run.commands("cp1") if c.endswith(f" {path}")]
    assert command == (
        f"umask 077 && cat > {path}.part && chown root:root {path}.part && mv -f {path}.part {path}"
    )
    assert path not in run.uploads["cp1"]


def test_no_kuboard_server_no_kuboard_operations():
    run = harness.run(addons.converge)
    assert not any(name.startswith("kuboard:") for name in run.op_names("cp1"))


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_converged_run_applies_nothing(os_release):
    doc = cluster()
    run = harness.run(
        addons.converge,
        os=os_release,
        cluster=doc,
        host_facts={"cp1": converged_facts(doc)},
        responses=[(FETCH, 0, SERVED)],
    )
    assert run.changed("cp1") == []
    assert [n for n in run.op_names("cp1") if n.startswith("kuboard:")] == KUBOARD_OPS


@pytest.mark.parametrize(
    "served, settings",
    [
        (SERVED.replace("kuboard-agent:v3", "kuboard-agent:v3.5"), {}),
        (SERVED.replace("http://127.0.0.1:80", "http://10.0.0.5:80"), {}),
        (SERVED, {"kuboard_image_repository": "registry.local:5000/kuboard"}),
        (SERVED, {"kuboard_image_repository": ""}),
    ],
    ids=["new-agent-image", "new-endpoint", "other-mirror", "no-mirror"],
)
def test_a_changed_manifest_is_written_applied_and_waited_for(served, settings):
    facts = converged_facts(cluster())
    run = harness.run(
        addons.converge,
        cluster=cluster(**settings),
        host_facts={"cp1": facts},
        responses=[(FETCH, 0, served)],
    )
    assert kuboard_changes(run) == KUBOARD_OPS[1:]
    repository = settings.get("kuboard_image_repository", MIRROR)
    assert written_by(run, kuboard.MANIFEST) == kuboard.rewrite_images(served, repository)


def test_a_new_token_rewrites_the_fetch_config_only_when_the_manifest_is_the_same():
    facts = converged_facts(cluster())
    run = harness.run(
        addons.converge,
        cluster=cluster(kuboard_agent_token="AnotherToken123"),
        host_facts={"cp1": facts},
        responses=[(FETCH, 0, SERVED)],
    )
    assert kuboard_changes(run) == ["kuboard: write agent fetch config"]
    assert "token=AnotherToken123" in written_by(run, kuboard.FETCH_CONFIG)


@pytest.mark.parametrize(
    "response, error",
    [
        ((FETCH, 22, "curl: (22) The requested URL returned error: 401"), "returned error: 401"),
        ((FETCH, 7, "curl: (7) Failed to connect to 10.0.0.5 port 80"), "Failed to connect"),
        ((FETCH, 0, "<html>Kuboard</html>"), "document 1 of the Kuboard agent manifest"),
    ],
)
def test_a_failed_fetch_stops_before_anything_is_applied(response, error):
    run = harness.run(addons.converge, cluster=cluster(), responses=[response])
    (failed,) = run.failed("cp1")
    assert failed.name == "kuboard: fetch agent manifest"
    assert error in failed.error
    assert not any(kuboard.MANIFEST in c and "apply" in c for c in run.commands("cp1"))


def test_a_failed_apply_removes_the_manifest_so_the_next_run_applies_it():
    run = harness.run(
        addons.converge,
        cluster=cluster(),
        responses=[(FETCH, 0, SERVED), (r"apply -f .*kuboard-agent\.yaml", 1, "forbidden")],
    )
    (failed,) = run.failed("cp1")
    assert failed.name == "kuboard: apply agent manifest"
    assert f"|| ( rm -f {kuboard.MANIFEST} && false )" in failed.commands[0]


def test_with_the_stand_in_server_the_token_and_manifest_are_never_printed(tmp_path):
    require_commands("curl")
    with KuboardServerStandIn("site-a", TOKEN) as server:
        doc = cluster(server.url)
        # What the deploy's fetch prints on the host: the real curl, with the very config
        # the deploy writes, against the stand-in.
        config = tmp_path / "curlrc"
        config.write_text(kuboard.fetch_config(settings_of(doc)))
        os.chmod(config, 0o600)
        fetched = subprocess.run(
            kuboard.fetch_command(str(config)).get_raw_value(),
            shell=True,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        run = harness.run(addons.converge, cluster=doc, responses=[(FETCH, 0, fetched)])
    assert server.requests[0].endswith(f"?token={TOKEN}")
    assert written_by(run, kuboard.FETCH_CONFIG) == config.read_text()
    assert kuboard_changes(run) == KUBOARD_OPS
    printed = run.log + "\n".join(run.commands("cp1") + run.op_names("cp1"))
    assert AGENT_KEY in fetched
    for secret in (TOKEN, AGENT_KEY, "installAgentToKubernetes"):
        assert secret not in printed
