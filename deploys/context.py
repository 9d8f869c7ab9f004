"""What a deploy knows about the node it runs on: the node, the whole cluster, its settings,
and the three facts of the host that files depend on: the OS release, the package
architecture and the containerd version.

Built the same way for a live pyinfra host (`NodeContext.of(host, ...)`, the host facts
read by the concern that needs them) and for the offline renderer
(`NodeContext.from_cluster(cluster, node, ...)`, the host facts assumed), so both produce
the same files: every concern's `rendered_files(ctx)` (see deploys/concerns.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import OperationError

from deploys.distro import Release
from deploys.settings import SETTING_NAMES, Cluster, Node, Settings, api_load_balancer

# Settings that pyinfra data must not carry: they come from the cluster file only (the SSH
# ones are pyinfra's own keys too).
_NOT_PYINFRA_DATA = frozenset(SETTING_NAMES) - {
    "ssh_user",
    "ssh_port",
    "ssh_key",
    "ssh_known_hosts_file",
}


# The cluster's endpoint name with api_load_balancer local: resolved to 127.0.0.1 on every
# node by the managed /etc/hosts block (deploys/system/hosts.py), where haproxy listens
# (deploys/loadbalancer). ".internal" is reserved for private use (ICANN, 2024): it never
# resolves in public DNS. kubeadm puts the controlPlaneEndpoint's host into the API server
# certificate (kubeadm pkiutil.GetAPIServerAltNames); kubeadm_config lists it in certSANs too.
API_NAME = "kube-apiserver.internal"


@dataclass(frozen=True)
class NodeContext:
    node: Node  # the node being converged
    nodes: tuple[Node, ...]  # every node of the cluster, in cluster-file order
    settings: Settings  # this node's settings (defaults < cluster < host overrides)
    # Host facts, where a concern needs them (None / "" where it does not).
    release: Release | None = None  # the OS release
    arch: str = ""  # package architecture: "amd64", "arm64"
    containerd_version: str = ""  # `containerd --version` or a version like "1.7.28"

    @property
    def members(self) -> tuple[Node, ...]:
        """The Kubernetes nodes (not a host that is only the Kuboard server's)."""
        return tuple(n for n in self.nodes if n.is_member)

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)

    @property
    def first_control_plane(self) -> Node:
        return self.control_planes[0]

    @property
    def is_first_control_plane(self) -> bool:
        return self.node.name == self.first_control_plane.name

    @property
    def api_load_balancer(self) -> str:
        """ "local", "vip" or "none": settings.api_load_balancer, or its default rule."""
        return api_load_balancer(self.settings, len(self.control_planes))

    @property
    def api_endpoint(self) -> str:
        """host:port every node uses to reach the API server: the load balancer's
        (deploys/loadbalancer), else control_plane_endpoint, else the first control
        plane's."""
        s = self.settings
        host = {"local": API_NAME, "vip": s.api_vip}.get(self.api_load_balancer)
        if host:
            return f"{host}:{s.api_load_balancer_port}"
        return s.control_plane_endpoint or f"{self.first_control_plane.address}:{s.api_port}"

    @classmethod
    def from_cluster(cls, cluster: Cluster, node: Node, **host_facts) -> NodeContext:
        """The context of `node` of a checked cluster file; `host_facts`: release, arch,
        containerd_version."""
        return cls(
            node=node, nodes=cluster.nodes, settings=cluster.settings_for(node), **host_facts
        )

    @classmethod
    def of(cls, host, **host_facts) -> NodeContext:
        """The context of a live pyinfra host (its data must come from inventory.py);
        `host_facts`: release, arch, containerd_version, as read from the host. A setting
        given as pyinfra data (`--data`, group_data/) stops the run: it would be ignored."""
        data = host.data
        stray = sorted(_NOT_PYINFRA_DATA.intersection(data.dict()))
        if stray:
            raise OperationError(
                f"{host.name}: {', '.join(stray)} given as pyinfra data (--data or "
                "group_data/), which settings are never read from: set it in the cluster file"
            )
        return cls(node=data.node, nodes=data.nodes, settings=data.settings, **host_facts)
