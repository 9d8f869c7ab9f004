"""The lab: systemd-nspawn nodes on a private bridge, described as a cluster file.

    lab = Lab.up(nodes=3, suites=["bookworm", "trixie", "sid"], control_planes=1)
    lab.ssh("lab2", "apt-get install -y containerd")
    lab.restart("lab2")   # a power cycle
    lab.down()

`up` also starts the stand-ins of the whole-cluster rehearsal (test doubles): the Kubernetes
apt repository with stand-in kubeadm, kubelet and kubectl packages of every release asked
for, the control plane they answer from, and a Kuboard server; the cluster file it writes
points at them, so that ``CLUSTER=inventory/lab.yaml pyinfra -y inventory.py
deploys/cluster.py`` runs as it is.

All state lives in ``config.STATE_DIR`` (``state.json`` records each node's suite and the
PIDs of everything started), so the command line and the tests see the same lab.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from deploys.settings import Settings
from tests.lab import aptsources, config, host, k8s_repo, registry, rootfs
from tests.lab.host_packages import HOST_PACKAGES

BOOT_TIMEOUT = 120
# `systemctl is-system-running` once boot has finished; degraded: some unit failed.
READY_STATES = ("running", "degraded")
PROXY_SCRIPT = Path(__file__).with_name("proxy.py")
CONTROL_PLANE_SCRIPT = Path(__file__).with_name("stand_in_control_plane.py")
KUBOARD_SCRIPT = config.REPO_ROOT / "tests" / "stand_ins" / "kuboard_server.py"
# The lab's services answer on its bridge: never through a proxy of this machine.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
INVENTORY_HEADER = "# Written by `python -m tests.lab up`; describes the lab nodes as a cluster.\n"


class LabUnavailable(RuntimeError):
    """This machine cannot run the lab (not root, or systemd-nspawn cannot be installed)."""


@dataclass
class Node:
    name: str
    address: str
    suite: str
    pid: int | None = None  # of its systemd-nspawn process

    @property
    def dir(self) -> Path:
        return config.STATE_DIR / "nodes" / self.name

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def veth(self) -> str:
        """Host side of the node's network link, as systemd-nspawn names it."""
        return f"vb-{self.name}"

    @property
    def running(self) -> bool:
        return host.is_running(self.pid, str(self.rootfs))


@dataclass
class Service:
    """A background process of the lab on this machine (the apt proxy, the registry)."""

    pid: int
    marker: str  # an argument of its command line, to recognise it by


def _nspawn_pids(node: Node) -> set[int]:
    """The node's systemd-nspawn processes: the recorded one and any other booting its rootfs."""
    marker = str(node.rootfs)
    pids = set(host.pids_with_argument(marker))
    if host.is_running(node.pid, marker):
        pids.add(node.pid)
    return pids


def _power_cut(node: Node) -> None:
    """Kill the node at once, like pulling its plug, and wait until its network link is gone.

    Killing systemd-nspawn alone would leave the container running; killing the
    container's init (nspawn's child) ends every process in the node's PID namespace.
    """
    for pid in _nspawn_pids(node):
        for init in host.children(pid):
            os.kill(init, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
    host.wait_until(lambda: not _nspawn_pids(node), 10)
    if not host.wait_until(lambda: not host.link_exists(node.veth), 10):
        host.delete_link(node.veth)
    host.remove_tree(Path("/run/systemd/nspawn/propagate") / node.name)
    if (root := host.cgroup2_mount()) is not None:
        host.remove_cgroup(root.joinpath(*_node_cgroup(node)))


def _power_off(nodes: list[Node]) -> None:
    """Shut nodes down cleanly (SIGTERM makes nspawn halt them); cut power where that hangs."""
    for node in nodes:
        for pid in _nspawn_pids(node):
            os.kill(pid, signal.SIGTERM)
    host.wait_until(lambda: not any(_nspawn_pids(node) for node in nodes), 30)
    for node in nodes:
        _power_cut(node)


def _boot(node: Node) -> None:
    """Start the node from its rootfs in the background and record its nspawn PID.

    Nodes get the unified cgroup (v2) hierarchy whatever the host mounts: systemd from
    258 on (sid) refuses to boot on cgroup v1, and v2 is what current hosts run. Each node
    is started in a cgroup of its own (``_node_cgroup``): with --keep-unit, systemd-nspawn
    makes the container's cgroup tree below the cgroup it was started in, so nodes started
    from one cgroup would share one tree, and one node's systemd stopping a unit (say
    containerd.service) would kill the same unit's processes in the other nodes.
    """
    node.pid = host.spawn(
        [
            "systemd-nspawn",
            "--boot",
            "--directory",
            str(node.rootfs),
            "--machine",
            node.name,
            "--register=no",
            "--keep-unit",
            f"--network-bridge={config.BRIDGE}",
            "--console=read-only",
        ],
        node.dir / "console.log",
        env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
        cgroup=host.make_cgroup(*_node_cgroup(node)),
    )


def _node_cgroup(node: Node) -> tuple[str, str]:
    """The node's own cgroup, relative to the cgroup v2 root: one directory per lab."""
    return (f"pyinfra-kubeadm-{config.LAB}", node.name)


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def _locked() -> Iterator[None]:
    """Only one `up`, `down` or `restart` at a time on this machine."""
    config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(config.CACHE_DIR / "lab.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Lab:
    state_path = config.STATE_DIR / "state.json"
    key_path = config.STATE_DIR / "id_ed25519"
    known_hosts_path = config.STATE_DIR / "known_hosts"
    inventory_path = config.INVENTORY_PATH

    def __init__(self, nodes: list[Node], services: dict[str, Service]):
        self.nodes = nodes
        self.services = services

    @classmethod
    def load(cls) -> Lab:
        """The lab as recorded on this machine (no nodes if there is none)."""
        if not cls.state_path.is_file():
            return cls([], {})
        state = json.loads(cls.state_path.read_text())
        return cls(
            [Node(**node) for node in state["nodes"]],
            {name: Service(**service) for name, service in state["services"].items()},
        )

    def save(self) -> None:
        state = {
            "nodes": [asdict(node) for node in self.nodes],
            "services": {name: asdict(service) for name, service in self.services.items()},
        }
        partial = self.state_path.with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=2) + "\n")
        partial.rename(self.state_path)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LookupError(f"no lab node {name!r}; nodes: {', '.join(n.name for n in self.nodes)}")

    # --- bringing the lab up ------------------------------------------------------------

    @classmethod
    def up(
        cls,
        nodes: int = 3,
        suites: Sequence[str] = ("bookworm",),
        control_planes: int = 1,
        kubernetes_versions: Sequence[str] = (),
    ) -> Lab:
        """Make the lab exactly ``nodes`` running nodes, suites assigned in order (cycling),
        the first ``control_planes`` of them control planes in its cluster file, with the
        stand-ins serving ``kubernetes_versions`` (default: the default release; the
        cluster file pins the first).

        Running nodes that already match are kept; others are added, rebuilt or removed.
        """
        started = time.monotonic()
        if nodes < 1:
            raise ValueError(f"a lab needs at least one node, not {nodes}")
        if not 1 <= control_planes <= nodes:
            raise ValueError(f"control planes: between 1 and {nodes}, not {control_planes}")
        kubernetes_versions = list(kubernetes_versions) or [Settings().kubernetes_version]
        if not suites or not set(suites) <= set(config.SUITES):
            raise ValueError(f"suites must be among {', '.join(config.SUITES)}, not {suites}")
        _check_can_run()
        wanted = [
            Node(config.node_name(i), config.node_address(i), suites[(i - 1) % len(suites)])
            for i in range(1, nodes + 1)
        ]
        sources = aptsources.host_sources()
        mirrors = aptsources.debian_mirrors(sources, aptsources.host_codename())
        with _locked():
            base_started = time.monotonic()
            rootfs.ensure_bases([n.suite for n in wanted], mirrors.archive.uri)
            base_seconds = time.monotonic() - base_started
            config.STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            lab = cls.load()
            lab._ensure_key()
            host.ensure_bridge(config.BRIDGE, config.BRIDGE_ADDRESS, config.NETWORK.prefixlen)
            lab.ensure_service(
                "proxy",
                [sys.executable, str(PROXY_SCRIPT), "--listen", config.PROXY_ENDPOINT]
                + [arg for e in aptsources.allowed_endpoints(sources) for arg in ("--allow", e)],
                marker=config.PROXY_ENDPOINT,
                port=config.PROXY_PORT,
            )
            image_mirrors = registry.mirror_pause_images(lab)
            stand_ins = lab._start_stand_ins(kubernetes_versions)
            lab._converge_nodes(wanted, mirrors)
            lab._write_known_hosts()
            lab._wait_ready(lab.nodes)
            lab._write_inventory(image_mirrors, control_planes, stand_ins)
        names = " ".join(node.name for node in lab.nodes)
        print(
            f"lab up in {time.monotonic() - started:.1f} s"
            f" (base root filesystems {base_seconds:.1f} s): {names}",
            flush=True,
        )
        return lab

    def _ensure_key(self) -> None:
        if not self.key_path.is_file():
            host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pyinfra-kubeadm-lab",
                      "-f", str(self.key_path)])  # fmt: skip

    def ensure_service(self, name: str, argv: list[str], marker: str, port: int) -> None:
        """Start background process ``name`` unless it runs; wait until it listens on ``port``.

        ``marker`` is one of its arguments, unique to the lab; `down` stops the process.
        """
        service = self.services.get(name)
        if service and service.marker == marker and host.is_running(service.pid, marker):
            return
        if service:
            host.stop_process(service.pid, service.marker)
        log = config.STATE_DIR / f"{name}.log"
        self.services[name] = Service(host.spawn(argv, log, cwd=config.STATE_DIR), marker)
        self.save()
        if not host.wait_until(lambda: _port_open(config.BRIDGE_ADDRESS, port), 30):
            raise RuntimeError(f"{name} does not listen on port {port}; see {log}")

    def _start_stand_ins(self, kubernetes_versions: list[str]) -> dict:
        """Build the stand-in repository (unless it holds these releases already) and run it,
        the stand-in control plane and the stand-in Kuboard server (http, and https with a
        self-signed certificate) on the bridge; the
        cluster file's settings that point at them."""
        revision = Settings().kubernetes_package_revision
        workdir = config.STATE_DIR / "k8s-repo"
        recipe = json.dumps({"versions": kubernetes_versions, "revision": revision,
                             "control_plane": config.STAND_IN_API_URL,
                             "packaging": Path(k8s_repo.__file__).read_text(),
                             "tools": k8s_repo.TOOLS_SOURCE.read_text()})  # fmt: skip
        marker = workdir / "recipe.json"
        if not (marker.is_file() and marker.read_text() == recipe):
            host.remove_tree(workdir)
            workdir.mkdir()
            k8s_repo.build_repository(workdir, kubernetes_versions, revision,
                                      config.STAND_IN_API_URL)  # fmt: skip
            marker.write_text(recipe)
        repo_root = workdir / "repo"
        self.ensure_service(
            "k8s-repo",
            [sys.executable, "-m", "http.server", str(config.STAND_IN_REPO_PORT),
             "--bind", config.BRIDGE_ADDRESS, "--directory", str(repo_root)],
            marker=str(repo_root),
            port=config.STAND_IN_REPO_PORT,
        )  # fmt: skip
        state = config.STATE_DIR / "control-plane.json"
        self.ensure_service(
            "control-plane",
            [sys.executable, str(CONTROL_PLANE_SCRIPT), "--listen",
             f"{config.BRIDGE_ADDRESS}:{config.STAND_IN_API_PORT}", "--state", str(state)],
            marker=str(state),
            port=config.STAND_IN_API_PORT,
        )  # fmt: skip
        token_file = config.STATE_DIR / "kuboard-token"
        if not token_file.is_file():
            descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(16))
        self.ensure_service(
            "kuboard",
            [sys.executable, str(KUBOARD_SCRIPT), "--listen",
             f"{config.BRIDGE_ADDRESS}:{config.STAND_IN_KUBOARD_PORT}",
             "--cluster-name", config.KUBOARD_CLUSTER_NAME, "--token-file", str(token_file)],
            marker=str(token_file),
            port=config.STAND_IN_KUBOARD_PORT,
        )  # fmt: skip
        self.ensure_service(
            "kuboard-https",
            [sys.executable, str(KUBOARD_SCRIPT), "--listen",
             f"{config.BRIDGE_ADDRESS}:{config.STAND_IN_KUBOARD_TLS_PORT}", "--tls",
             "--cluster-name", config.KUBOARD_CLUSTER_NAME, "--token-file", str(token_file)],
            marker=f"{config.BRIDGE_ADDRESS}:{config.STAND_IN_KUBOARD_TLS_PORT}",
            port=config.STAND_IN_KUBOARD_TLS_PORT,
        )  # fmt: skip
        return {
            "kubernetes_version": kubernetes_versions[0],
            "kubernetes_package_revision": revision,
            "kubernetes_apt_repo": f"http://{config.BRIDGE_ADDRESS}:{config.STAND_IN_REPO_PORT}",
            "kuboard_server": f"http://{config.BRIDGE_ADDRESS}:{config.STAND_IN_KUBOARD_PORT}",
            "kuboard_cluster_name": config.KUBOARD_CLUSTER_NAME,
            "kuboard_agent_token": token_file.read_text().strip(),
        }

    def _converge_nodes(self, wanted: list[Node], mirrors: aptsources.DebianMirrors) -> None:
        """Remove nodes that are not wanted as they are, create and boot the missing ones."""
        public_key = Path(f"{self.key_path}.pub").read_text()
        keep = {(n.name, n.address, n.suite) for n in wanted}
        unwanted = [n for n in self.nodes if (n.name, n.address, n.suite) not in keep]
        _power_off(unwanted)
        for node in unwanted:
            print(f"removed {node.name} ({node.suite})", flush=True)
            host.remove_tree(node.dir)
        current = {n.name: n for n in self.nodes if (n.name, n.address, n.suite) in keep}
        self.nodes = [current.get(n.name, n) for n in wanted]
        self.save()
        for node in self.nodes:
            if not node.rootfs.is_dir():
                rootfs.create_node_rootfs(
                    node.rootfs,
                    node.suite,
                    node.name,
                    node.address,
                    public_key,
                    aptsources.node_sources_list(node.suite, mirrors),
                )
            if not node.running:
                _power_cut(node)  # anything left of an earlier boot
                print(f"booting {node.name} ({node.suite}, {node.address})", flush=True)
                _boot(node)
                self.save()

    def _write_known_hosts(self) -> None:
        lines = [
            f"{node.name},{node.address} {rootfs.host_public_key(node.rootfs)}\n"
            for node in self.nodes
        ]
        self.known_hosts_path.write_text("".join(lines))

    def _wait_ready(self, nodes: list[Node]) -> None:
        """Wait until each node answers SSH and systemd has finished booting it."""
        for node in nodes:
            state = self._wait_booted(node)
            if state not in READY_STATES:
                console = (node.dir / "console.log").read_text(errors="replace")
                tail = "\n".join(console.splitlines()[-20:])
                raise RuntimeError(
                    f"{node.name} did not boot within {BOOT_TIMEOUT} s ({state});"
                    f" its console ended with:\n{tail}"
                )

    def _wait_booted(self, node: Node) -> str:
        """Poll the node over SSH until systemd has finished booting; its last system state."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = "no SSH answer"
        while node.running and time.monotonic() < deadline:
            try:
                result = self.ssh(
                    node.name,
                    "systemctl is-system-running --wait",
                    check=False,
                    timeout=max(1.0, deadline - time.monotonic()),
                )
            except subprocess.TimeoutExpired:
                return "still booting"
            state = result.stdout.strip() or result.stderr.strip()
            if state in READY_STATES:
                return state
            time.sleep(0.5)
        return state if node.running else "systemd-nspawn exited"

    def _write_inventory(
        self, image_mirrors: dict[str, list[str]], control_planes: int, stand_ins: dict
    ) -> None:
        """The cluster file of the lab (root only: it holds the stand-in Kuboard's token):
        the first ``control_planes`` nodes are control planes, the rest workers; with more
        than one, the stand-in control plane's address is their control_plane_endpoint.
        Images come through the lab's registry (``image_mirrors``: registry_mirrors), the
        Kubernetes packages, control plane and Kuboard server are the stand-ins."""
        hosts = "".join(
            f"  - name: {node.name}\n"
            f"    address: {node.address}\n"
            f"    roles: [{'control_plane' if i < control_planes else 'worker'}]\n"
            for i, node in enumerate(self.nodes)
        )
        settings = {
            "ssh_user": "root",
            "ssh_port": 22,
            "ssh_key": str(self.key_path),
            "ssh_known_hosts_file": str(self.known_hosts_path),
            "registry_mirrors": image_mirrors,
            **stand_ins,
        }
        if control_planes > 1:
            settings["control_plane_endpoint"] = (
                f"{config.BRIDGE_ADDRESS}:{config.STAND_IN_API_PORT}"
            )
        lines = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in settings.items())
        self.inventory_path.parent.mkdir(exist_ok=True)
        partial = self.inventory_path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(f"{INVENTORY_HEADER}hosts:\n{hosts}settings:\n{lines}")
        partial.rename(self.inventory_path)

    def control_plane_state(self) -> dict:
        """The stand-in control plane's state: cluster (without its CA key), nodes, tokens,
        applied objects, the derived pods, which nodes are Ready, and every bootstrap token
        and certificate key it issued (for the tests that look for leaked secrets)."""
        with _DIRECT.open(f"{config.STAND_IN_API_URL}/v1/state", timeout=10) as answer:
            return json.loads(answer.read())

    def reset_control_plane(self) -> None:
        """Forget the stand-in cluster (the nodes keep their files: `kubeadm reset` them)."""
        request = urllib.request.Request(f"{config.STAND_IN_API_URL}/v1/reset", data=b"{}")
        with _DIRECT.open(request, timeout=10):
            pass

    # --- using the lab ------------------------------------------------------------------

    def ssh_argv(self, name: str) -> list[str]:
        """``ssh`` to the node as root, verified against the lab's known_hosts, no prompts."""
        return [
            "ssh",
            "-F", "/dev/null",
            "-i", str(self.key_path),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=3",
            "-o", "LogLevel=ERROR",
            f"root@{self.node(name).address}",
        ]  # fmt: skip

    def ssh(
        self, name: str, command: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """Run a shell command on a node; raise with its output if ``check`` and it fails."""
        return host.run([*self.ssh_argv(name), command], check=check, timeout=timeout)

    def restart(self, name: str) -> None:
        """Power-cycle a node: kill it hard, boot the same rootfs, wait until it is up."""
        node = self.node(name)
        if not node.rootfs.is_dir():
            raise LookupError(f"{name} was never created; run `python -m tests.lab up`")
        with _locked():
            _power_cut(node)
            _boot(node)
            self.save()
        self._wait_ready([node])

    def stop(self, name: str) -> None:
        """Power a node off at once, like pulling its plug; `restart` or `up` boots it."""
        node = self.node(name)
        with _locked():
            _power_cut(node)

    def status(self) -> list[dict]:
        """One row per node: name, suite, address, pid, running, ssh (answers SSH)."""
        return [
            {
                **asdict(node),
                "running": node.running,
                "ssh": node.running
                and self.ssh(node.name, "true", check=False, timeout=10).returncode == 0,
            }
            for node in self.nodes
        ]

    # --- taking it down -----------------------------------------------------------------

    def down(self) -> None:
        """Stop every node and service and remove all the lab created but the cached bases."""
        with _locked():
            on_disk = config.STATE_DIR / "nodes"
            recorded = {node.name for node in self.nodes}
            # Nodes on disk that the state does not record (it was lost): stopped by name.
            leftovers = [
                Node(path.name, "", "")
                for path in (on_disk.iterdir() if on_disk.is_dir() else [])
                if path.name not in recorded
            ]
            _power_off(self.nodes + leftovers)
            for service in self.services.values():
                host.stop_process(service.pid, service.marker)
            if (root := host.cgroup2_mount()) is not None:
                host.remove_cgroup(root / f"pyinfra-kubeadm-{config.LAB}")
            host.delete_link(config.BRIDGE)
            self.inventory_path.unlink(missing_ok=True)
            host.remove_tree(config.STATE_DIR)
            self.nodes, self.services = [], {}
        print("lab down", flush=True)


def _check_can_run() -> None:
    """Raise LabUnavailable unless this machine can run nodes, installing what is missing."""
    if os.geteuid() != 0:
        raise LabUnavailable("the lab needs root (systemd-nspawn, a bridge, debootstrap)")
    try:
        host.ensure_packages(list(HOST_PACKAGES))
    except RuntimeError as exc:
        raise LabUnavailable(f"cannot install the lab's host packages: {exc}") from None
    if not shutil.which("systemd-nspawn"):
        raise LabUnavailable("systemd-nspawn is not available on this machine")
