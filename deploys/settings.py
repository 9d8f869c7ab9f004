"""The one data model: every setting, its single default, and the checks on a cluster file.

A cluster file (YAML) overrides these defaults cluster-wide under ``settings:`` and per host
under ``hosts[].settings``. Nothing else in the project defines a default.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploys import versions

CLUSTER = "cluster"  # one value for the whole cluster: only under `settings:`
HOST = "host"  # may differ between machines: under `settings:` or `hosts[].settings`
SCOPES = (CLUSTER, HOST)


def setting(default: Any, scope: str, meaning: str, *, secret: bool = False) -> Any:
    """A field of Settings: its one default, its scope, what it means (the README's text),
    and whether it is a secret (never printed, never in world-readable files)."""
    assert scope in SCOPES, scope
    metadata = {"scope": scope, "meaning": " ".join(meaning.split()), "secret": secret}
    if isinstance(default, (list, dict)):
        return field(
            default_factory=lambda: copy.deepcopy(default), repr=not secret, metadata=metadata
        )
    return field(default=default, repr=not secret, metadata=metadata)


# The README's settings tables: each heading starts at the setting named here.
SECTIONS = {
    "ssh_user": "Connection (pyinfra's own SSH data keys)",
    "kubernetes_version": "Kubernetes",
    "containerd_source": "Container runtime",
    "time_sync": "Operating system",
    "flannel_version": "Add-ons",
}


@dataclass(frozen=True)
class Settings:
    """The settings of one host: defaults < cluster file `settings:` < `hosts[].settings`.
    Secrets never show in its repr or JSON form (`to_json`, what pyinfra prints)."""

    ssh_user: str = setting("root", HOST, "SSH login user.")
    ssh_port: int = setting(22, HOST, "SSH port of the host.")
    ssh_key: str = setting("", HOST, "Private key file; empty uses the SSH agent / default keys.")
    ssh_known_hosts_file: str = setting(
        "",
        HOST,
        """known_hosts file that host keys are verified against, strictly: an unknown or
        changed key is not connected to. Empty: pyinfra's default, ~/.ssh/known_hosts with
        the key of a host not seen before added (accept-new).""",
    )
    sudo: bool = setting(
        False,
        HOST,
        """Escalate with sudo (needed when ssh_user is not root, e.g. Vagrant's
        "vagrant").""",
    )

    kubernetes_version: str = setting(
        "1.35.9",
        CLUSTER,
        """Exact Kubernetes release (major.minor.patch) for kubeadm/kubelet/kubectl and the
        control plane. Default 1.35.9 (released 2026-09-15): 1.35 is the newest minor that
        still supports containerd 1.x, which Debian 12/13 and Ubuntu 20.04 ship as their
        containerd package (1.36 and later need containerd 2.x); upstream patches it until
        2027-02-28 (1.34 reached end of life on 2026-10-27); kubeadm config API v1beta4.
        From 1.35 the kubelet refuses cgroup v1 hosts: Ubuntu 20.04 needs booting with
        systemd.unified_cgroup_hierarchy=1 or 1.34. Preflight refuses both mismatches before
        any change.""",
    )
    kubernetes_package_revision: str = setting(
        "1.1",
        CLUSTER,
        """Build revision of the pkgs.k8s.io packages: the pinned apt version is
        `<kubernetes_version>-<revision>`, e.g. 1.35.9-1.1; a rebuilt release can carry
        another revision (`apt-cache madison kubeadm` lists them).""",
    )
    kubernetes_apt_repo: str = setting(
        "https://pkgs.k8s.io/core:/stable:",
        CLUSTER,
        """Base of the per-minor Kubernetes apt repository; "/v1.NN/deb/" is appended.
        Mirrors: e.g. https://mirrors.aliyun.com/kubernetes-new/core/stable""",
    )
    image_repository: str = setting(
        "registry.k8s.io",
        CLUSTER,
        "Registry holding the control-plane images and the pause (sandbox) image.",
    )
    pod_subnet: str = setting(
        "10.244.0.0/16", CLUSTER, "Pod network (IPv4); flannel's network is this one."
    )
    service_subnet: str = setting("10.96.0.0/12", CLUSTER, "Service network.")
    dns_domain: str = setting("cluster.local", CLUSTER, "Cluster DNS domain.")
    control_plane_endpoint: str = setting(
        "",
        CLUSTER,
        """"host:port" of the API server for HA (a load balancer or VIP of your own); empty
        uses the load balancer of api_load_balancer, else the first control plane's address
        and api_port. Required with more than one control plane and api_load_balancer
        none.""",
    )
    api_port: int = setting(6443, CLUSTER, "Port the API server listens on.")
    api_load_balancer: str = setting(
        "",
        CLUSTER,
        """The load balancer in front of the API servers (deploys/loadbalancer): "local"
        (haproxy on every node on 127.0.0.1:api_load_balancer_port, reached through a name
        in /etc/hosts), "vip" (keepalived holds api_vip on the control planes, haproxy
        beside it) or "none" (control_plane_endpoint as given). Empty: "local" with several
        control planes and no control_plane_endpoint, else "none".""",
    )
    api_load_balancer_port: int = setting(
        8443,
        CLUSTER,
        """Port haproxy listens on with api_load_balancer local or vip (the cluster's
        endpoint port); must differ from api_port, which the API servers hold.""",
    )
    api_vip: str = setting(
        "",
        CLUSTER,
        """Virtual IPv4 address keepalived moves between the control planes
        (api_load_balancer vip): unused, in the control planes' subnet.""",
    )
    vrrp_interface: str = setting(
        "",
        HOST,
        """Network interface keepalived holds api_vip on and sends VRRP from (the one with
        the node's address); required on control planes with api_load_balancer vip.""",
    )
    vrrp_router_id: int = setting(
        51,
        CLUSTER,
        """VRRP virtual router id (1-255) of api_vip: unique among the VRRP routers of the
        network.""",
    )
    vrrp_password: str = setting(
        "",
        CLUSTER,
        """VRRP password of api_vip (1-8 characters: keepalived's PASS authentication uses
        8); required with api_load_balancer vip. Secret.""",
        secret=True,
    )
    haproxy_version: str = setting(
        "",
        HOST,
        """Exact apt version of the haproxy package to pin (api_load_balancer local or vip);
        empty takes the version the release's archive offers. Held either way.""",
    )
    keepalived_version: str = setting(
        "",
        HOST,
        """Exact apt version of the keepalived package to pin (api_load_balancer vip); empty
        takes the version the release's archive offers. Held either way.""",
    )
    cert_sans: list = setting(
        [], CLUSTER, "Extra subject alternative names for the API server certificate."
    )
    kube_proxy_mode: str = setting(
        "iptables",
        CLUSTER,
        """kube-proxy mode: "iptables", "nftables" (Kubernetes 1.33 and later; kernel 5.13 and
        later) or "ipvs" (deprecated from Kubernetes 1.35: a warning).""",
    )
    control_plane_taint: bool = setting(
        True,
        CLUSTER,
        """Keep the control-plane NoSchedule taint (false lets workloads run on control
        planes).""",
    )
    image_gc_high_threshold: int = setting(
        85, CLUSTER, "Kubelet image garbage collection starts above this disk usage percent."
    )
    image_gc_low_threshold: int = setting(
        80,
        CLUSTER,
        """Kubelet image garbage collection frees disk down to this usage percent (below
        image_gc_high_threshold).""",
    )
    container_log_max_size: str = setting(
        "10Mi", CLUSTER, "Size at which the kubelet rotates a container's log, like 10Mi."
    )
    container_log_max_files: int = setting(
        5, CLUSTER, "Log files the kubelet keeps per container, the current one included."
    )
    scheduler: dict = setting(
        {},
        CLUSTER,
        """Optional KubeSchedulerConfiguration: {percentage_of_nodes_to_score: int,
        profiles: [{scheduler_name, plugins: {enabled: [...], disabled: [...]},
        score_weights: {PluginName: weight}}]}. Empty: kube-scheduler defaults. Checked as
        kube-scheduler of kubernetes_version checks it: that release's plugins, weights
        1..100 only on enabled plugins that score, unique profile names, a single profile
        named default-scheduler, PrioritySort and DefaultBinder kept.""",
    )
    admin_user: str = setting(
        "",
        HOST,
        """Non-root user on control planes that also gets ~/.kube/config; empty: root
        only.""",
    )
    fetch_kubeconfig: str = setting(
        "",
        CLUSTER,
        """Local path on the machine running pyinfra to write the admin kubeconfig to
        (0600), fetched from the first control plane; empty: not fetched.""",
    )

    containerd_source: str = setting(
        "distro",
        HOST,
        """Where containerd comes from: "distro" (the OS's containerd package) or "docker"
        (Docker's containerd.io repository).""",
    )
    containerd_version: str = setting(
        "",
        HOST,
        """Exact apt version of the containerd package to pin; empty takes the version the
        chosen repository offers for this OS release (then held, never upgraded silently).
        Kubernetes 1.36 and later need 2.x: a pinned 1.x is refused; unpinned, preflight
        refuses a node whose package would be 1.x (Ubuntu 22.04/24.04 ship 2.x, Ubuntu 20.04
        and Debian 1.x).""",
    )
    docker_apt_repo: str = setting(
        "https://download.docker.com/linux",
        HOST,
        """Base of Docker's apt repository; "/ubuntu" or "/debian" is appended. Mirror: e.g.
        https://mirrors.aliyun.com/docker-ce/linux""",
    )
    registry_mirrors: dict = setting(
        {},
        HOST,
        """Registry mirrors for containerd: {registry: [mirror URL, ...]}; the upstream
        registry stays the fallback. e.g. {"docker.io": ["https://docker.m.daocloud.io"]}""",
    )
    registry_auth: dict = setting(
        {},
        HOST,
        """Credentials per registry or mirror host: {host: {username: ..., password:
        ...}}. Secret: never printed, written only to root-only files.""",
        secret=True,
    )

    time_sync: str = setting(
        "chrony",
        HOST,
        """Time sync daemon: "chrony", "ntp" (ntpsec where that is the package) or
        "timesyncd".""",
    )
    time_servers: list = setting(["pool.ntp.org"], HOST, "NTP servers or pools.")
    firewall: str = setting(
        "open",
        HOST,
        """Firewall: "open" opens exactly the ports kubeadm and flannel need per role (ufw
        on Ubuntu, firewalld where installed); "disabled" turns the firewall off.""",
    )
    sysctls: dict = setting(
        {},
        HOST,
        """Extra sysctls: {name: value}, written with the ones kubeadm requires (which they
        cannot change).""",
    )

    flannel_version: str = setting("v0.27.4", CLUSTER, "Pinned flannel release.")
    flannel_cni_plugin_version: str = setting(
        "v1.8.0-flannel1",
        CLUSTER,
        """flannel-cni-plugin image tag; the one flannel_version's own kube-flannel.yml uses
        (v0.27.4 ships v1.8.0-flannel1). Change both together.""",
    )
    flannel_backend: str = setting(
        "vxlan", CLUSTER, 'flannel backend: "vxlan", "host-gw" or "wireguard".'
    )
    flannel_image_repository: str = setting(
        "ghcr.io/flannel-io",
        CLUSTER,
        "Registry prefix for flannel's images (flannel and flannel-cni-plugin).",
    )
    kuboard_server: str = setting(
        "",
        CLUSTER,
        "Kuboard v3 server URL (e.g. http://10.0.0.5:80); empty: no Kuboard agent.",
    )
    kuboard_cluster_name: str = setting(
        "",
        CLUSTER,
        """Cluster name given in Kuboard's "add cluster" (part of the agent manifest's URL);
        required with kuboard_server.""",
    )
    kuboard_agent_token: str = setting(
        "",
        CLUSTER,
        """Agent token from Kuboard's "add cluster, agent mode"; required with
        kuboard_server. Secret.""",
        secret=True,
    )
    kuboard_image_repository: str = setting(
        "",
        CLUSTER,
        """Registry prefix that replaces the agent manifest's image registry; empty:
        unchanged.""",
    )
    kuboard_tls_verify: bool = setting(
        True,
        CLUSTER,
        """Verify the Kuboard server's TLS certificate when the agent manifest is fetched
        from an https kuboard_server; false skips verification for that fetch only (as
        Kuboard's own `curl -k` import command does), with a warning on every run.""",
    )
    kuboard_server_image: str = setting(
        "eipwork/kuboard:v3.5.2.7",
        CLUSTER,
        """Kuboard v3 server image run on the host with the role `kuboard`, pulled by
        containerd through registry_mirrors (e.g. of docker.io); Kuboard's own mirror:
        swr.cn-east-2.myhuaweicloud.com/kuboard/kuboard:v3.5.2.7.""",
    )
    kuboard_web_port: int = setting(
        80, CLUSTER, "Web (HTTP) port of the Kuboard server on the `kuboard` host."
    )
    kuboard_agent_port: int = setting(
        10081,
        CLUSTER,
        """Agent server port (TCP) of the Kuboard server on the `kuboard` host; its
        KUBOARD_AGENT_SERVER_TCP_PORT.""",
    )
    kuboard_endpoint: str = setting(
        "",
        CLUSTER,
        """URL the agents and browsers reach the managed Kuboard server at (its
        KUBOARD_ENDPOINT), never localhost; empty: http://<kuboard host address>:<web
        port>.""",
    )
    kuboard_admin_password: str = setting(
        "",
        CLUSTER,
        """Initial password of Kuboard's `admin` user, used only when the server's data
        directory is new; empty: Kuboard's default, Kuboard123 (change it at the first
        login). Secret.""",
        secret=True,
    )
    ready_timeout: int = setting(
        600,
        CLUSTER,
        """Seconds each wait at the end of a run may take: every node Ready, the kube-system
        and flannel pods Running, the Kuboard agent available after it was applied.""",
    )
    upgrade_batch: int = setting(
        1,
        CLUSTER,
        """Workers drained and upgraded at once when kubernetes_version changes on a running
        cluster (control planes always go one at a time).""",
    )
    upgrade_path: list = setting(
        [],
        CLUSTER,
        """Releases to go through when kubernetes_version is more than one minor ahead of
        the cluster, one per minor (kubeadm skips none), e.g. ["1.34.3"]; a minor not
        listed goes through the newest patch its repository lists.""",
    )
    drain_timeout: int = setting(
        300,
        CLUSTER,
        """Seconds `kubectl drain` may take to evict a node's pods (evictions respect
        PodDisruptionBudgets) before day-2 work touches its kubelet; a node not drained in
        time stays cordoned and the run stops, naming the pods that blocked it.""",
    )

    cert_renew_days: int = setting(
        30,
        CLUSTER,
        """A run renews the control planes' certificates (`kubeadm certs renew all`, then the
        control-plane pods restarted, one control plane at a time) when the earliest
        expires within this many days (1..364: renewed certificates last 365 days).""",
    )
    cert_auto_renew: bool = setting(
        False,
        CLUSTER,
        """Install a monthly systemd timer on the control planes that renews the
        certificates within cert_renew_days without a run.""",
    )

    def to_json(self) -> dict:
        """What pyinfra prints for these settings (debug-inventory): secrets as
        placeholders."""
        return dataclasses.asdict(without_secrets(self))


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
SETTING_NAMES = tuple(FIELDS)
DEFAULTS = dataclasses.asdict(Settings())
# Settings whose values are secrets: never printed, never in world-readable files.
SECRET_SETTINGS = tuple(name for name, f in FIELDS.items() if f.metadata["secret"])
CLUSTER_SETTINGS = tuple(name for name, f in FIELDS.items() if f.metadata["scope"] == CLUSTER)


def redacted(value, label: str):
    """`value` with every non-empty string below it replaced by a placeholder naming it."""
    if isinstance(value, dict):
        return {key: redacted(item, f"{label}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, f"{label}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str) and value:
        return f"<secret: {label}>"
    return value


def without_secrets(settings: Settings) -> Settings:
    """`settings` with every secret replaced by placeholders naming it."""
    return dataclasses.replace(
        settings, **{name: redacted(getattr(settings, name), name) for name in SECRET_SETTINGS}
    )


ROLES = ("control_plane", "worker", "kuboard")
HOST_KEYS = ("name", "address", "roles", "settings")

_CHOICES = {
    "containerd_source": ("distro", "docker"),
    "time_sync": ("chrony", "ntp", "timesyncd"),
    "firewall": ("open", "disabled"),
    "kube_proxy_mode": ("iptables", "nftables", "ipvs"),
    "api_load_balancer": ("", "local", "vip", "none"),
}
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SIZE = re.compile(r"^[0-9]+(Ki|Mi|Gi)$")
# registry host[:port] followed by repository path components, e.g. ghcr.io/flannel-io.
IMAGE_REPOSITORY = re.compile(
    r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
)
# http(s)://host[:port][/path]: no credentials, query or fragment.
SERVER_URL = re.compile(
    r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?(/[A-Za-z0-9_.~/-]*)?"
)
# A host name or an IP address (v4 or v6).
_NTP_SERVER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?")
# http(s)://host[:port][/path] of an apt repository; pkgs.k8s.io paths hold colons.
_APT_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9_.~:/-]*)?")
_PACKAGE_REVISION = re.compile(r"[0-9]+(\.[0-9]+)*")
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# A DNS name (wildcards allowed) or an IP address, as kubeadm takes in certSANs.
_CERT_SAN = re.compile(r"[A-Za-z0-9*]([A-Za-z0-9.:*-]*[A-Za-z0-9])?")
# A registry as containerd names its host directory: host[:port].
_REGISTRY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?")
# A registry username or password: non-empty, no control characters.
_CREDENTIAL = re.compile(r"[^\x00-\x1f\x7f]+")
# A Debian package version: [epoch:]upstream[-revision].
_DEB_VERSION = re.compile(r"([0-9]+:)?[0-9][A-Za-z0-9.+~-]*")
_ENDPOINT = re.compile(r"[A-Za-z0-9.\-\[\]:]+:[0-9]+")
# String settings checked by format alone: (pattern, what a good value is, may be empty).
_FORMATS = {
    "container_log_max_size": (_SIZE, "like '10Mi'", False),
    "control_plane_endpoint": (_ENDPOINT, "'host:port'", True),
    "containerd_version": (_DEB_VERSION, "an apt version", True),
    "haproxy_version": (_DEB_VERSION, "an apt version", True),
    "keepalived_version": (_DEB_VERSION, "an apt version", True),
    "docker_apt_repo": (_APT_URL, "an http(s) URL", False),
    "kubernetes_apt_repo": (_APT_URL, "an http(s) URL", False),
    "kubernetes_package_revision": (_PACKAGE_REVISION, "a revision like '1.1'", False),
    "image_repository": (IMAGE_REPOSITORY, "a registry prefix like 'registry.k8s.io'", False),
    "admin_user": (_USER_NAME, "a user name", True),
}


class ClusterError(ValueError):
    """A cluster file that must not be applied: one or more problems, each naming file, host
    and field (one per line of the message)."""

    def __init__(self, *problems: str, setting: str | None = None):
        self.problems = tuple(dict.fromkeys(problems))
        self.setting = setting  # the setting whose value is wrong, where there is one
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Node:
    """A machine of the cluster: what every node knows of every other one."""

    name: str
    address: str
    roles: tuple[str, ...]

    @property
    def is_control_plane(self) -> bool:
        return "control_plane" in self.roles

    @property
    def is_worker(self) -> bool:
        return "worker" in self.roles

    @property
    def is_member(self) -> bool:
        """A Kubernetes node (a host with only the role `kuboard` is not)."""
        return self.is_control_plane or self.is_worker

    @property
    def is_kuboard(self) -> bool:
        """The host that runs the Kuboard server (deploys/kuboard)."""
        return "kuboard" in self.roles

    def to_json(self) -> dict:
        """What pyinfra prints for a node (debug-inventory)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Cluster:
    path: str
    nodes: tuple[Node, ...]
    # Settings from the cluster file (not printed: they may hold secrets): cluster-wide, and
    # per host {node name: settings}.
    overrides: dict = field(repr=False)
    host_overrides: dict = field(default_factory=dict, repr=False)
    warnings: tuple[str, ...] = ()

    def settings_for(self, node: Node) -> Settings:
        return Settings(**{**self.overrides, **self.host_overrides.get(node.name, {})})

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)


def load_cluster(path: str | Path) -> Cluster:
    """Read and check a cluster file; raise ClusterError on anything that must be refused."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ClusterError(f"{path}: cannot read cluster file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ClusterError(
            f"{path}: not UTF-8 text (line {line}: byte 0x{raw[exc.start]:02x}); "
            "save the cluster file as UTF-8"
        ) from None
    try:
        doc = _yaml_document(path, text)
    except yaml.YAMLError as exc:
        raise ClusterError(f"{path}: not valid YAML: {exc}") from None
    return parse_cluster(doc, path)


def _yaml_document(path: str, text: str) -> Any:
    """The YAML document in `text`; ClusterError listing every key given twice in a mapping
    (YAML loaders keep the last one silently)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = list(_duplicate_keys(loader, node, "", set()))
        if duplicates:
            raise ClusterError(*(f"{path}: {problem}" for problem in duplicates))
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _duplicate_keys(loader: yaml.SafeLoader, node: yaml.Node, label: str, seen: set[int]):
    """Each key that a mapping under `node` holds twice (as the loader would build the keys:
    `yes` and `true` are one): where, which key, both lines."""
    if id(node) in seen:  # an alias of a node already walked (or of itself)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if key.tag == "tag:yaml.org,2002:merge":  # `<<`: merged, every one of them
                name = None
            built = loader.construct_object(key) if name is not None else None
            line = key.start_mark.line + 1
            if name is not None and built in lines:
                first = lines[built]
                where = f"on line {line}" if first == line else f"on lines {first} and {line}"
                yield (
                    f"{label or 'top level'}: key {name!r} given twice, {where} "
                    "(YAML would keep only the last)"
                )
            elif name is not None:
                lines[built] = line
            inner = f"{label}.{name}" if label else str(name)
            yield from _duplicate_keys(loader, value, inner, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(loader, item, f"{label}[{index}]", seen)


class _Problems:
    """The problems found so far in one cluster file, to refuse it with all of them."""

    def __init__(self):
        self.found: list[str] = []

    def check(self, function, *args):
        """`function(*args)`, or None with its ClusterError's problems kept."""
        try:
            return function(*args)
        except ClusterError as exc:
            self.found.extend(exc.problems)
            return None

    def refuse(self) -> None:
        if self.found:
            raise ClusterError(*self.found)


def parse_cluster(doc: Any, path: str = "<cluster>") -> Cluster:
    if not isinstance(doc, dict):
        raise ClusterError(f"{path}: expected a mapping with 'hosts' and 'settings'")
    problems = _Problems()
    problems.check(_unknown, path, "", doc, ("hosts", "settings"))
    overrides = problems.check(_check_settings, path, "settings", doc.get("settings") or {})
    hosts = doc.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        problems.found.append(f"{path}: 'hosts' must be a non-empty list of hosts")
        problems.refuse()
    parsed = [problems.check(_parse_node, path, i, entry) for i, entry in enumerate(hosts)]
    nodes = tuple(entry[0] for entry in parsed if entry)
    host_overrides = {node.name: values for node, values in filter(None, parsed)}
    problems.check(_check_unique, path, nodes)
    if overrides is not None:  # the values of every host whose keys are right
        for node in nodes:
            problems.found += _value_problems(path, node.name, overrides, host_overrides[node.name])
    cps = tuple(n for n in nodes if n.is_control_plane)
    if not cps and len(nodes) == len(hosts):
        problems.found.append(f"{path}: no host has the role 'control_plane'; a cluster needs one")
    if overrides is not None:  # what the API's load balancer and the Kuboard server need
        from deploys.kuboard import cluster_problems, cluster_warnings
        from deploys.loadbalancer import model as loadbalancer

        problems.found += loadbalancer.cluster_problems(
            Cluster(path, nodes, overrides, host_overrides)
        )
        problems.found += [f"{path}: {p}" for p in cluster_problems(nodes, Settings(**overrides))]
    problems.refuse()
    cluster = Cluster(path, nodes, overrides, host_overrides)
    warnings: dict[str, None] = {}  # each warning once, in order
    s = Settings(**overrides)  # kube_proxy_mode and kubernetes_version are cluster settings
    warning = versions.kube_proxy_mode_warning(s.kube_proxy_mode, s.kubernetes_version)
    if warning:
        warnings[f"{path}: settings: kube_proxy_mode: {warning}"] = None
    warnings.update((f"{path}: settings: {w}", None) for w in cluster_warnings(nodes, s))
    if len(cps) % 2 == 0:
        warnings[
            f"{path}: {len(cps)} control planes: stacked etcd wants an odd number "
            "for quorum (1, 3, 5)"
        ] = None
    return dataclasses.replace(cluster, warnings=tuple(warnings))


def api_load_balancer(settings: Settings, control_planes: int) -> str:
    """The load balancer mode in effect: api_load_balancer, or where it is empty "local"
    with several control planes and no control_plane_endpoint, else "none"."""
    if settings.api_load_balancer:
        return settings.api_load_balancer
    several = control_planes > 1 and not settings.control_plane_endpoint
    return "local" if several else "none"


def _parse_node(path: str, index: int, entry: Any) -> tuple[Node, dict]:
    """The node of one `hosts[]` entry and its own settings."""
    if not isinstance(entry, dict):
        raise ClusterError(f"{path}: hosts[{index}]: expected a mapping")
    label = f"hosts[{index}]" + (f" ({entry['name']})" if "name" in entry else "")
    _unknown(path, label, entry, HOST_KEYS)
    for key in ("name", "address", "roles"):
        if key not in entry or entry[key] in (None, "", []):
            raise ClusterError(f"{path}: {label}: '{key}' is required")
    name = entry["name"]
    if not isinstance(name, str) or not _HOSTNAME.fullmatch(name):
        raise ClusterError(
            f"{path}: {label}: name {name!r} is not a valid host name "
            "(lowercase letters, digits and '-', at most 63)"
        )
    label = f"host {name!r}"
    address = _ip(path, label, "address", entry["address"])
    roles = entry["roles"]
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(r in ROLES for r in roles):
        raise ClusterError(
            f"{path}: {label}: roles {entry['roles']!r}: each role must be one of {ROLES}"
        )
    node = Node(name=name, address=address, roles=tuple(dict.fromkeys(roles)))
    values = entry.get("settings") or {}
    problems = _Problems()
    if isinstance(values, dict):
        problems.found += [
            f"{path}: {label}: settings.{key}: a cluster setting, one value for the whole "
            "cluster: set it under the top-level 'settings:', not per host"
            for key in values
            if key in CLUSTER_SETTINGS
        ]
    overrides = problems.check(_check_settings, path, f"{label}: settings", values)
    problems.refuse()
    return node, overrides


def _check_unique(path: str, nodes: tuple[Node, ...]) -> None:
    for attr in ("name", "address"):
        seen: dict[str, str] = {}
        for node in nodes:
            value = getattr(node, attr)
            if value in seen:
                raise ClusterError(
                    f"{path}: host {node.name!r}: duplicate {attr} {value!r} "
                    f"(also used by host {seen[value]!r})"
                )
            seen[value] = node.name


def _unknown(path: str, label: str, mapping: dict, allowed) -> None:
    """Refuse every key of `mapping` that is not `allowed`, each with the nearest one."""
    where = f"{label}: " if label else ""
    unknown = [
        f"{path}: {where}unknown key {key!r}"
        + (f" (did you mean {hint!r}?)" if (hint := _closest(key, allowed)) else "")
        for key in mapping
        if key not in allowed
    ]
    if unknown:
        raise ClusterError(*unknown)


def _closest(key: Any, allowed) -> str | None:
    import difflib

    matches = difflib.get_close_matches(str(key), list(allowed), n=1)
    return matches[0] if matches else None


def _check_settings(path: str, label: str, values: Any) -> dict:
    """Keys and types of a settings mapping; values are checked once merged per host."""
    if not isinstance(values, dict):
        raise ClusterError(f"{path}: {label}: expected a mapping of setting: value")
    problems = _Problems()
    problems.check(_unknown, path, label, values, SETTING_NAMES)
    for key, value in values.items():
        if key not in DEFAULTS:
            continue
        expected = type(DEFAULTS[key])
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = False  # 1.30 in YAML is a float: make the user quote versions
        if not ok:
            problems.found.append(
                f"{path}: {label}.{key}: expected {expected.__name__}, "
                f"got {type(value).__name__}"
                + ("" if key in SECRET_SETTINGS else f" {value!r}")
                + (" (quote it)" if expected is str else "")
            )
    problems.refuse()
    return dict(values)


def _ip(path: str, label: str, key: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ClusterError(f"{path}: {label}: {key} {value!r} is not an IP address") from None


def _network(path: str, where: str, key: str, value: str):
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ClusterError(
            f"{path}: {where}: {key}: {value!r} is not a valid CIDR ({exc})", setting=key
        ) from None


def _value_problems(path: str, name: str, cluster: dict, own: dict) -> list[str]:
    """Every problem of the merged settings of host `name` (`cluster` < its `own`), each
    labelled with where the setting is set: the host, or the cluster's `settings:`.

    _check_values stops at the first problem, so the setting it names falls back to its
    default (a good value) and the rest is checked again, until nothing is wrong, or what is
    wrong is no setting of the file (then it is the last problem), or only a dropped
    setting's default against other values."""
    where = f"host {name!r}"
    values, found, dropped = {**cluster, **own}, [], set()
    while True:
        try:
            _check_values(path, where, values)
            return found
        except ClusterError as exc:
            if exc.setting in dropped:
                return found
            if exc.setting not in own:  # the cluster's value
                exc = ClusterError(
                    *(
                        p.replace(f"{path}: {where}: ", f"{path}: settings: ", 1)
                        for p in exc.problems
                    ),
                    setting=exc.setting,
                )
            found += exc.problems
            if exc.setting not in values:
                return found
            dropped.add(exc.setting)
            del values[exc.setting]


def _check_values(path: str, where: str, values: dict) -> None:
    """Check the merged settings of one host; raise ClusterError on the first error."""
    s = Settings(**values)

    def fail(key: str, message: str) -> ClusterError:
        return ClusterError(f"{path}: {where}: {key}: {message}", setting=key.split(".")[0])

    for key, choices in _CHOICES.items():
        if getattr(s, key) not in choices:
            raise fail(key, f"{getattr(s, key)!r} is not one of {[c for c in choices if c]}")
    try:
        versions.check_kubernetes_version(s.kubernetes_version)
    except ValueError as exc:
        raise fail("kubernetes_version", str(exc)) from None
    refusal = versions.kube_proxy_mode_refusal(s.kube_proxy_mode, s.kubernetes_version)
    if refusal:
        raise fail("kube_proxy_mode", refusal)
    pods = _network(path, where, "pod_subnet", s.pod_subnet)
    services = _network(path, where, "service_subnet", s.service_subnet)
    if pods.version == services.version and pods.overlaps(services):
        raise fail("service_subnet", f"{s.service_subnet} overlaps pod_subnet {s.pod_subnet}")
    for port_key in ("ssh_port", "api_port"):
        if not 0 < getattr(s, port_key) < 65536:
            raise fail(port_key, f"{getattr(s, port_key)} is not a TCP port")
    if not 0 <= s.image_gc_low_threshold < s.image_gc_high_threshold <= 100:
        raise fail("image_gc_low_threshold", "need 0 <= low < high <= 100")
    for key, (pattern, what, optional) in _FORMATS.items():
        value = getattr(s, key)
        if not (optional and not value) and not pattern.fullmatch(value):
            raise fail(key, f"{value!r} is not {what}")
    for registry, mirrors in s.registry_mirrors.items():
        if not _REGISTRY.fullmatch(str(registry)):
            raise fail(f"registry_mirrors.{registry}", "is not a registry host[:port]")
        if not isinstance(mirrors, list) or not all(
            isinstance(m, str) and SERVER_URL.fullmatch(m) for m in mirrors
        ):
            raise fail(f"registry_mirrors.{registry}", "expected a list of http(s):// URLs")
    for registry, auth in s.registry_auth.items():
        if not _REGISTRY.fullmatch(str(registry)):
            raise fail(f"registry_auth.{registry}", "is not a registry host[:port]")
        if not isinstance(auth, dict) or set(auth) != {"username", "password"}:
            raise fail(f"registry_auth.{registry}", "expected {username: ..., password: ...}")
        if not all(isinstance(v, str) and _CREDENTIAL.fullmatch(v) for v in auth.values()):
            raise fail(f"registry_auth.{registry}", "username and password must be one line")
        if ":" in auth["username"]:
            raise fail(f"registry_auth.{registry}", "a username cannot contain ':'")
    for check in _concern_checks():
        for key, message in check(s):
            raise fail(key, message)
    if not s.time_servers or not all(
        isinstance(t, str) and _NTP_SERVER.fullmatch(t) for t in s.time_servers
    ):
        raise fail("time_servers", "expected a non-empty list of host names or IP addresses")
    if s.upgrade_batch <= 0:
        raise fail("upgrade_batch", f"{s.upgrade_batch} is not a positive number of nodes")
    _check_upgrade_path(path, where, s)
    for key in ("ready_timeout", "drain_timeout"):
        if getattr(s, key) <= 0:
            raise fail(key, f"{getattr(s, key)} is not a positive number of seconds")
    for san in s.cert_sans:
        if not isinstance(san, str) or not _CERT_SAN.fullmatch(san):
            raise fail("cert_sans", f"{san!r} is not a DNS name or an IP address")
    _check_scheduler(path, where, s)
    _check_containerd(path, where, s)


def _concern_checks():
    """The checks each concern keeps beside itself: functions of the merged Settings that
    yield (setting, problem). Imported here, when a cluster file is checked: the concerns
    import this module."""
    from deploys import kuboard as kuboard_server
    from deploys import loadbalancer
    from deploys.addons import kuboard, network
    from deploys.kubernetes import certificates
    from deploys.system import sysctl

    return (
        sysctl.check_settings,
        network.PLUGIN.check_settings,
        kuboard.check_settings,
        kuboard_server.check_settings,
        loadbalancer.check_settings,
        certificates.check_settings,
    )


def _check_scheduler(path: str, where: str, s: Settings) -> None:
    """The `scheduler` setting as kube-scheduler of s.kubernetes_version checks it."""
    from deploys.kubernetes import scheduler

    found = scheduler.problems(s.scheduler, s.kubernetes_version)
    if found:
        raise ClusterError(
            *(f"{path}: {where}: scheduler: {p}" for p in found), setting="scheduler"
        )


def _check_upgrade_path(path: str, where: str, s: Settings) -> None:
    """Versions, one per minor, each below kubernetes_version's minor."""
    from deploys.kubernetes.upgrade import path_problems

    found = path_problems(s.upgrade_path, s.kubernetes_version)
    if found:
        raise ClusterError(
            *(f"{path}: {where}: upgrade_path: {p}" for p in found), setting="upgrade_path"
        )


def _check_containerd(path: str, where: str, s: Settings) -> None:
    """Refuse a pinned containerd that cannot run s.kubernetes_version. Unpinned, the
    version depends on the node's release and repository (Ubuntu 22.04 and 24.04 ship
    containerd 2.x, Ubuntu 20.04 and Debian 1.x): preflight decides from what apt offers."""
    needed = versions.containerd_major_needed(s.kubernetes_version)
    if needed < 2 or not s.containerd_version:
        return
    try:
        major = versions.containerd_version(s.containerd_version)[0]
    except ValueError:
        return
    if major < needed:
        raise ClusterError(
            f"{path}: {where}: containerd_version: {s.containerd_version!r} is containerd "
            f"{major}.x, but Kubernetes {s.kubernetes_version} needs containerd 2.x. Pin a 2.x "
            f"version of {'containerd.io' if s.containerd_source == 'docker' else 'containerd'}, "
            "or set kubernetes_version to a 1.35 release",
            setting="containerd_version",
        )


# The README's settings tables lie between these lines; `python -m deploys.settings --readme`
# writes them from the model above.
README_BEGIN = "<!-- settings tables: `python -m deploys.settings --readme` writes them -->"
README_END = "<!-- end of settings tables -->"


def readme_tables() -> str:
    """The README's settings tables: per section, each setting's name, default (as YAML),
    scope and meaning."""
    import json

    lines: list[str] = []
    for name, f in FIELDS.items():
        if name in SECTIONS:
            lines += ["", f"### {SECTIONS[name]}", ""]
            lines += ["| setting | default | scope | meaning |", "|---|---|---|---|"]
        meaning = f.metadata["meaning"].replace("|", "\\|")
        default = json.dumps(DEFAULTS[name])
        lines.append(f"| `{name}` | `{default}` | {f.metadata['scope']} | {meaning} |")
    return "\n".join([README_BEGIN, *lines, "", README_END])


def readme_with_tables(readme: str) -> str:
    """`readme` with the settings tables between README_BEGIN and README_END rewritten."""
    head, begin, rest = readme.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README lacks the lines {README_BEGIN!r} and {README_END!r}")
    return head + readme_tables() + tail


def main(argv: list[str]) -> int:
    """`python -m deploys.settings --readme [README.md]`: rewrite the README's settings
    tables from this model."""
    if not argv or argv[0] != "--readme" or len(argv) > 2:
        sys.stderr.write("usage: python -m deploys.settings --readme [README.md]\n")
        return 2
    path = Path(argv[1] if len(argv) > 1 else "README.md")
    try:
        path.write_text(readme_with_tables(path.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"refused: {path}: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
