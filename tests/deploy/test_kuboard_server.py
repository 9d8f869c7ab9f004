"""The Kuboard server on a host with the role `kuboard`, against recorded hosts: the unit and
its script, the commands (ctr through containerd's registry hosts, systemd), a converged
host, a changed setting (one restart), the initial admin password (a secret, used only
while the data directory is new), each failure naming the host and the cause, the cluster
file's refusals, and the import: the summary's steps without a token, the agent fetched
from the managed server with one."""

from __future__ import annotations

import shlex

import pytest
from pyinfra.api import OperationError

from deploys import addons, kubernetes, kuboard
from deploys.addons import kuboard as agent
from deploys.addons.ready import summary
from deploys.context import NodeContext
from deploys.settings import ClusterError, parse_cluster
from tests.deploy import harness

PASSWORD = "Initial-Admin-7q"
TOKEN = "AgentToken0123"
STATE = "deploys.kuboard.facts.KuboardServerState"
PREFLIGHT = "deploys.preflight.facts.PreflightState"
IMAGE = "docker.io/eipwork/kuboard:v3.5.2.7"
FIRST_RUN = [
    "kuboard: create /var/lib/kuboard",
    "kuboard: create /etc/kuboard",
    "kuboard: pull server image",
    "kuboard: write initial admin password",
    f"kuboard: write {kuboard.SCRIPT}",
    f"kuboard: write {kuboard.UNIT_FILE}",
    "kuboard: enable and start server",
    "kuboard: wait for server",
    "kuboard: remove initial admin password",
]


def cluster(roles=("kuboard",), hosts=(), **settings) -> dict:
    values = {"kuboard_cluster_name": "site-a", "kuboard_admin_password": PASSWORD, **settings}
    kb1 = {"name": "kb1", "address": "10.0.0.5", "roles": list(roles)}
    return {"hosts": [*harness.DEFAULT_CLUSTER["hosts"], kb1, *hosts], "settings": values}


def converged(**state) -> dict:
    """A host where the server runs: data initialised, image pulled, service up."""
    root_only = {"mode": 700, "user": "root", "group": "root"}
    return {
        **{f"files.Directory(path={d})": root_only for d in (kuboard.DATA_DIR, kuboard.CONFIG_DIR)},
        STATE: {
            "initialised": True,
            "password_file": False,
            "active": True,
            "enabled": True,
            "images": [IMAGE],
            **state,
        },
    }


def context(doc: dict, name: str = "kb1") -> NodeContext:
    parsed = parse_cluster(doc, "<test cluster>")
    return NodeContext.from_cluster(parsed, next(n for n in parsed.nodes if n.name == name))


def printed(run: harness.Run, host: str = "kb1") -> str:
    return run.log + "\n".join(run.commands(host) + run.op_names(host))


def test_first_run_pulls_writes_starts_waits_and_drops_the_password():
    run = harness.run(kuboard.converge, cluster=cluster())
    assert run.changed("kb1") == FIRST_RUN
    commands = run.commands("kb1")
    assert "mkdir -p /var/lib/kuboard" in commands
    assert "chmod 700 /var/lib/kuboard" in commands
    assert (
        f"/usr/bin/ctr --namespace kuboard images pull --hosts-dir /etc/containerd/certs.d "
        f"{IMAGE} > /dev/null" in "\n".join(commands)
    )
    assert any(c.startswith("timeout 600 sh -c 'until curl") for c in commands)
    assert commands[-1] == f"rm -f {kuboard.PASSWORD_FILE}"
    for name in ("cp1", "w1", "w2"):  # the cluster's nodes run no Kuboard server
        assert run.changed(name) == []


def test_the_unit_restarts_on_failure_after_containerd_and_starts_at_boot():
    unit = harness.run(kuboard.converge, cluster=cluster()).uploads["kb1"][kuboard.UNIT_FILE]
    lines = unit.splitlines()
    for line in (
        "Requires=containerd.service",
        f"ExecStart={kuboard.SCRIPT}",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
        "ExecStartPre=-/usr/bin/ctr --namespace kuboard tasks delete --force kuboard",
        "ExecStop=/usr/bin/ctr --namespace kuboard tasks kill --signal SIGTERM kuboard",
    ):
        assert line in lines
    assert "docker" not in unit.replace("docker.io", "")


def test_the_script_runs_the_image_with_host_networking_data_and_settings():
    doc = cluster(kuboard_web_port=8080, kuboard_agent_port=30081)
    script = harness.run(kuboard.converge, cluster=doc).uploads["kb1"][kuboard.SCRIPT]
    words = shlex.split(script.split("options=(")[1].split(")")[0])
    assert words == [
        "--rm",
        "--net-host",
        "--mount",
        "type=bind,src=/var/lib/kuboard,dst=/data,options=rbind:rw",
        "--env",
        "KUBOARD_ENDPOINT=http://10.0.0.5:8080",
        "--env",
        "KUBOARD_AGENT_SERVER_TCP_PORT=30081",
        "--env",
        "KUBOARD_SERVER_PORT=8080",
    ]
    assert f'run "${{options[@]}}" {IMAGE} kuboard' in script
    assert f"options+=(--env-file {kuboard.PASSWORD_FILE})" in script
    assert "grep --line-buffered --invert-match --fixed-strings KuboardAdmin" in script


@pytest.mark.parametrize(
    "settings, image",
    [
        ({}, IMAGE),
        (
            {"kuboard_server_image": "swr.cn-east-2.myhuaweicloud.com/kuboard/kuboard:v3.5.2.7"},
            "swr.cn-east-2.myhuaweicloud.com/kuboard/kuboard:v3.5.2.7",
        ),
    ],
    ids=["docker-hub", "kuboard-mirror"],
)
def test_the_image_is_pulled_through_containerds_registry_hosts(settings, image):
    doc = cluster(registry_mirrors={"docker.io": ["https://docker.m.daocloud.io"]}, **settings)
    run = harness.run(kuboard.converge, cluster=doc)
    (pull,) = run.op("kb1", "kuboard: pull server image").commands
    assert f"images pull --hosts-dir /etc/containerd/certs.d {image} " in pull


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_a_converged_host_changes_nothing(os_release):
    run = harness.run(
        kuboard.converge, os=os_release, cluster=cluster(), host_facts={"kb1": converged()},
        converged=True,
    )  # fmt: skip
    assert run.changed("kb1") == []
    assert "kuboard: enable and start server" not in run.op_names("kb1")


@pytest.mark.parametrize(
    "settings",
    [
        {"kuboard_web_port": 8080},
        {"kuboard_agent_port": 30081},
        {"kuboard_endpoint": "http://kuboard.example.internal"},
        {"kuboard_server_image": "eipwork/kuboard:v3.5.2.8"},
    ],
    ids=["web-port", "agent-port", "endpoint", "image"],
)
def test_a_changed_setting_restarts_the_server_once(settings):
    first = harness.run(kuboard.converge, cluster=cluster(), host_facts={"kb1": converged()},
                        converged=True)  # fmt: skip
    assert first.changed("kb1") == []
    run = harness.run(
        kuboard.converge,
        cluster=cluster(**settings),
        host_facts={"kb1": {**converged(), **_files_of(cluster())}},
    )
    changed = run.changed("kb1")
    assert changed.count("kuboard: restart server with new settings") == 1
    assert "kuboard: enable and start server" not in changed
    assert changed[-2:] == ["kuboard: restart server with new settings", "kuboard: wait for server"]
    restarts = [c for c in run.commands("kb1") if "restart" in c]
    assert restarts == ["systemctl restart kuboard.service"]


def _files_of(doc: dict) -> dict:
    """File facts of a host holding the script and unit that `doc` renders."""
    import hashlib

    facts = {}
    for path, content in kuboard.rendered_files(context(doc)).items():
        if path == kuboard.PASSWORD_FILE:
            continue
        mode = 755 if path == kuboard.SCRIPT else 644
        facts[f"files.File(path={path})"] = {
            "mode": mode, "user": "root", "group": "root", "size": len(content.encode()),
        }  # fmt: skip
        facts[f"files.Sha1File(path={path})"] = hashlib.sha1(content.encode()).hexdigest()
    return facts


def test_the_password_is_a_root_only_file_and_never_printed():
    run = harness.run(kuboard.converge, cluster=cluster())
    ((command, text),) = run.stdin["kb1"]
    assert command.endswith(f"mv -f {kuboard.PASSWORD_FILE}.part {kuboard.PASSWORD_FILE}")
    assert command.startswith("umask 077 && ")
    assert text == f"KUBOARD_ADMIN_DERAULT_PASSWORD={PASSWORD}\n"
    assert PASSWORD not in printed(run)
    assert not any(PASSWORD in content for content in run.uploads["kb1"].values())
    assert PASSWORD not in repr(context(cluster()).settings)
    assert PASSWORD not in "\n".join(summary(context(cluster(), "cp1"), None))


@pytest.mark.parametrize(
    "state", [{}, {"active": False, "enabled": False}], ids=["running", "stopped"]
)
def test_the_password_is_not_given_to_a_server_whose_data_exists(state):
    run = harness.run(
        kuboard.converge,
        cluster=cluster(kuboard_admin_password="Another-Password-2"),
        host_facts={"kb1": converged(**state)},
    )
    assert "kuboard: write initial admin password" not in run.op_names("kb1")
    assert run.stdin.get("kb1", []) == []


def test_a_left_over_password_file_is_removed_once_the_data_exists():
    run = harness.run(
        kuboard.converge,
        cluster=cluster(),
        host_facts={"kb1": {**converged(password_file=True), **_files_of(cluster())}},
    )
    assert run.changed("kb1") == ["kuboard: remove initial admin password"]


def test_without_a_password_no_password_file_is_written():
    run = harness.run(kuboard.converge, cluster=cluster(kuboard_admin_password=""))
    assert "kuboard: write initial admin password" not in run.op_names("kb1")
    assert "kuboard: remove initial admin password" not in run.op_names("kb1")


def test_an_image_that_cannot_be_pulled_fails_the_host_naming_it_and_the_cause():
    run = harness.run(
        kuboard.converge,
        cluster=cluster(),
        responses=[(r"images pull", 1, "ctr: failed to resolve reference: i/o timeout")],
    )
    (failed,) = run.failed("kb1")
    assert failed.name == "kuboard: pull server image"
    assert f"pulling {IMAGE} on kb1 failed" in failed.error
    assert "registry_mirrors" in failed.error
    assert "kuboard: enable and start server" not in run.op_names("kb1")


def test_a_server_that_never_answers_fails_the_host_naming_it_and_the_cause():
    run = harness.run(
        kuboard.converge, cluster=cluster(ready_timeout=30), responses=[(r"^timeout 30 ", 124, "")]
    )
    (failed,) = run.failed("kb1")
    assert failed.name == "kuboard: wait for server"
    assert "the server on kb1 did not answer HTTP on port 80 within 30 s" in failed.error
    assert "journalctl -u kuboard.service" in failed.error
    # The password file stays for the next run's start: the admin user is not made yet.
    assert "kuboard: remove initial admin password" not in run.op_names("kb1")


@pytest.mark.parametrize(
    "listening, named",
    [
        (["80/tcp"], "80/tcp (web port, kuboard_web_port)"),
        (["10081/tcp"], "10081/tcp (agent server port, kuboard_agent_port)"),
        (["2379/tcp", "22/tcp"], "2379/tcp (Kuboard's built-in etcd)"),
    ],
)
def test_a_port_taken_by_another_service_stops_the_run_before_any_change(listening, named):
    facts = {**converged(active=False), PREFLIGHT: {"listening": listening}}
    with pytest.raises(OperationError) as refused:
        harness.run(kuboard.converge, cluster=cluster(), host_facts={"kb1": facts})
    assert str(refused.value).startswith("kb1: the Kuboard server needs port")
    assert named in str(refused.value)


def test_its_own_running_server_holds_its_ports():
    facts = {**converged(), PREFLIGHT: {"listening": ["80/tcp", "10081/tcp", "2379/tcp"]}}
    run = harness.run(kuboard.converge, cluster=cluster(), host_facts={"kb1": facts})
    assert run.failed("kb1") == []


def test_a_host_that_is_only_the_kuboard_server_gets_no_kubernetes():
    run = harness.run(kubernetes.converge, cluster=cluster())
    assert run.op_names("kb1") == []
    assert kubernetes.rendered_files(context(cluster())) == {}


def test_a_worker_can_be_the_kuboard_host():
    doc = cluster()
    doc["hosts"] = [*harness.DEFAULT_CLUSTER["hosts"]]
    doc["hosts"][2] = {**doc["hosts"][2], "roles": ["worker", "kuboard"]}
    run = harness.run(kuboard.converge, cluster=doc)
    assert run.changed("w2") == FIRST_RUN


@pytest.mark.parametrize(
    "doc, problem",
    [
        (cluster(hosts=[{"name": "kb2", "address": "10.0.0.6", "roles": ["kuboard"]}]),
         "hosts 'kb1', 'kb2': the role 'kuboard' is for one host"),
        (cluster(roles=["control_plane", "kuboard"]),
         "host 'kb1': roles: 'kuboard' and 'control_plane' cannot share a host"),
        (cluster(kuboard_server="http://10.0.0.9:80", kuboard_agent_token=TOKEN),
         "settings: kuboard_server: leave it empty when a host has the role 'kuboard'"),
        (cluster(kuboard_cluster_name=""), "settings: kuboard_cluster_name: required"),
        (cluster(kuboard_endpoint="http://localhost:80"), "never localhost"),
        (cluster(kuboard_endpoint="http://127.0.0.1"), "never localhost"),
        (cluster(kuboard_endpoint="ftp://10.0.0.5"), "is not like 'http://10.0.0.5:80'"),
        (cluster(kuboard_admin_password="short"), "kuboard_admin_password: 8 to 128"),
        (cluster(kuboard_admin_password="two words here"), "kuboard_admin_password: 8 to 128"),
        (cluster(kuboard_admin_password="glob*glob*glob"), "kuboard_admin_password: 8 to 128"),
        (cluster(kuboard_server_image="eipwork/kuboard:v3 --privileged"),
         "kuboard_server_image: 'eipwork/kuboard:v3 --privileged' is not an image reference"),
        (cluster(kuboard_web_port=0), "kuboard_web_port: 0 is not a TCP port"),
        (cluster(kuboard_agent_port=80), "kuboard_agent_port: must differ from kuboard_web_port"),
        (cluster(kuboard_agent_token="tok en"), "kuboard_agent_token: may hold only"),
    ],
    ids=["two-hosts", "control-plane", "server-too", "no-name", "localhost", "loopback", "ftp",
         "short-password", "blank-password", "glob-password", "image-injection", "port-0",
         "same-ports", "token"],
)  # fmt: skip
def test_the_cluster_file_is_refused(doc, problem):
    with pytest.raises(ClusterError) as refused:
        parse_cluster(doc, "site.yaml")
    assert any(p.startswith("site.yaml: ") and problem in p for p in refused.value.problems), (
        refused.value.problems
    )
    assert PASSWORD not in str(refused.value)


def test_the_summary_without_a_token_gives_the_url_user_password_source_and_steps():
    lines = summary(context(cluster(), "cp1"), None)
    kuboard_lines = lines[lines.index(next(x for x in lines if x.startswith("Kuboard:"))) :]
    assert kuboard_lines[0] == (
        "Kuboard: console http://10.0.0.5:80 on kb1, user admin, password from the "
        "kuboard_admin_password setting, given when its data directory was new"
    )
    steps = "\n".join(kuboard_lines[1:])
    assert "open http://10.0.0.5:80 and log in as admin" in steps
    assert "name it site-a" in steps
    assert "set kuboard_agent_token: TOKEN" in steps


def test_the_summary_names_kuboards_default_password_when_none_is_set():
    lines = summary(context(cluster(kuboard_admin_password="", kuboard_agent_token=TOKEN), "cp1"),
                    None)  # fmt: skip
    assert lines[-1] == (
        "Kuboard: console http://10.0.0.5:80 on kb1, user admin, password from Kuboard's "
        "default, Kuboard123: change it at the first login"
    )


def test_without_a_token_the_agent_is_not_imported_and_the_summary_is_printed():
    run = harness.run(addons.converge, cluster=cluster())
    assert not any(n.startswith("kuboard:") for n in run.op_names("cp1"))
    assert agent.rendered_files(context(cluster(), "cp1")) == {}


def test_with_a_token_the_agent_is_fetched_from_the_managed_server():
    doc = cluster(kuboard_agent_token=TOKEN)
    run = harness.run(
        addons.converge,
        cluster=doc,
        responses=[(r"^curl --config", 0, "apiVersion: v1\nkind: Namespace\n")],
    )
    config = dict(run.written("cp1"))[agent.FETCH_CONFIG]
    assert 'url = "http://10.0.0.5:80/kuboard-api/cluster/site-a/kind/KubernetesCluster' in config
    assert "insecure" not in config
    assert "kuboard: apply agent manifest" in run.changed("cp1")


@pytest.mark.parametrize("verify", [True, False])
def test_kuboard_tls_verify_false_skips_verification_for_the_fetch_only(verify):
    doc = cluster(kuboard_agent_token=TOKEN, kuboard_endpoint="https://kuboard.example.internal",
                  kuboard_tls_verify=verify)  # fmt: skip
    config = agent.fetch_config(agent.agent_settings(context(doc, "cp1")))
    assert ("insecure\n" in config.splitlines(keepends=True)) is not verify
    warnings = parse_cluster(doc, "site.yaml").warnings
    assert bool(warnings) is not verify
    if not verify:
        (warning,) = warnings
        assert warning.startswith("site.yaml: settings: kuboard_tls_verify is false:")
        assert "https://kuboard.example.internal" in warning


def test_an_untrusted_certificate_fails_the_fetch_with_what_to_do():
    doc = {**harness.DEFAULT_CLUSTER, "settings": {
        "kuboard_server": "https://10.0.0.5", "kuboard_cluster_name": "site-a",
        "kuboard_agent_token": TOKEN}}  # fmt: skip
    error = "curl: (60) SSL certificate problem: self-signed certificate"
    run = harness.run(addons.converge, cluster=doc, responses=[(r"^curl --config", 60, error)])
    (failed,) = run.failed("cp1")
    assert failed.name == "kuboard: fetch agent manifest"
    assert "on cp1 failed: curl: (60) SSL certificate problem" in failed.error
    assert "set kuboard_tls_verify: false" in failed.error


@pytest.mark.parametrize(
    "roles, expected",
    [
        (["kuboard"], {"80/tcp", "10081/tcp"}),
        (["worker", "kuboard"], {"80/tcp", "10081/tcp", "10250/tcp", "10256/tcp"}),
    ],
)
def test_the_firewall_opens_the_kuboard_ports_on_its_host(roles, expected):
    from deploys.system.firewall import firewall_ports

    ctx = context(cluster(roles=roles))
    ports = {p.ufw for p in firewall_ports(ctx.node, ctx.settings)}
    assert expected <= ports
    assert ("6443/tcp" in ports) is False
    if roles == ["kuboard"]:
        assert ports == expected


def test_preflight_asks_the_kuboard_only_host_for_no_kubernetes_requirement():
    from deploys import preflight

    ctx = context(cluster(kubernetes_version="1.36.1"))
    facts = {
        **harness.load_facts("ubuntu-24.04")[PREFLIGHT],
        "cgroup": "tmpfs",  # cgroup v1: the kubelet of 1.35 and later refuses it
        "listening": ["22/tcp", "80/tcp", "10250/tcp"],  # its own server; another service
        "containerd": {"containerd": {"installed": "1.7.28-0ubuntu1"}},  # 1.x: fine here
    }
    assert preflight.node_problems(ctx.node, ctx.settings, facts) == []
    worker = context(cluster(kubernetes_version="1.36.1"), "w1")
    assert len(preflight.node_problems(worker.node, worker.settings, facts)) == 3


@pytest.mark.parametrize("token, printed", [("", True), (TOKEN, False)])
def test_a_ready_cluster_prints_the_import_steps_until_it_is_imported(token, printed):
    from deploys.addons.ready import wait_for_cluster

    run = harness.run(wait_for_cluster, cluster=cluster(kuboard_agent_token=token),
                      os="debian-12", converged=True)  # fmt: skip
    # Waited only for the cluster's nodes, not for the Kuboard host.
    assert run.op("cp1", "cluster: wait until ready").commands == []
    assert ("cluster: print summary" in run.changed("cp1")) is printed
    assert ("this cluster is not imported yet" in run.log) is printed
    assert "kb1  " not in run.log  # not listed as a node
