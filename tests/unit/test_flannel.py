"""The flannel manifest: rendered from the project's template, checked structurally."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from deploys.addons import flannel, network
from deploys.context import NodeContext
from deploys.settings import ClusterError, Node, Settings, parse_cluster

CLUSTER = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
    ],
    "settings": {},
}
KINDS = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "ConfigMap",
    "DaemonSet",
]


def context(node: str = "cp1", **settings) -> NodeContext:
    cluster = parse_cluster({**CLUSTER, "settings": settings}, "site.yaml")
    return NodeContext.from_cluster(cluster, next(n for n in cluster.nodes if n.name == node))


def objects(ctx: NodeContext) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(flannel.manifest(ctx)) if d}


def pod_spec(ctx: NodeContext) -> dict:
    return objects(ctx)["DaemonSet"]["spec"]["template"]["spec"]


def net_conf(ctx: NodeContext) -> dict:
    return json.loads(objects(ctx)["ConfigMap"]["data"]["net-conf.json"])


def test_manifest_holds_exactly_the_expected_objects():
    documents = [d for d in yaml.safe_load_all(flannel.manifest(context())) if d]
    assert [d["kind"] for d in documents] == KINDS


def test_namespaced_objects_live_in_flannels_namespace():
    found = objects(context())
    assert found["Namespace"]["metadata"]["name"] == flannel.NAMESPACE
    for kind in ("ServiceAccount", "ConfigMap", "DaemonSet"):
        assert found[kind]["metadata"]["namespace"] == flannel.NAMESPACE
    assert found["ClusterRoleBinding"]["subjects"][0]["namespace"] == flannel.NAMESPACE
    assert found["DaemonSet"]["metadata"]["name"] == flannel.DAEMONSET


def test_daemonset_runs_with_its_account_config_and_on_tainted_nodes():
    found = objects(context())
    spec = pod_spec(context())
    assert spec["serviceAccountName"] == found["ServiceAccount"]["metadata"]["name"]
    assert {
        "configMap": {"name": found["ConfigMap"]["metadata"]["name"]},
        "name": "flannel-cfg",
    } in (spec["volumes"])
    assert {"operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["hostNetwork"] is True
    selector = found["DaemonSet"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= found["DaemonSet"]["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("subnet", ["10.244.0.0/16", "172.20.0.0/16", "192.168.128.0/17"])
def test_network_is_the_pod_subnet(subnet):
    ctx = context(pod_subnet=subnet)
    assert net_conf(ctx)["Network"] == subnet == ctx.settings.pod_subnet


@pytest.mark.parametrize("backend", ["vxlan", "host-gw", "wireguard"])
def test_backend_from_settings(backend):
    assert net_conf(context(flannel_backend=backend))["Backend"] == {"Type": backend}


def test_default_backend_is_vxlan():
    assert net_conf(context())["Backend"] == {"Type": "vxlan"}


def test_cni_configuration_chains_flannel_and_portmap():
    conf = json.loads(objects(context())["ConfigMap"]["data"]["cni-conf.json"])
    assert [p["type"] for p in conf["plugins"]] == ["flannel", "portmap"]


def test_default_release_is_the_pinned_pair():
    # v0.27.4's own kube-flannel.yml uses flannel-cni-plugin v1.8.0-flannel1.
    assert flannel.images(context()) == {
        "flannel": "ghcr.io/flannel-io/flannel:v0.27.4",
        "cni_plugin": "ghcr.io/flannel-io/flannel-cni-plugin:v1.8.0-flannel1",
    }


@pytest.mark.parametrize(
    "repository",
    ["ghcr.io/flannel-io", "ghcr.m.daocloud.io/flannel-io", "registry.local:5000/mirror/flannel"],
)
def test_every_image_comes_from_the_configured_registry(repository):
    ctx = context(
        flannel_image_repository=repository,
        flannel_version="v0.26.7",
        flannel_cni_plugin_version="v1.6.2-flannel1",
    )
    spec = pod_spec(ctx)
    images = {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}
    assert images == {
        "install-cni-plugin": f"{repository}/flannel-cni-plugin:v1.6.2-flannel1",
        "install-cni": f"{repository}/flannel:v0.26.7",
        "kube-flannel": f"{repository}/flannel:v0.26.7",
    }


@pytest.mark.parametrize("node", ["cp1", "w1"])
def test_flanneld_uses_the_interface_towards_the_first_control_plane(node):
    # The same manifest for the whole cluster, whichever node renders it.
    args = pod_spec(context(node))["containers"][0]["args"]
    assert args == [
        "--ip-masq",
        "--kube-subnet-mgr",
        "--iface=10.0.0.11",
        "--iface-can-reach=10.0.0.11",
    ]


def test_first_control_plane_is_found_in_any_order():
    doc = {
        "hosts": [
            {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
            {"name": "cp9", "address": "10.0.0.19", "roles": ["control_plane"]},
        ],
        "settings": {},
    }
    cluster = parse_cluster(doc, "site.yaml")
    ctx = NodeContext.from_cluster(cluster, cluster.nodes[1])
    assert "--iface=10.0.0.19" in pod_spec(ctx)["containers"][0]["args"]
    assert list(flannel.rendered_files(ctx)) == [flannel.MANIFEST]


@pytest.mark.parametrize("node, expected", [("cp1", [flannel.MANIFEST]), ("w1", [])])
def test_only_the_first_control_plane_writes_the_manifest(node, expected):
    ctx = context(node)
    files = flannel.rendered_files(ctx)
    assert list(files) == expected
    assert all(content == flannel.manifest(ctx) for content in files.values())


@pytest.mark.parametrize(
    "repository",
    ['ghcr.io/x"\nkind: Secret', "ghcr.io/x; whoami", "ghcr.io/x\n  hostNetwork: false"],
)
def test_hostile_values_stay_inside_their_strings(repository):
    # Settings are checked on load; even unchecked, a value cannot add YAML structure.
    ctx = NodeContext(
        node=context().node,
        nodes=context().nodes,
        settings=Settings(flannel_image_repository=repository),
    )
    documents = [d for d in yaml.safe_load_all(flannel.manifest(ctx)) if d]
    assert [d["kind"] for d in documents] == KINDS
    assert pod_spec(ctx)["containers"][0]["image"] == f"{repository}/flannel:v0.27.4"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"pod_subnet": "fd00:10:244::/56"}, "flannel's network must be IPv4"),
        ({"flannel_cni_plugin_version": "latest"}, "is not a tag like 'v1.8.0-flannel1'"),
        ({"flannel_cni_plugin_version": "v1.8.0-flannel1\n"}, "is not a tag like"),
        ({"flannel_image_repository": "ghcr.io/x; whoami"}, "is not a registry prefix"),
        ({"flannel_image_repository": "ghcr.io/flannel-io/"}, "is not a registry prefix"),
        ({"flannel_image_repository": "https://ghcr.io/x"}, "is not a registry prefix"),
        ({"flannel_backend": "udp"}, "flannel_backend: 'udp' is not one of"),
    ],
)
def test_bad_flannel_settings_are_refused(settings, message):
    with pytest.raises(ClusterError, match="site.yaml: settings: ") as refused:
        parse_cluster({**CLUSTER, "settings": settings}, "site.yaml")
    assert message in str(refused.value)


# --- the manifest against upstream's -------------------------------------------------------

# Upstream's kube-flannel.yml of the release the project pins (flannel_version's default).
UPSTREAM = Path(__file__).parent / "fixtures" / "flannel" / "kube-flannel-v0.27.4.yml"
# The settings of the comparison with every intended difference at a non-default value.
CHANGED = {
    "flannel_image_repository": "registry.local:5000/mirror/flannel-io",
    "pod_subnet": "172.20.0.0/16",
    "flannel_backend": "host-gw",
}


def by_name(text: str) -> dict[tuple[str, str], dict]:
    """The objects of a manifest by (kind, name), JSON documents in ConfigMaps parsed: two
    JSON texts that differ only in layout are the same configuration."""
    found = {}
    for document in yaml.safe_load_all(text):
        if not document:
            continue
        for key, value in document.get("data", {}).items():
            if key.endswith(".json"):
                document["data"][key] = json.loads(value)
        found[(document["kind"], document["metadata"]["name"])] = document
    return found


def intended(upstream: dict[tuple[str, str], dict], ctx: NodeContext) -> dict:
    """Upstream's objects with the project's intended differences, each one listed here:
    - images from flannel_image_repository (upstream: ghcr.io/flannel-io), tags from
      flannel_version and flannel_cni_plugin_version;
    - net-conf.json: Network is pod_subnet and Backend.Type is flannel_backend (upstream:
      10.244.0.0/16 and vxlan);
    - flanneld also gets --iface and --iface-can-reach with the first control plane's
      address (flanneld_args: not the default route's interface).
    Any other difference (labels, selectors, RBAC, volumes, ...) fails the comparison."""
    expected = copy.deepcopy(upstream)
    s = ctx.settings
    net_conf = expected[("ConfigMap", "kube-flannel-cfg")]["data"]["net-conf.json"]
    net_conf["Network"] = s.pod_subnet
    net_conf["Backend"]["Type"] = s.flannel_backend
    spec = expected[("DaemonSet", flannel.DAEMONSET)]["spec"]["template"]["spec"]
    image = flannel.images(ctx)
    for container in spec["initContainers"] + spec["containers"]:
        plugin = container["name"] == "install-cni-plugin"
        container["image"] = image["cni_plugin"] if plugin else image["flannel"]
    address = ctx.first_control_plane.address
    spec["containers"][0]["args"] += [f"--iface={address}", f"--iface-can-reach={address}"]
    return expected


@pytest.fixture(scope="module")
def upstream() -> dict[tuple[str, str], dict]:
    return by_name(UPSTREAM.read_text(encoding="utf-8"))


def test_fixture_is_upstreams_manifest_of_the_pinned_release(upstream):
    """The comparison is with the release flannel_version and flannel_cni_plugin_version
    pin by default: a new pin needs that release's kube-flannel.yml as the fixture."""
    pinned = Settings()
    assert f"-{pinned.flannel_version}." in UPSTREAM.name
    spec = upstream[("DaemonSet", flannel.DAEMONSET)]["spec"]["template"]["spec"]
    assert {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]} == {
        "install-cni-plugin": f"ghcr.io/flannel-io/flannel-cni-plugin:"
        f"{pinned.flannel_cni_plugin_version}",
        "install-cni": f"ghcr.io/flannel-io/flannel:{pinned.flannel_version}",
        "kube-flannel": f"ghcr.io/flannel-io/flannel:{pinned.flannel_version}",
    }


@pytest.mark.parametrize("settings", [{}, CHANGED], ids=["defaults", "changed"])
@pytest.mark.parametrize("node", ["cp1", "w1"])
def test_manifest_is_upstreams_but_for_the_intended_differences(upstream, settings, node):
    ctx = context(node, **settings)
    rendered = by_name(flannel.manifest(ctx))
    expected = intended(upstream, ctx)
    assert sorted(rendered) == sorted(expected)
    for key, document in expected.items():
        assert rendered[key] == document, key


def test_selector_and_labels_are_upstreams(upstream):
    """Selectors cannot change: applied over an upstream install (or the other way round),
    a DaemonSet with another selector is refused by the API server."""
    rendered = by_name(flannel.manifest(context()))
    for key, document in upstream.items():
        assert rendered[key]["metadata"].get("labels") == document["metadata"].get("labels")
    daemonset = ("DaemonSet", flannel.DAEMONSET)
    assert rendered[daemonset]["spec"]["selector"] == {"matchLabels": {"app": "flannel"}}
    assert rendered[daemonset]["spec"]["selector"] == upstream[daemonset]["spec"]["selector"]
    labels = rendered[daemonset]["spec"]["template"]["metadata"]["labels"]
    assert labels == upstream[daemonset]["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("name", network.INTERFACE)
def test_flannel_is_a_network_plugin(name):
    assert hasattr(network.PLUGIN, name)


@pytest.mark.parametrize(
    "backend, ports",
    [("vxlan", ((8472, 8472, "udp"),)), ("host-gw", ()), ("wireguard", ((51820, 51821, "udp"),))],
)
def test_plugin_ports_per_backend(backend, ports):
    node = Node("w1", "10.0.0.21", ("worker",))
    assert flannel.ports(node, Settings(flannel_backend=backend)) == ports
