"""The one data model: every setting, its single default, and the checks on a cluster file.

A cluster file (YAML) overrides these defaults cluster-wide under ``settings:`` and per host
under ``hosts[].settings``. Nothing else in the project defines a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploys import versions


@dataclass(frozen=True)
class Settings:
    # --- connection (pyinfra's own SSH data keys) ---
    # SSH login user.
    ssh_user: str = "root"
    # SSH port.
    ssh_port: int = 22
    # Private key file; empty uses the SSH agent / default keys.
    ssh_key: str = ""
    # known_hosts file to verify host keys against; empty uses ~/.ssh/known_hosts.
    ssh_known_hosts_file: str = ""
    # Escalate with sudo (needed when ssh_user is not root, e.g. Vagrant's "vagrant").
    sudo: bool = False

    # --- Kubernetes ---
    # Exact Kubernetes release (major.minor.patch) for kubeadm/kubelet/kubectl and the
    # control plane. Default 1.35.9 (released 2026-09-15): 1.35 is the newest minor that
    # still supports containerd 1.x, which Debian 12/13 and Ubuntu 20.04 ship as their
    # containerd package (1.36 and later need containerd 2.x); upstream patches it until
    # 2027-02-28 (1.34 reached end of life on 2026-10-27); kubeadm config API v1beta4.
    # From 1.35 the kubelet refuses cgroup v1 hosts: Ubuntu 20.04 needs booting with
    # systemd.unified_cgroup_hierarchy=1 or 1.34. Preflight refuses both mismatches
    # before any change.
    kubernetes_version: str = "1.35.9"
    # Build revision of the pkgs.k8s.io packages: the pinned apt version is
    # <kubernetes_version>-<revision>, e.g. 1.35.9-1.1; a rebuilt release can carry another
    # revision (`apt-cache madison kubeadm` lists them).
    kubernetes_package_revision: str = "1.1"
    # Base of the per-minor Kubernetes apt repository; "/v1.NN/deb/" is appended.
    # Mirrors: e.g. https://mirrors.aliyun.com/kubernetes-new/core/stable
    kubernetes_apt_repo: str = "https://pkgs.k8s.io/core:/stable:"
    # Registry holding the control-plane images and the pause (sandbox) image.
    image_repository: str = "registry.k8s.io"
    # Pod network; must equal flannel's network.
    pod_subnet: str = "10.244.0.0/16"
    # Service network.
    service_subnet: str = "10.96.0.0/12"
    # Cluster DNS domain.
    dns_domain: str = "cluster.local"
    # "host:port" of the API server for HA (a load balancer or VIP); empty uses the
    # first control plane's address and api_port.
    control_plane_endpoint: str = ""
    # Port the API server listens on.
    api_port: int = 6443
    # Extra subject alternative names for the API server certificate.
    cert_sans: list = field(default_factory=list)
    # kube-proxy mode: "iptables", "nftables" (Kubernetes 1.33 and later; kernel 5.13 and
    # later) or "ipvs" (deprecated from Kubernetes 1.35: a warning).
    kube_proxy_mode: str = "iptables"
    # Keep the control-plane NoSchedule taint (false lets workloads run on control planes).
    control_plane_taint: bool = True
    # Kubelet image GC: start collecting above this disk usage percent ...
    image_gc_high_threshold: int = 85
    # ... and collect down to this percent.
    image_gc_low_threshold: int = 80
    # Container log rotation size and number of files kept.
    container_log_max_size: str = "10Mi"
    container_log_max_files: int = 5
    # Optional KubeSchedulerConfiguration: {percentage_of_nodes_to_score: int,
    # profiles: [{scheduler_name, plugins: {enabled: [...], disabled: [...]},
    # score_weights: {PluginName: weight}}]}. Empty: kube-scheduler defaults. Checked as
    # kube-scheduler of kubernetes_version checks it: that release's plugins, weights 1..100
    # only on enabled plugins that score, unique profile names, a single profile named
    # default-scheduler, PrioritySort and DefaultBinder kept.
    scheduler: dict = field(default_factory=dict)
    # Non-root user on control planes that also gets ~/.kube/config; empty: root only.
    admin_user: str = ""
    # Local path on the machine running pyinfra to write the admin kubeconfig to (0600);
    # empty: not fetched.
    fetch_kubeconfig: str = ""

    # --- container runtime ---
    # Where containerd comes from: "distro" (the OS's containerd package) or "docker"
    # (Docker's containerd.io repository).
    containerd_source: str = "distro"
    # Exact apt version of the containerd package to pin; empty takes the version the
    # chosen repository offers for this OS release (then held, never upgraded silently).
    # Kubernetes 1.36 and later need 2.x: a pinned 1.x is refused; unpinned, preflight
    # refuses a node whose package would be 1.x (Ubuntu 22.04/24.04 ship 2.x, Ubuntu 20.04
    # and Debian 1.x).
    containerd_version: str = ""
    # Base of Docker's apt repository; "/ubuntu" or "/debian" is appended.
    # Mirror: e.g. https://mirrors.aliyun.com/docker-ce/linux
    docker_apt_repo: str = "https://download.docker.com/linux"
    # Registry mirrors for containerd: {registry: [mirror URL, ...]}; the upstream
    # registry stays the fallback. e.g. {"docker.io": ["https://docker.m.daocloud.io"]}
    registry_mirrors: dict = field(default_factory=dict)
    # Credentials per registry or mirror host: {host: {username: ..., password: ...}}.
    # Secret: never printed, written only to root-only files.
    registry_auth: dict = field(default_factory=dict, repr=False)

    # --- operating system ---
    # Time sync daemon: "chrony", "ntp" (ntpsec where that is the package) or "timesyncd".
    time_sync: str = "chrony"
    # NTP servers or pools.
    time_servers: list = field(default_factory=lambda: ["pool.ntp.org"])
    # Firewall: "open" opens exactly the ports kubeadm and flannel need per role (ufw on
    # Ubuntu, firewalld where installed); "disabled" turns the firewall off.
    firewall: str = "open"
    # Extra sysctls: {name: value}, written with REQUIRED_SYSCTLS (which they cannot change).
    sysctls: dict = field(default_factory=dict)

    # --- add-ons ---
    # Pinned flannel release.
    flannel_version: str = "v0.27.4"
    # flannel-cni-plugin image tag; the one flannel_version's own kube-flannel.yml uses
    # (v0.27.4 ships v1.8.0-flannel1). Change both together.
    flannel_cni_plugin_version: str = "v1.8.0-flannel1"
    # flannel backend: "vxlan", "host-gw" or "wireguard".
    flannel_backend: str = "vxlan"
    # Registry prefix for flannel's images (flannel and flannel-cni-plugin).
    flannel_image_repository: str = "ghcr.io/flannel-io"
    # Kuboard v3 server URL (e.g. http://10.0.0.5:80); empty: no Kuboard agent.
    kuboard_server: str = ""
    # Cluster name given in Kuboard's "add cluster" (part of the agent manifest's URL);
    # required with kuboard_server.
    kuboard_cluster_name: str = ""
    # Agent token from Kuboard's "add cluster, agent mode". Secret.
    kuboard_agent_token: str = field(default="", repr=False)
    # Registry prefix that replaces the agent manifest's image registry; empty: unchanged.
    kuboard_image_repository: str = ""
    # Seconds each wait at the end of a run may take: every node Ready, the kube-system and
    # flannel pods Running, the Kuboard agent available after it was applied.
    ready_timeout: int = 600


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(Settings))
DEFAULTS = dataclasses.asdict(Settings())
# Settings whose values are secrets: never printed, never in world-readable files.
SECRET_SETTINGS = ("registry_auth", "kuboard_agent_token")
ROLES = ("control_plane", "worker")
HOST_KEYS = ("name", "address", "roles", "settings")

_CHOICES = {
    "containerd_source": ("distro", "docker"),
    "time_sync": ("chrony", "ntp", "timesyncd"),
    "firewall": ("open", "disabled"),
    "kube_proxy_mode": ("iptables", "nftables", "ipvs"),
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
    "docker_apt_repo": (_APT_URL, "an http(s) URL", False),
    "kubernetes_apt_repo": (_APT_URL, "an http(s) URL", False),
    "kubernetes_package_revision": (_PACKAGE_REVISION, "a revision like '1.1'", False),
    "image_repository": (IMAGE_REPOSITORY, "a registry prefix like 'registry.k8s.io'", False),
    "admin_user": (_USER_NAME, "a user name", True),
}


class ClusterError(ValueError):
    """A cluster file that must not be applied: one or more problems, each naming file, host
    and field (one per line of the message)."""

    def __init__(self, *problems: str):
        self.problems = tuple(dict.fromkeys(problems))
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    roles: tuple[str, ...]
    overrides: dict  # per-host settings from the cluster file

    @property
    def is_control_plane(self) -> bool:
        return "control_plane" in self.roles

    @property
    def is_worker(self) -> bool:
        return "worker" in self.roles


@dataclass(frozen=True)
class Cluster:
    path: str
    nodes: tuple[Node, ...]
    overrides: dict  # cluster-wide settings from the cluster file
    warnings: tuple[str, ...] = ()

    def settings_for(self, node: Node) -> Settings:
        return Settings(**{**self.overrides, **node.overrides})

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)


def from_host_data(data) -> Settings:
    """The settings of one pyinfra host, read from its data (inventory.py put them there)."""
    return Settings(**{name: data.get(name, DEFAULTS[name]) for name in SETTING_NAMES})


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


def parse_cluster(doc: Any, path: str = "<cluster>") -> Cluster:
    if not isinstance(doc, dict):
        raise ClusterError(f"{path}: expected a mapping with 'hosts' and 'settings'")
    _unknown(path, "", doc, ("hosts", "settings"))
    overrides = _check_settings(path, "settings", doc.get("settings") or {})
    hosts = doc.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise ClusterError(f"{path}: 'hosts' must be a non-empty list of hosts")
    nodes = tuple(_parse_node(path, i, entry) for i, entry in enumerate(hosts))
    _check_unique(path, nodes)
    warnings: dict[str, None] = {}  # each warning once, in order
    for node in nodes:
        merged = {**overrides, **node.overrides}
        where = f"host {node.name!r}" if node.overrides else "settings"
        _check_values(path, where, merged)
        s = Settings(**merged)
        warning = versions.kube_proxy_mode_warning(s.kube_proxy_mode, s.kubernetes_version)
        if warning:
            warnings[f"{path}: {where}: kube_proxy_mode: {warning}"] = None
    cluster = Cluster(path=path, nodes=nodes, overrides=overrides)
    cps = cluster.control_planes
    if not cps:
        raise ClusterError(f"{path}: no host has the role 'control_plane'; a cluster needs one")
    if len(cps) % 2 == 0:
        warnings[
            f"{path}: {len(cps)} control planes: stacked etcd wants an odd number "
            "for quorum (1, 3, 5)"
        ] = None
    if len(cps) > 1 and not cluster.settings_for(cps[0]).control_plane_endpoint:
        raise ClusterError(
            f"{path}: settings.control_plane_endpoint: required with more than one control "
            "plane (a load balancer or VIP in front of the API servers)"
        )
    return dataclasses.replace(cluster, warnings=tuple(warnings))


def _parse_node(path: str, index: int, entry: Any) -> Node:
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
    overrides = _check_settings(path, f"{label}: settings", entry.get("settings") or {})
    return Node(name=name, address=address, roles=tuple(dict.fromkeys(roles)), overrides=overrides)


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
    for key in mapping:
        if key not in allowed:
            hint = _closest(key, allowed)
            where = f"{label}: " if label else ""
            raise ClusterError(
                f"{path}: {where}unknown key {key!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )


def _closest(key: Any, allowed) -> str | None:
    import difflib

    matches = difflib.get_close_matches(str(key), list(allowed), n=1)
    return matches[0] if matches else None


def _check_settings(path: str, label: str, values: Any) -> dict:
    """Keys and types of a settings mapping; values are checked once merged per host."""
    if not isinstance(values, dict):
        raise ClusterError(f"{path}: {label}: expected a mapping of setting: value")
    _unknown(path, label, values, SETTING_NAMES)
    for key, value in values.items():
        expected = type(DEFAULTS[key])
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = False  # 1.30 in YAML is a float: make the user quote versions
        if not ok:
            raise ClusterError(
                f"{path}: {label}.{key}: expected {expected.__name__}, "
                f"got {type(value).__name__}"
                + ("" if key in SECRET_SETTINGS else f" {value!r}")
                + (" (quote it)" if expected is str else "")
            )
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
            f"{path}: {where}: {key}: {value!r} is not a valid CIDR ({exc})"
        ) from None


def _check_values(path: str, where: str, values: dict) -> None:
    """Check the merged settings of one host; raise ClusterError on the first error."""
    s = Settings(**values)

    def fail(key: str, message: str) -> ClusterError:
        return ClusterError(f"{path}: {where}: {key}: {message}")

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
    if s.ready_timeout <= 0:
        raise fail("ready_timeout", f"{s.ready_timeout} is not a positive number of seconds")
    for san in s.cert_sans:
        if not isinstance(san, str) or not _CERT_SAN.fullmatch(san):
            raise fail("cert_sans", f"{san!r} is not a DNS name or an IP address")
    _check_scheduler(path, where, s)
    _check_containerd(path, where, s)


def _concern_checks():
    """The checks each concern keeps beside itself: functions of the merged Settings that
    yield (setting, problem). Imported here, when a cluster file is checked: the concerns
    import this module."""
    from deploys.addons import kuboard, network
    from deploys.system import sysctl

    return (sysctl.check_settings, network.PLUGIN.check_settings, kuboard.check_settings)


def _check_scheduler(path: str, where: str, s: Settings) -> None:
    """The `scheduler` setting as kube-scheduler of s.kubernetes_version checks it."""
    from deploys.kubernetes import scheduler

    found = scheduler.problems(s.scheduler, s.kubernetes_version)
    if found:
        raise ClusterError("\n".join(f"{path}: {where}: scheduler: {p}" for p in found))


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
            "or set kubernetes_version to a 1.35 release"
        )
