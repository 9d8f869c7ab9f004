"""The Kuboard server and the agent's fetch on real nodes (tests/lab/deploys/kuboard.py, the
real `pyinfra` command): testlab1 has the role `kuboard` (outside the cluster), testlab2 is
the control plane.

What is real: the server's image pulled by containerd's own ctr through the docker.io
mirror of registry_mirrors (the lab's registry serves a small image under the default
image's name), the unit and its script, the root-only data and config directories, systemd
(enabled, started, restarted once for a changed port, started again after a power cycle),
the initial password file used on the first start only and removed, a second run that
changes nothing; and curl fetching the agent manifest from the stand-in Kuboard server over
https with a self-signed certificate.

What the lab cannot run: the container. runc cannot start containers in the lab's nodes,
so `ctr run` is a stand-in there (tests/lab/stand_in_ctr.py, a test double that diverts
only `run`): it echoes the password line as Kuboard's entrypoint does, creates etcd-data in
the data directory and answers HTTP on KUBOARD_SERVER_PORT. That Kuboard's image starts
with these options and its web UI answers is proven only on a machine that runs containers.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deploys import kuboard
from deploys.addons import kuboard as agent
from deploys.context import NodeContext
from deploys.settings import load_cluster
from tests.lab import config, host, registry
from tests.lab.fixture import LAB_NODES
from tests.lab.runs import Run, pyinfra

pytestmark = pytest.mark.lab

SERVER, CONTROL_PLANE = LAB_NODES[0], LAB_NODES[1]
DEPLOY = "tests/lab/deploys/kuboard.py"
PASSWORD = "Lab-Initial-9xq"
STAND_IN_CTR = Path(__file__).with_name("stand_in_ctr.py")
CALLS_LOG = "/var/log/pyinfra-kubeadm-stand-in/calls.log"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _cluster_file(lab, name: str, hosts: list[tuple[str, str]], **settings) -> Path:
    """A root-only cluster file of the lab's nodes with these roles and settings."""
    base = yaml.safe_load(lab.inventory_path.read_text())
    addresses = {h["name"]: h["address"] for h in base["hosts"]}
    values = {k: v for k, v in base["settings"].items() if not k.startswith("kuboard_")}
    document = {
        "hosts": [{"name": n, "address": addresses[n], "roles": [r]} for n, r in hosts],
        "settings": {**values, **settings},
    }
    path = config.STATE_DIR / f"kuboard-{name}.yaml"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(document))
    return path


@dataclass(frozen=True)
class Runs:
    cold: Run
    converged: Run
    moved: Run  # kuboard_web_port changed
    cluster_file: Path
    first_calls: list[str]  # the calls log's `ctr run` lines after the cold run
    all_calls: list[str]


def _runs_of_ctr(lab) -> list[str]:
    text = lab.ssh(SERVER, f"cat {CALLS_LOG} 2>/dev/null || true").stdout
    return [line for line in text.splitlines() if " ctr --namespace kuboard run " in line]


@pytest.fixture(scope="module")
def runs(lab) -> Runs:
    mirror = registry.start_registry(lab)
    registry.push_image(mirror, "eipwork/kuboard", "v3.5.2.7", registry.build_pause_image())
    lab.ssh(
        SERVER,
        "dpkg-divert --quiet --local --rename --divert /usr/bin/ctr.real --add /usr/bin/ctr"
        f" && install -m 755 /dev/stdin /usr/bin/ctr <<'EOF'\n{STAND_IN_CTR.read_text()}EOF",
    )
    settings = {
        "registry_mirrors": {
            **yaml.safe_load(lab.inventory_path.read_text())["settings"]["registry_mirrors"],
            "docker.io": [f"http://{mirror}"],
        },
        "kuboard_cluster_name": "lab",
        "kuboard_admin_password": PASSWORD,
        "ready_timeout": 60,
    }
    hosts = [(SERVER, "kuboard"), (CONTROL_PLANE, "control_plane")]
    cluster_file = _cluster_file(lab, "server", hosts, **settings)
    cold = pyinfra(DEPLOY, cluster_file)
    first_calls = _runs_of_ctr(lab)
    converged = pyinfra(DEPLOY, cluster_file)
    moved_file = _cluster_file(lab, "moved", hosts, **settings, kuboard_web_port=8080)
    moved = pyinfra(DEPLOY, moved_file)
    yield Runs(cold, converged, moved, moved_file, first_calls, _runs_of_ctr(lab))
    lab.ssh(
        SERVER,
        "systemctl disable --now kuboard.service; rm -f /etc/systemd/system/kuboard.service"
        f" {kuboard.SCRIPT} /usr/bin/ctr; systemctl daemon-reload;"
        " dpkg-divert --quiet --local --rename --remove /usr/bin/ctr;"
        f" rm -rf {kuboard.DATA_DIR} {kuboard.CONFIG_DIR}",
        check=False,
    )


def test_the_runs_succeed_and_the_second_changes_nothing(runs):
    for run in (runs.cold, runs.converged, runs.moved):
        assert run.result.returncode == 0, run.failure()
    assert runs.cold.totals()["success"] > 0
    assert runs.converged.totals()["success"] == 0, runs.converged.output[-3000:]


def test_the_unit_and_its_script_are_what_the_deploy_renders(lab, runs):
    cluster = load_cluster(runs.cluster_file)
    node = next(n for n in cluster.nodes if n.name == SERVER)
    wanted = kuboard.rendered_files(NodeContext.from_cluster(cluster, node))
    for path in (kuboard.UNIT_FILE, kuboard.SCRIPT):
        assert lab.ssh(SERVER, f"cat {path}").stdout == wanted[path]
    modes = lab.ssh(SERVER, f"stat -c '%n %a %U' {kuboard.UNIT_FILE} {kuboard.SCRIPT}").stdout
    assert modes.splitlines() == [f"{kuboard.UNIT_FILE} 644 root", f"{kuboard.SCRIPT} 755 root"]


def test_data_and_config_directories_are_root_only(lab, runs):
    out = lab.ssh(SERVER, f"stat -c '%n %a %U %G' {kuboard.DATA_DIR} {kuboard.CONFIG_DIR}")
    assert out.stdout.splitlines() == [
        f"{kuboard.DATA_DIR} 700 root root",
        f"{kuboard.CONFIG_DIR} 700 root root",
    ]
    # The stand-in made what Kuboard's first start makes: the data is no longer new.
    assert lab.ssh(SERVER, f"test -d {kuboard.DATA_DIR}/etcd-data", check=False).returncode == 0


def test_the_server_is_enabled_running_and_answers_on_its_new_port(lab, runs):
    state = lab.ssh(SERVER, "systemctl is-enabled kuboard.service; systemctl is-active kuboard")
    assert state.stdout.split() == ["enabled", "active"]
    address = lab.node(SERVER).address
    with _DIRECT.open(f"http://{address}:8080/", timeout=10) as answer:
        assert answer.status == 200


def test_the_image_came_through_the_docker_io_mirror_with_containerds_ctr(lab, runs):
    images = lab.ssh(SERVER, "/usr/bin/ctr.real --namespace kuboard images ls -q").stdout
    assert "docker.io/eipwork/kuboard:v3.5.2.7" in images.split()


def test_the_password_is_given_on_the_first_start_only_and_never_shown(lab, runs):
    (first,) = runs.first_calls
    assert f"--env-file {kuboard.PASSWORD_FILE}" in first
    assert "--net-host" in first and "--env KUBOARD_SERVER_PORT=<value>" in first
    # One more start, for the changed port, without the password: its file is gone.
    assert len(runs.all_calls) == 2
    assert "--env-file" not in runs.all_calls[1]
    assert lab.ssh(SERVER, f"test -e {kuboard.PASSWORD_FILE}", check=False).returncode == 1
    journal = lab.ssh(SERVER, "journalctl -u kuboard.service --no-pager -o cat").stdout
    assert '"GET / HTTP/1.1" 200' in journal  # the container's output reaches it ...
    assert PASSWORD not in journal  # ... but not the line echoing the password
    for run in (runs.cold, runs.converged, runs.moved):
        assert PASSWORD not in run.output


@pytest.fixture(scope="module")
def fetches(lab) -> tuple[Run, Run]:
    token = (config.STATE_DIR / "kuboard-token").read_text().strip()
    settings = {
        "kuboard_server": f"https://{config.BRIDGE_ADDRESS}:{config.STAND_IN_KUBOARD_TLS_PORT}",
        "kuboard_cluster_name": config.KUBOARD_CLUSTER_NAME,
        "kuboard_agent_token": token,
    }
    hosts = [(CONTROL_PLANE, "control_plane")]
    verified = pyinfra(DEPLOY, _cluster_file(lab, "verified", hosts, **settings))
    unverified = pyinfra(
        DEPLOY, _cluster_file(lab, "unverified", hosts, **settings, kuboard_tls_verify=False)
    )
    yield verified, unverified
    lab.ssh(CONTROL_PLANE, f"rm -f {agent.FETCH_CONFIG} {agent.MANIFEST}", check=False)


def test_a_self_signed_server_fails_the_fetch_by_default_saying_what_to_do(fetches):
    verified, _ = fetches
    assert verified.result.returncode != 0
    assert "fetching the Kuboard agent manifest on testlab" in verified.output
    assert "SSL certificate problem" in verified.output
    assert "set kuboard_tls_verify: false" in verified.output


def test_kuboard_tls_verify_false_fetches_it_with_a_warning(lab, fetches):
    _, unverified = fetches
    assert unverified.result.returncode == 0, unverified.failure()
    assert "warning: " in unverified.output
    assert "kuboard_tls_verify is false" in unverified.output
    kinds = lab.ssh(CONTROL_PLANE, f"grep '^kind:' {agent.MANIFEST}").stdout.split()
    assert kinds.count("Deployment") == 2
    config_text = lab.ssh(CONTROL_PLANE, f"cat {agent.FETCH_CONFIG}").stdout
    assert "insecure" in config_text.splitlines()


def test_the_server_comes_back_after_a_power_cycle(lab, runs):
    lab.restart(SERVER)
    address = lab.node(SERVER).address
    answered = host.wait_until(lambda: _answers(f"http://{address}:8080/"), 60)
    assert answered, lab.ssh(SERVER, "systemctl status kuboard.service", check=False).stdout
    assert lab.ssh(SERVER, "systemctl is-active kuboard.service").stdout.strip() == "active"


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False
