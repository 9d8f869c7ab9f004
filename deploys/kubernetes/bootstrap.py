"""Bootstrapping: `kubeadm init` once, secure joins, and the admin kubeconfig.

Guards are the state kubeadm creates: the first control plane is initialized when it has
/etc/kubernetes/admin.conf, any other node has joined when it has
/etc/kubernetes/kubelet.conf. Only nodes without that state get the sandbox-image check, the
image pre-pull and the init or join.

Joins never reuse anything: when some node has to join, the first control plane creates a
fresh bootstrap token (and, when a control plane joins, uploads the control-plane
certificates under a fresh certificate key) into a root-only directory. Each joining node's
JoinConfiguration is built from them while the run executes — read from the first control
plane without printing, written root-only through stdin — and removed after the join; the
credentials directory is removed and the token deleted once every join ran (or by the next
run, when a killed run left them behind after its joins). Discovery is
pinned by the CA certificate hash. Control planes join one at a time, workers in parallel.

A node that is not in the cluster but keeps what an earlier join left (its cluster CA
certificate: kubelet.conf was removed, or a join stopped half-way) cannot join as it is:
kubeadm's preflight refuses the leftovers (and the old kubelet on its port), and the API
server still holds a Node of its name, Ready until the old kubelet's heartbeats stop. A
worker is reset (`kubeadm reset -f`, which stops the kubelet and empties
/etc/kubernetes/pki, manifests and /var/lib/kubelet), its stale Node object is deleted from
the first control plane, then it joins. /etc/cni/net.d is kept: the network plugin's
DaemonSet writes the same configuration again, and the node rejoins the same cluster with
the same plugin; iptables are kept too (the firewall's rules live there, and kube-proxy
resynchronizes its own). A control plane is never reset by the deploy (that removes its
stacked etcd member and data): the run is refused with the manual steps.

No secret is ever part of an operation name, a command line, a fact or a log line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from pathlib import Path

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationError, QuoteString, StringCommand, operation
from pyinfra.api.host import Host
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Home
from pyinfra.operations import server

from deploys import secret, versions
from deploys.context import NodeContext
from deploys.failure import fail, report
from deploys.kubernetes.kubeadm_config import (
    ADMIN_KUBECONFIG,
    CRI_SOCKET,
    INIT_CONFIG,
    JOIN_CONFIG,
    KUBELET_CONF,
    KUBERNETES_DIR,
    PLACEHOLDER_CREDENTIALS,
    JoinCredentials,
    join_file,
    joins,
    kubectl,
)
from deploys.runtime.facts import ContainerdState
from deploys.runtime.verify import loaded_sandbox_image
from deploys.settings import Settings

# What a join (or init) leaves on a node that later left the cluster: `kubeadm join`'s
# preflight refuses it ([ERROR FileAvailable--etc-kubernetes-pki-ca.crt]).
JOIN_LEFTOVER = f"{KUBERNETES_DIR}/pki/ca.crt"
# Root-only, on the first control plane, while a run joins nodes.
CREDENTIALS_DIR = f"{KUBERNETES_DIR}/join-credentials"
JOIN_COMMAND = f"{CREDENTIALS_DIR}/join-command"
CERTIFICATE_KEY = f"{CREDENTIALS_DIR}/certificate-key"
JOIN_TOKEN_TTL = "1h0m0s"

_TOKEN = re.compile(r"--token ([a-z0-9]{6}\.[a-z0-9]{16})(?:\s|$)")
_CA_CERT_HASH = re.compile(r"--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})(?:\s|$)")
_CERTIFICATE_KEY = re.compile(r"^([0-9a-f]{64})$", re.MULTILINE)
_RESET_HINT = (
    "kubeadm {action} failed: its message is above. Fix the cause; if it got past its "
    "preflight checks, run `kubeadm reset -f` on this node before running the deploy again."
)


def image_flags(settings: Settings) -> list[str]:
    """The flags that make `kubeadm config images ...` use the release and registry of the
    rendered ClusterConfiguration."""
    return [
        "--kubernetes-version",
        f"v{settings.kubernetes_version}",
        "--image-repository",
        settings.image_repository,
    ]


def _kubeadm(*args: str) -> StringCommand:
    return StringCommand("kubeadm", *map(QuoteString, args))


def sandbox_check(settings: Settings, loaded: str) -> StringCommand:
    """Fail, saying so, unless `loaded`, the sandbox image containerd loaded, is the pause
    image kubeadm of the pinned release expects (a mismatch leaves init or join hanging on
    "failed to get sandbox image")."""
    expected = _kubeadm("config", "images", "list", *image_flags(settings))
    message = (
        f"kubeadm v{settings.kubernetes_version} expects the sandbox image $expected but "
        "containerd is configured with ${loaded:-none}: make them agree (deploys/versions.py "
        "PAUSE_TAGS), then run the deploy again."
    )
    return StringCommand(
        f"loaded={shlex.quote(loaded)}",
        "&& expected=$(",
        expected,
        "| grep '/pause:')",
        '&& if [ "$expected" != "$loaded" ]; then echo',
        f'"{message}"',
        ">&2; exit 1; fi",
    )


@operation()
def sandbox_matches(settings: Settings, pending: bool):
    """Before init or join: containerd's sandbox image is the one kubeadm expects
    (sandbox_check), as containerd loaded it when the operation executes (after this run
    configured and restarted containerd).

    + settings: the node's settings
    + pending: the node is not in the cluster yet
    """
    if not pending:
        host.noop(f"{host.name} is in the cluster")
        return
    yield sandbox_check(settings, loaded_sandbox_image(host.get_fact(ContainerdState)["dump"]))


def pull_images(settings: Settings) -> StringCommand:
    """Pre-pull the control-plane images from the configured registry (or mirror)."""
    return _kubeadm("config", "images", "pull", *image_flags(settings), "--cri-socket", CRI_SOCKET)


def _with_hint(command: StringCommand, action: str) -> StringCommand:
    hint = _RESET_HINT.format(action=action)
    return StringCommand(command, "|| {", "echo", QuoteString(hint), ">&2; exit 1; }")


def _validated(settings: Settings, config: str, command: StringCommand) -> StringCommand:
    """`command`, after a strict check of `config` where this kubeadm has one."""
    if not versions.kubeadm_validates_config(settings.kubernetes_version):
        return command
    return StringCommand(_kubeadm("config", "validate", "--config", config), "&&", command)


def init_command(settings: Settings) -> StringCommand:
    """Validate the rendered configuration, then init; the bootstrap token and certificate
    key kubeadm would print stay unprinted."""
    init = _kubeadm(
        "init", "--config", INIT_CONFIG, "--skip-token-print", "--skip-certificate-key-print"
    )
    return _with_hint(_validated(settings, INIT_CONFIG, init), "init")


def join_command(settings: Settings) -> StringCommand:
    """Validate and join with the node's JoinConfiguration, then remove it (it holds the
    join secrets) whatever the outcome."""
    join = _validated(settings, JOIN_CONFIG, _kubeadm("join", "--config", JOIN_CONFIG))
    return StringCommand(
        _with_hint(join, "join"),
        "; status=$?; rm -f",
        QuoteString(JOIN_CONFIG),
        "; exit $status",
    )


def credentials_commands(certificate_key: bool) -> list[StringCommand]:
    """On the first control plane: a fresh bootstrap token (and CA certificate hash, as
    kubeadm prints them in a join command) and, for joining control planes, the
    control-plane certificates uploaded under a fresh certificate key, all into a root-only
    directory. Every secret goes from kubeadm's standard output into a file."""
    commands = [
        StringCommand("rm -rf", QuoteString(CREDENTIALS_DIR)),
        StringCommand("install -d -m 700", QuoteString(CREDENTIALS_DIR)),
        StringCommand(
            "umask 077 &&",
            _kubeadm(
                "token",
                "create",
                "--ttl",
                JOIN_TOKEN_TTL,
                "--description",
                "pyinfra-kubeadm join",
                "--print-join-command",
            ),
            ">",
            QuoteString(JOIN_COMMAND),
        ),
    ]
    if certificate_key:
        upload = _kubeadm(
            "init", "phase", "upload-certs", "--upload-certs", "--config", INIT_CONFIG
        )
        commands.append(
            StringCommand(
                "umask 077 &&",
                upload,
                "| grep -xE '[0-9a-f]{64}' >",
                QuoteString(CERTIFICATE_KEY),
            )
        )
    return commands


def cleanup_command() -> StringCommand:
    """Delete the bootstrap token (by its public id) and the credentials directory."""
    token_id = StringCommand(
        "$(sed -n 's/.*--token \\([a-z0-9]*\\)\\..*/\\1/p'", QuoteString(JOIN_COMMAND), ")"
    )
    return StringCommand(
        "kubeadm token delete",
        token_id,
        "; rm -rf",
        QuoteString(CREDENTIALS_DIR),
    )


def parse_credentials(text: str, control_plane: bool) -> JoinCredentials:
    """The credentials in the join command (and certificate key) read from the first
    control plane. Error messages never quote the text: it is secret."""
    token, ca_hash = _TOKEN.search(text), _CA_CERT_HASH.search(text)
    key = _CERTIFICATE_KEY.search(text)
    if not (token and ca_hash):
        raise ValueError("no bootstrap token and CA certificate hash found")
    if control_plane and not key:
        raise ValueError("no certificate key found")
    return JoinCredentials(token[1], ca_hash[1], key[1] if control_plane else "")


def read_credentials(source: Host, control_plane: bool) -> JoinCredentials:
    paths = [JOIN_COMMAND, CERTIFICATE_KEY] if control_plane else [JOIN_COMMAND]
    text = secret.output(
        StringCommand("cat", *map(QuoteString, paths)), "reading the join credentials", source
    )
    try:
        return parse_credentials(text, control_plane)
    except ValueError as exc:
        raise OperationError(
            f"the join credentials on {source.name} are unusable ({exc}): did "
            "`kubeadm: create join credentials` succeed there?"
        ) from None


@operation()
def join_configuration(ctx: NodeContext, source: str, pending: bool):
    """Write the node's JoinConfiguration, root only, with credentials read from `source`
    (the first control plane) when the run executes; nothing on a node in the cluster.

    + ctx: the joining node
    + source: inventory name of the first control plane
    + pending: the node has not joined yet
    """
    if not pending:
        host.noop(f"{ctx.node.name} is in the cluster")
        return
    credentials = PLACEHOLDER_CREDENTIALS  # planning: credentials exist once the run executes
    if host.state.is_executing:
        source_host = host.inventory.get_host(source)
        try:
            credentials = read_credentials(source_host, ctx.node.is_control_plane)
        except OperationError as exc:
            yield fail(str(exc))
            return
    yield secret.write_command(JOIN_CONFIG, join_file(ctx, credentials))


def kubeconfig_current(source_sha: str | None, dest: dict | None, dest_sha, owner: str) -> bool:
    """Whether an installed admin kubeconfig (File fact `dest`) is the source, owner-only."""
    return bool(
        source_sha
        and dest
        and (dest["mode"], dest["user"]) == (600, owner)
        and dest_sha == source_sha
    )


def install_kubeconfig_commands(home: str, owner: str) -> list[StringCommand]:
    kube_dir = f"{home}/.kube"
    group = StringCommand("$(id -gn", QuoteString(owner), ")")
    return [
        StringCommand(
            "install -d -m 700 -o", QuoteString(owner), "-g", group, QuoteString(kube_dir)
        ),
        StringCommand(
            "install -m 600 -o",
            QuoteString(owner),
            "-g",
            group,
            QuoteString(ADMIN_KUBECONFIG),
            QuoteString(f"{kube_dir}/config"),
        ),
    ]


def _kubeconfig_step(pending: bool, home: str, owner: str) -> list[StringCommand]:
    dest = f"{home}/.kube/config"
    current = kubeconfig_current(
        host.get_fact(Sha1File, path=ADMIN_KUBECONFIG),
        host.get_fact(File, path=dest),
        host.get_fact(Sha1File, path=dest),
        owner,
    )
    return [] if current and not pending else install_kubeconfig_commands(home, owner)


def _admin_home(user: str) -> str:
    home = host.get_fact(Home, user=user)
    if not home or not home.startswith("/"):
        raise OperationError(f"admin_user {user!r} does not exist on {host.name}")
    return home


def local_copy_current(path: Path, remote_sha: str | None) -> bool:
    """Whether the local kubeconfig copy exists, owner-only, with the remote's content."""
    if not remote_sha or not path.is_file() or path.stat().st_mode & 0o777 != 0o600:
        return False
    return hashlib.sha1(path.read_bytes()).hexdigest() == remote_sha


def _save_admin_kubeconfig(state, host, dest: str) -> bool:
    try:
        text = secret.output(
            StringCommand("cat", QuoteString(ADMIN_KUBECONFIG)), "reading admin.conf", host
        )
    except OperationError as exc:
        return report(host, str(exc))
    path = Path(dest)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text if text.endswith("\n") else f"{text}\n")
    part.replace(path)
    return True


@operation()
def fetch_admin_kubeconfig(dest: str, pending: bool):
    """Copy the admin kubeconfig to `dest` on the machine running pyinfra, mode 0600 (read
    without printing, never through a world-readable temporary file).

    + dest: local path (~ expanded; relative to the working directory); empty: none
    + pending: the cluster is initialized by this run
    """
    if not dest:
        host.noop("no fetch_kubeconfig on this node")
        return
    path = Path(dest).expanduser()
    if not pending and local_copy_current(path, host.get_fact(Sha1File, path=ADMIN_KUBECONFIG)):
        host.noop(f"{dest} is up to date")
        return
    yield FunctionCommand(_save_admin_kubeconfig, (str(path),), {})


def in_cluster(ctx: NodeContext, node_host: Host) -> bool:
    """Whether the node of `node_host` (a node of `ctx`'s cluster) has the state kubeadm
    creates: admin.conf on the first control plane (init), kubelet.conf elsewhere (join)."""
    first = node_host.name == ctx.first_control_plane.name
    return bool(node_host.get_fact(File, path=ADMIN_KUBECONFIG if first else KUBELET_CONF))


def has_leftovers(node_host: Host) -> bool:
    """Whether a node not in the cluster keeps what an earlier join or init left."""
    return bool(node_host.get_fact(File, path=JOIN_LEFTOVER))


def control_plane_refusal(name: str, first: bool) -> str:
    """Why the deploy will not touch a control plane that left the cluster but keeps its
    kubeadm state, and what the operator does instead."""
    missing = ADMIN_KUBECONFIG if first else KUBELET_CONF
    restore = (
        f"If the cluster still runs there, restore {missing} (`kubeadm init phase kubeconfig "
        f"admin --config {INIT_CONFIG}`) and run the deploy again. Otherwise, "
        if first
        else "To rejoin it: "
    )
    return (
        f"{name} is a control plane without {missing} but with {JOIN_LEFTOVER} left from "
        "an earlier init or join. The deploy does not reset a control plane: `kubeadm reset` "
        "removes its stacked etcd member and data. "
        f"{restore}on a healthy control plane `kubectl drain {name} --ignore-daemonsets "
        f"--delete-emptydir-data`, on {name} `kubeadm reset -f`, then `kubectl delete node "
        f"{name}`, then run the deploy again."
    )


def reset_command() -> StringCommand:
    return _kubeadm("reset", "-f", "--cri-socket", CRI_SOCKET)


def delete_node_command(name: str) -> StringCommand:
    """On the first control plane, with the admin kubeconfig."""
    return kubectl("delete", "node", name, "--ignore-not-found")


def bootstrap_node(ctx: NodeContext, pending: bool, record: list | None = None) -> None:
    """Init or join this node, then place the admin kubeconfig. Every node runs the same
    operations, each with nothing to do where it does not apply.

    pending: this node is not in the cluster yet (see in_cluster).
    record: commands run right after a control plane's init or join succeeded, in the same
    operation (deploys/kubernetes/reconfigure.py records what it was set up from).
    """
    record = list(record or [])
    s = ctx.settings
    node, first = ctx.node, ctx.first_control_plane
    is_first, joining = ctx.is_first_control_plane, pending and joins(ctx)
    # What the first control plane must prepare for the nodes that join in this run.
    to_join, stale = [], []
    if is_first:
        others = [n for n in ctx.members if n.name != first.name]
        to_join = [n for n in others if not in_cluster(ctx, host.inventory.get_host(n.name))]
        stale = [
            n
            for n in to_join
            if not n.is_control_plane and has_leftovers(host.inventory.get_host(n.name))
        ]
    # Refused while planning, before any host changes (ARCHITECTURE.md, failing, rule 2).
    left_over = pending and has_leftovers(host)
    if left_over and node.is_control_plane:
        raise OperationError(control_plane_refusal(node.name, is_first))

    sandbox_matches(name="kubeadm: check sandbox image", settings=s, pending=pending)
    server.shell(
        name="kubeadm: pull control-plane images",
        commands=[pull_images(s)] if pending and node.is_control_plane else [],
    )
    server.shell(
        name="kubeadm: initialize cluster",
        commands=[init_command(s), *record] if pending and is_first else [],
    )
    server.shell(
        name="kubeadm: reset leftovers of an earlier join",
        commands=[reset_command()] if left_over else [],
    )
    server.shell(
        name="kubeadm: delete stale node objects",
        commands=[delete_node_command(n.name) for n in stale],
    )
    server.shell(
        name="kubeadm: create join credentials",
        commands=credentials_commands(any(n.is_control_plane for n in to_join)) if to_join else [],
    )
    join_configuration(
        name="kubeadm: write join configuration", ctx=ctx, source=first.name, pending=joining
    )
    server.shell(
        name="kubeadm: join control plane",
        commands=[join_command(s), *record] if joining and node.is_control_plane else [],
        _serial=True,
    )
    server.shell(
        name="kubeadm: join worker",
        commands=[join_command(s)] if joining and not node.is_control_plane else [],
    )
    # Credentials a killed run left behind (every join done, the removal not) go as well.
    unremoved = is_first and not to_join and bool(host.get_fact(Directory, path=CREDENTIALS_DIR))
    server.shell(
        name="kubeadm: remove join credentials",
        commands=[cleanup_command()] if to_join or unremoved else [],
    )
    server.shell(
        name="kubeadm: install admin kubeconfig for root",
        commands=_kubeconfig_step(pending, "/root", "root") if node.is_control_plane else [],
    )
    server.shell(
        name="kubeadm: install admin kubeconfig for admin_user",
        commands=_kubeconfig_step(pending, _admin_home(s.admin_user), s.admin_user)
        if node.is_control_plane and s.admin_user
        else [],
    )
    fetch_admin_kubeconfig(
        name="kubeadm: fetch admin kubeconfig",
        dest=s.fetch_kubeconfig if is_first else "",
        pending=pending,
    )
