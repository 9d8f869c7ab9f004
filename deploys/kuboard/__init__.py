"""The Kuboard v3 server on the host with the role `kuboard`: a container that containerd's
own tools run under systemd (no Docker), with host networking and its data in DATA_DIR.

What Kuboard's setup guide says, and what this concern makes of it (sources: kuboard.cn
"安装 Kuboard v3 - 内建用户库", eip-work/kuboard-press install/v3/install-built-in.md and
install/v3/tls.md; the image's /entrypoint.sh as quoted in public copies):

- `docker run ... -p 80:80/tcp -p 10081:10081/tcp -e KUBOARD_ENDPOINT="http://内网IP:80"
  -e KUBOARD_AGENT_SERVER_TCP_PORT="10081" -v /root/kuboard-data:/data eipwork/kuboard:v3`;
  the guide's mirror is swr.cn-east-2.myhuaweicloud.com/kuboard/kuboard:v3 (the tags, e.g.
  v3.5.2.7, are the same on both). Here: `ctr run --net-host`, the image pulled into
  containerd's namespace NAMESPACE through /etc/containerd/certs.d (registry_mirrors, the
  same hosts.toml the CRI and the sandbox guard use).
- KUBOARD_ENDPOINT must be an address the agents reach, "请不要使用 127.0.0.1 或者 localhost";
  changing it later means removing and importing the clusters again (the guide).
- KUBOARD_AGENT_SERVER_TCP_PORT must equal the published agent port; it "does not change
  the port the container listens on, 10081". With host networking nothing is published,
  so the agent port is 10081 unless the site puts something in front: kuboard_agent_port
  is what Kuboard tells its agents (and what the firewall opens).
- The web port: the image sets KUBOARD_SERVER_PORT=80 in its environment (`docker
  inspect`/runlike output of eipwork/kuboard:v3.5.0.3); with host networking the unit sets
  it to kuboard_web_port. Not verified against a running image here (the lab cannot run
  containers).
- /data holds everything (etcd-data, questdb-data, kuboard_agent_key); the entrypoint
  starts etcd on 0.0.0.0:2379/2380, which is why a control plane (kubeadm's etcd) cannot be
  the Kuboard host with host networking.
- KUBOARD_ADMIN_DERAULT_PASSWORD (Kuboard's spelling): the entrypoint md5s it into the
  admin user it loads "仅第一次启动时设置" (only at the first start, with an empty /data),
  expanding it unquoted (so no blanks, quotes, backslashes or glob characters), and echoes
  it to standard output: the unit's script drops that line. Here it is a root-only env
  file given to `ctr run --env-file` only while the data directory is new, removed once the
  server answered. Without it the admin password is Kuboard123.

Adding a cluster "by agent" in the web UI (research for automating it): Kuboard's UI talks
to `/kuboard-api/...` with the session cookie `KuboardToken`, which only a login through its
bundled Dex SSO gives (GET /sso/auth?client_id=kuboard-sso..., POST /login/password, POST
the Dex form, follow /sso/approval to /callback, as third-party clients replay it); clusters
are listed at /kuboard-api/kind/KubernetesCluster. The request that creates a cluster in
agent mode and the object it posts are not documented anywhere public (the UI's source is
not published), so automating it would mean replaying an undocumented private API across
Kuboard releases: not reliable. So the documented way is kept: the summary prints the
console URL and the exact steps, and the next run with kuboard_agent_token set imports the
cluster (deploys/addons/kuboard.py).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from pyinfra import host
from pyinfra.api import OperationError, deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from deploys import secret
from deploys.context import NodeContext
from deploys.kuboard.facts import KuboardServerState
from deploys.runtime.config import CERTS_DIR
from deploys.runtime.containerd import write_root_file
from deploys.runtime.sandbox import UNIT_DIR, qualified_reference
from deploys.settings import IMAGE_REPOSITORY, SERVER_URL, Node, Settings
from deploys.templating import render

__all__ = ["converge", "rendered_files"]

SERVICE = "kuboard.service"
UNIT_FILE = f"{UNIT_DIR}/{SERVICE}"
SCRIPT = "/usr/local/sbin/kuboard-server"
DATA_DIR = "/var/lib/kuboard"  # the container's /data, root only
CONFIG_DIR = "/etc/kuboard"  # root only: the initial admin password's env file
PASSWORD_FILE = f"{CONFIG_DIR}/initial-admin-password.env"
NAMESPACE = "kuboard"  # containerd namespace of the image and the container
CONTAINER = "kuboard"
CTR = "/usr/bin/ctr"
ADMIN_USER = "admin"
DEFAULT_PASSWORD = "Kuboard123"  # Kuboard's own, published in its guide
PASSWORD_VARIABLE = "KUBOARD_ADMIN_DERAULT_PASSWORD"  # sic: Kuboard's spelling
# The entrypoint's line that echoes the initial password (dropped from the journal).
PASSWORD_LINE = "KuboardAdmin"
# What Kuboard's built-in etcd listens on with host networking (its entrypoint).
ETCD_PORTS = (2379, 2380)
# An image reference: repository (as IMAGE_REPOSITORY), a tag and/or a digest.
_IMAGE = re.compile(
    rf"{IMAGE_REPOSITORY.pattern}(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(@sha256:[0-9a-f]{{64}})?"
)
# A password the entrypoint's unquoted `echo -n ${...}` passes on unchanged.
_PASSWORD = re.compile(r"[A-Za-z0-9!#$%&()+,./:;<=>@^_{|}~-]{8,128}")
_LOCAL = re.compile(r"https?://(localhost|127\.[0-9.]+|\[::1\]|0\.0\.0\.0)(:[0-9]+)?(/.*)?")


def check_settings(s: Settings) -> Iterator[tuple[str, str]]:
    """(setting, problem) for every Kuboard server setting that must be refused."""
    if not _IMAGE.fullmatch(s.kuboard_server_image):
        yield "kuboard_server_image", f"{s.kuboard_server_image!r} is not an image reference"
    if s.kuboard_endpoint and not SERVER_URL.fullmatch(s.kuboard_endpoint):
        yield "kuboard_endpoint", f"{s.kuboard_endpoint!r} is not like 'http://10.0.0.5:80'"
    elif _LOCAL.fullmatch(s.kuboard_endpoint):
        yield (
            "kuboard_endpoint",
            f"{s.kuboard_endpoint!r}: the agents in the cluster must reach it; give the "
            "host's LAN address or name, never localhost",
        )
    if s.kuboard_admin_password and not _PASSWORD.fullmatch(s.kuboard_admin_password):
        yield (
            "kuboard_admin_password",
            "8 to 128 characters without blanks, quotes, backslashes or * ? [ ] (Kuboard's "
            "entrypoint expands it unquoted)",
        )
    for key in ("kuboard_web_port", "kuboard_agent_port"):
        if not 0 < getattr(s, key) < 65536:
            yield key, f"{getattr(s, key)} is not a TCP port"
    if s.kuboard_web_port == s.kuboard_agent_port:
        yield "kuboard_agent_port", "must differ from kuboard_web_port"


def kuboard_host(nodes: tuple[Node, ...]) -> Node | None:
    return next((n for n in nodes if n.is_kuboard), None)


def cluster_problems(nodes: tuple[Node, ...], s: Settings) -> list[str]:
    """What the cluster file's hosts and settings together must not say about Kuboard."""
    managed = [n for n in nodes if n.is_kuboard]
    found = []
    if len(managed) > 1:
        names = ", ".join(repr(n.name) for n in managed)
        found.append(f"hosts {names}: the role 'kuboard' is for one host")
    found += [
        f"host {n.name!r}: roles: 'kuboard' and 'control_plane' cannot share a host: Kuboard's "
        f"built-in etcd listens on ports {ETCD_PORTS[0]} and {ETCD_PORTS[1]} with host "
        "networking, as kubeadm's etcd does"
        for n in managed
        if n.is_control_plane
    ]
    if managed and s.kuboard_server:
        found.append(
            "settings: kuboard_server: leave it empty when a host has the role 'kuboard': "
            "the agent is imported from that server"
        )
    if managed and not s.kuboard_cluster_name:
        found.append(
            "settings: kuboard_cluster_name: required with a 'kuboard' host (the name to "
            'give the cluster in Kuboard\'s "add cluster")'
        )
    return found


def cluster_warnings(nodes: tuple[Node, ...], s: Settings) -> list[str]:
    url = server_url(nodes, s)
    if url.startswith("https://") and not s.kuboard_tls_verify:
        return [
            f"kuboard_tls_verify is false: the Kuboard agent manifest is fetched from {url} "
            "without verifying the server's certificate"
        ]
    return []


def endpoint(node: Node, s: Settings) -> str:
    """The managed server's KUBOARD_ENDPOINT: the setting, or the host's address."""
    address = f"[{node.address}]" if ":" in node.address else node.address
    return s.kuboard_endpoint or f"http://{address}:{s.kuboard_web_port}"


def server_url(nodes: tuple[Node, ...], s: Settings) -> str:
    """The Kuboard server the agent is imported from: kuboard_server, or the managed one."""
    managed = kuboard_host(nodes)
    return endpoint(managed, s) if managed else s.kuboard_server


def image(s: Settings) -> str:
    """The server image as containerd names it (Docker Hub's docker.io made explicit)."""
    return qualified_reference(s.kuboard_server_image)


def script(ctx: NodeContext) -> str:
    s = ctx.settings
    environment = {
        "KUBOARD_ENDPOINT": endpoint(ctx.node, s),
        "KUBOARD_AGENT_SERVER_TCP_PORT": s.kuboard_agent_port,
        "KUBOARD_SERVER_PORT": s.kuboard_web_port,
    }
    options = [
        "--rm",
        "--net-host",
        f"--mount type=bind,src={DATA_DIR},dst=/data,options=rbind:rw",
        *(f"--env {shlex.quote(f'{k}={v}')}" for k, v in environment.items()),
    ]
    return render(
        "kuboard/kuboard-server.sh.j2",
        service=SERVICE,
        image=shlex.quote(image(s)),
        data_dir=DATA_DIR,
        options=options,
        password_file=PASSWORD_FILE,
        ctr=CTR,
        namespace=NAMESPACE,
        container=CONTAINER,
        password_line=shlex.quote(PASSWORD_LINE),
    )


def unit_file(s: Settings) -> str:
    return render(
        "kuboard/kuboard.service.j2",
        image=image(s),
        data_dir=DATA_DIR,
        ctr=CTR,
        namespace=NAMESPACE,
        container=CONTAINER,
        script=SCRIPT,
    )


def password_file(s: Settings) -> str:
    """ctr's --env-file: the initial admin password (secret)."""
    return f"{PASSWORD_VARIABLE}={s.kuboard_admin_password}\n"


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """{remote path: content} of the files the server's host gets (the password file only
    while its data directory is new, and only with kuboard_admin_password set)."""
    if not ctx.node.is_kuboard:
        return {}
    written = {SCRIPT: script(ctx), UNIT_FILE: unit_file(ctx.settings)}
    if ctx.settings.kuboard_admin_password:
        written[PASSWORD_FILE] = password_file(ctx.settings)
    return written


def pull_command(node: Node, s: Settings) -> str:
    reference = shlex.quote(image(s))
    why = shlex.quote(
        f"kuboard: pulling {image(s)} on {node.name} failed (the error above): the registry, "
        "or its mirror in registry_mirrors, must be reachable from the host"
    )
    return (
        f"{CTR} --namespace {NAMESPACE} images pull --hosts-dir {CERTS_DIR} {reference}"
        f" > /dev/null || {{ echo {why} >&2; false; }}"
    )


def wait_command(node: Node, s: Settings) -> str:
    """Until the server answers HTTP (any status) on its web port, at most ready_timeout."""
    url = f"http://127.0.0.1:{s.kuboard_web_port}/"
    why = shlex.quote(
        f"kuboard: the server on {node.name} did not answer HTTP on port {s.kuboard_web_port} "
        f"within {s.ready_timeout} s: see `journalctl -u {SERVICE}` on {node.name} (an image "
        "that does not start, or a port another service holds)"
    )
    probe = f"curl --silent --output /dev/null --max-time 5 {url}"
    return (
        f"timeout {s.ready_timeout} sh -c 'until {probe}; do sleep 2; done'"
        f" || {{ echo {why} >&2; false; }}"
    )


def busy_ports(s: Settings, listening: list[str]) -> list[str]:
    """What the server needs among the host's listening ports, each with its use."""
    uses = {
        s.kuboard_web_port: "web port, kuboard_web_port",
        s.kuboard_agent_port: "agent server port, kuboard_agent_port",
        **{port: "Kuboard's built-in etcd" for port in ETCD_PORTS},
    }
    return [f"{port}/tcp ({use})" for port, use in uses.items() if f"{port}/tcp" in listening]


def summary(nodes: tuple[Node, ...], s: Settings) -> list[str]:
    """The summary's Kuboard lines: console URL, user and password source, and while the
    cluster is not imported into a managed server, the steps to import it (no secret)."""
    url = server_url(nodes, s)
    managed = kuboard_host(nodes)
    if not url:
        return ["Kuboard: not configured"]
    if not managed:
        return [f"Kuboard: {url} (cluster {s.kuboard_cluster_name}, imported by agent)"]
    source = (
        "the kuboard_admin_password setting, given when its data directory was new"
        if s.kuboard_admin_password
        else f"Kuboard's default, {DEFAULT_PASSWORD}: change it at the first login"
    )
    lines = [f"Kuboard: console {url} on {managed.name}, user {ADMIN_USER}, password from {source}"]
    if not s.kuboard_agent_token:
        lines += [
            "Kuboard: this cluster is not imported yet; to import it:",
            f"  1. open {url} and log in as {ADMIN_USER}",
            "  2. 集群管理 (Clusters) > 添加集群 (Add cluster) > 以 agent 方式导入 (agent mode);"
            f" name it {s.kuboard_cluster_name} and confirm",
            "  3. from the `curl -k '...installAgentToKubernetes?token=TOKEN'` command the page"
            " shows, copy TOKEN",
            "  4. set kuboard_agent_token: TOKEN under settings: in the cluster file and run"
            " again: that run applies the agent",
        ]
    return lines


def import_pending(nodes: tuple[Node, ...], s: Settings) -> bool:
    """A managed server that the cluster is not imported into yet (no agent token)."""
    return kuboard_host(nodes) is not None and not s.kuboard_agent_token


@deploy("Kuboard server")
def converge():
    ctx = NodeContext.of(host)
    if not ctx.node.is_kuboard:
        return
    s, state = ctx.settings, host.get_fact(KuboardServerState)
    up = state["active"] and state["enabled"]
    if not state["active"]:
        from deploys.preflight.facts import PreflightState  # read by preflight: cached

        busy = busy_ports(s, host.get_fact(PreflightState)["listening"])
        if busy:
            raise OperationError(
                f"{host.name}: the Kuboard server needs port{'s' if len(busy) > 1 else ''} "
                f"{', '.join(busy)}, already in use by another service: stop it, or choose "
                "other ports"
            )
    for path in (DATA_DIR, CONFIG_DIR):
        files.directory(
            name=f"kuboard: create {path}", path=path, user="root", group="root", mode="700"
        )
    if image(s) not in state["images"]:
        server.shell(name="kuboard: pull server image", commands=[pull_command(ctx.node, s)])
    new_data = not state["initialised"]
    if new_data and s.kuboard_admin_password:
        secret.put(
            name="kuboard: write initial admin password",
            dest=PASSWORD_FILE,
            content=password_file(s),
        )
    written = [
        # /usr/local/sbin and systemd's unit directory always exist.
        write_root_file(path, content, mode, in_existing_dir=True, component="kuboard")
        for path, content, mode in (
            (SCRIPT, script(ctx), "755"),
            (UNIT_FILE, unit_file(s), "644"),
        )
    ]
    started = []
    if not up:
        started.append(
            systemd.service(
                name="kuboard: enable and start server",
                service=SERVICE,
                running=True,
                enabled=True,
                daemon_reload=True,
            )
        )
    else:
        started.append(
            server.shell(
                name="kuboard: restart server with new settings",
                commands=["systemctl daemon-reload", f"systemctl restart {SERVICE}"],
                _if=any_changed(*written),
            )
        )
    waited = server.shell(
        name="kuboard: wait for server",
        commands=[wait_command(ctx.node, s)],
        _if=any_changed(*started),
    )
    # Used once: from the server's first start, the data directory holds the admin user.
    remove = {
        "name": "kuboard: remove initial admin password",
        "commands": [f"rm -f {PASSWORD_FILE}"],
    }
    if new_data and s.kuboard_admin_password:
        server.shell(**remove, _if=waited.did_change)
    elif state["password_file"]:
        server.shell(**remove)
