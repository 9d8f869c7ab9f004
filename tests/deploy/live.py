"""What a running cluster reports to deploys/kubernetes/reconfigure.py's LiveConfiguration
fact, as test doubles for the deploy-level tests: the state a run of `cluster` left (each
node's kubelet configuration, each control plane's applied configuration, the ConfigMaps
kubeadm and flannel wrote, all from the documents the deploy gave them), with `changes`
applied on top to model a cluster that runs something else."""

from __future__ import annotations

import copy

from deploys.addons import flannel
from deploys.context import NodeContext
from deploys.kubernetes import kubeadm_config, reconfigure
from tests.deploy import harness

FACT = "deploys.kubernetes.reconfigure.LiveConfiguration"


def as_left(cluster=None) -> dict[str, dict]:
    """{host: {FACT: value}} of every node of `cluster` (default: the harness's)."""
    parsed = harness._cluster(cluster)
    facts = {}
    for node in parsed.nodes:
        ctx = NodeContext.from_cluster(parsed, node)
        first = NodeContext.from_cluster(parsed, ctx.first_control_plane)
        applied = None
        if node.is_control_plane:
            applied = {d["kind"]: d for d in reconfigure.applied_documents(ctx)}
        running = None
        if node.is_control_plane:
            running = {
                "ClusterConfiguration": kubeadm_config.cluster_configuration(first),
                "KubeletConfiguration": kubeadm_config.kubelet_configuration(first.settings),
                "KubeProxyConfiguration": kubeadm_config.kube_proxy_configuration(first.settings),
                "network": flannel.net_conf(first),
            }
        value = {
            "kubelet": kubeadm_config.kubelet_configuration(ctx.settings),
            "applied": applied,
            "running": running,
        }
        facts[node.name] = {FACT: copy.deepcopy(value)}
    return facts


def running_with(cluster=None, **changes) -> dict[str, dict]:
    """as_left(cluster) with, on every node, `changes` {section: {kind: {field: value}}}
    merged into the ClusterConfiguration / ConfigMaps ("running"), the applied file
    ("applied") or the kubelet file ("kubelet": {field: value})."""
    facts = as_left(cluster)
    for value in (f[FACT] for f in facts.values()):
        for section, change in changes.items():
            if value[section] is None:
                continue
            if section == "kubelet":
                value["kubelet"].update(change)
                continue
            for kind, fields in change.items():
                value[section].setdefault(kind, {}).update(fields)
    return facts
