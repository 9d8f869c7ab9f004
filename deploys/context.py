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

from deploys.distro import Release
from deploys.settings import Cluster, Node, Settings, from_host_data


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
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)

    @property
    def first_control_plane(self) -> Node:
        return self.control_planes[0]

    @property
    def is_first_control_plane(self) -> bool:
        return self.node.name == self.first_control_plane.name

    @property
    def api_endpoint(self) -> str:
        """host:port every node uses to reach the API server."""
        s = self.settings
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
        """The context of a live pyinfra host (its inventory must come from inventory.py);
        `host_facts`: release, arch, containerd_version, as read from the host."""
        from deploys.inventory import cluster_nodes

        nodes = tuple(cluster_nodes(host.inventory))
        node = next(n for n in nodes if n.name == host.data.node_name)
        return cls(node=node, nodes=nodes, settings=from_host_data(host.data), **host_facts)
