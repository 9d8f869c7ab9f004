"""The end of a cluster run: readiness check, bounded wait, summary."""

import copy
import json

import pytest
from pyinfra.operations import server

from deploys.addons import ready, wait_for_cluster
from deploys.context import NodeContext
from deploys.settings import parse_cluster
from tests.deploy import harness

STATUS = "deploys.addons.ready.ClusterStatus"
READY = harness.load_facts("debian-12", converged=True)[STATUS]
NODES = ["cp1", "w1", "w2"]
TOKEN = "zyrsQqY6Krsy3gvWUNHK2kvKWHmJZneL"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


def status_with(change) -> dict:
    status = copy.deepcopy(READY)
    change(status["items"])
    return status


def item(items, name):
    return next(i for i in items if i["metadata"]["name"] == name)


def not_ready(obj):
    obj["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def context(**settings) -> NodeContext:
    parsed = parse_cluster({**harness.DEFAULT_CLUSTER, "settings": settings}, "<test cluster>")
    return NodeContext.from_cluster(parsed, parsed.control_planes[0])


# --- what "ready" means ---


def test_the_recorded_converged_cluster_is_ready():
    assert ready.problems(READY, NODES) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda items: items.remove(item(items, "w2")), ["node w2 is not registered"]),
        (lambda items: not_ready(item(items, "w1")), ["node w1 is not Ready"]),
        (
            lambda items: items.remove(item(items, "kube-flannel-ds-m2l8c")),
            ["node w2 has no ready flannel pod"],
        ),
        (
            lambda items: not_ready(item(items, "kube-flannel-ds-4xk2p")),
            ["node cp1 has no ready flannel pod"],
        ),
        (
            lambda items: item(items, "coredns-66bc5c9577-7tq2x")["status"].update(phase="Pending"),
            ["pod kube-system/coredns-66bc5c9577-7tq2x is Pending"],
        ),
        (
            lambda items: not_ready(item(items, "kube-proxy-c2v4t")),
            ["pod kube-system/kube-proxy-c2v4t is Running"],
        ),
        (
            lambda items: item(items, "etcd-cp1")["status"].pop("phase"),
            ["pod kube-system/etcd-cp1 is unknown"],
        ),
    ],
    ids=[
        "unregistered",
        "node-not-ready",
        "no-flannel",
        "flannel-not-ready",
        "pending",
        "unready",
        "no-phase",
    ],
)
def test_what_keeps_the_cluster_from_being_ready(change, expected):
    assert ready.problems(status_with(change), NODES) == expected


@pytest.mark.parametrize(
    "change",
    [
        lambda items: items.append(
            {
                "kind": "Pod",
                "metadata": {"namespace": "kube-system", "name": "job-x"},
                "status": {"phase": "Succeeded"},
            }
        ),
        lambda items: items.append(
            {
                "kind": "Pod",
                "metadata": {"namespace": "default", "name": "web"},
                "status": {"phase": "Pending"},
            }
        ),
        lambda items: items.append(
            {"kind": "Node", "metadata": {"name": "extra"}, "status": {"conditions": []}}
        ),
    ],
    ids=["finished-job", "user-pod", "node-not-in-inventory"],
)
def test_what_does_not_matter(change):
    assert ready.problems(status_with(change), NODES) == []


def test_no_answer_from_the_api_server_is_not_ready():
    assert ready.problems(None, NODES) == ["the API server did not answer"]


def kubectl_output(*documents) -> list[str]:
    return "\n".join(json.dumps(d, indent=2) for d in documents).splitlines()


NODE = {"kind": "Node", "metadata": {"name": "cp1"}}
POD = {"kind": "Pod", "metadata": {"namespace": "kube-system", "name": "etcd-cp1"}}


@pytest.mark.parametrize(
    "output, expected",
    [
        (
            kubectl_output(
                {"kind": "List", "items": [NODE]},
                {"kind": "List", "items": [POD]},
                {"kind": "List", "items": []},
            ),
            {"kind": "List", "items": [NODE, POD]},
        ),
        (['{"items": []}{"items": []}', '{"items": []}'], {"kind": "List", "items": []}),
        (kubectl_output({"kind": "List", "items": [NODE]}), None),
        (kubectl_output(*[{"items": []}] * 4), None),
        (['{"items": []}', '{"items": [', "{trunc"], None),
        (["error: the server doesn't have a resource type"], None),
    ],
    ids=["three-lists", "compact", "nodes-only", "too-many", "truncated", "not-json"],
)
def test_status_fact_reads_kubectls_three_lists(output, expected):
    assert ready.ClusterStatus().process(output) == expected


def test_status_fact_never_fails_the_plan():
    assert ready.ClusterStatus().command() == (
        f"( {KUBECTL} get nodes -o json && {KUBECTL} -n kube-system get pods -o json"
        f" && {KUBECTL} -n kube-flannel get pods -o json ) 2>/dev/null || true"
    )


# --- the summary ---


def test_summary_lists_nodes_roles_versions_kubeconfig_and_kuboard():
    ctx = context(
        admin_user="ops",
        fetch_kubeconfig=".kube/site.conf",
        kuboard_server="http://10.0.0.5:80",
        kuboard_cluster_name="site-a",
        kuboard_agent_token=TOKEN,
    )
    lines = ready.summary(ctx, READY)
    text = "\n".join(lines)
    assert lines[0] == "cluster ready: 3 nodes, API server 10.0.0.11:6443"
    assert lines[1].split() == [
        "cp1",
        "10.0.0.11",
        "control-plane",
        "v1.34.2",
        "containerd://1.7.28",
    ]
    assert lines[3].split() == ["w2", "10.0.0.22", "worker", "v1.34.2", "containerd://1.7.28"]
    version = ctx.settings.kubernetes_version
    assert f"Kubernetes {version}, flannel v0.27.4 (vxlan, pod network 10.244.0.0/16)" in lines
    assert lines[-2] == (
        "kubeconfig: /etc/kubernetes/admin.conf on cp1; ~ops/.kube/config on the control"
        " planes; .kube/site.conf on this machine"
    )
    assert lines[-1] == "Kuboard: http://10.0.0.5:80 (cluster site-a, imported by agent)"
    assert TOKEN not in text


def test_summary_without_extras_or_status():
    lines = ready.summary(context(), None)
    assert lines[1].split() == ["cp1", "10.0.0.11", "control-plane", "?", "?"]
    assert lines[-2:] == [
        "kubeconfig: /etc/kubernetes/admin.conf on cp1",
        "Kuboard: not configured",
    ]


SNAPSHOT = "/var/lib/pyinfra-kubeadm/etcd-snapshots/etcd-before-v1.35.9-20261130T040000Z.db"


def test_summary_names_the_newest_etcd_snapshot():
    lines = ready.summary(context(), None, snapshot=SNAPSHOT)
    assert lines[-1] == f"etcd snapshot: {SNAPSHOT} on cp1 (the newest, saved before an upgrade)"
    assert not any("etcd snapshot" in line for line in ready.summary(context(), None))


@pytest.mark.parametrize(("listing", "shown"), [(SNAPSHOT + "\n", True), ("", False)])
def test_the_printed_summary_reads_the_snapshot_from_the_first_control_plane(listing, shown):
    facts = harness.load_facts("debian-12", converged=True)
    run = harness.run(
        _applies_then_waits,
        os="debian-12",
        facts={STATUS: facts[STATUS]},
        responses=[(r"ls -1t /var/lib/pyinfra-kubeadm/etcd-snapshots/\*\.db", 0, listing)],
    )
    assert (f"[cp1] etcd snapshot: {SNAPSHOT} on cp1" in run.log) is shown


def stranger(items):
    extra = copy.deepcopy(item(items, "w2"))
    extra["metadata"]["name"] = "old-w9"
    items.append(extra)


def test_summary_lists_nodes_in_the_cluster_but_not_in_the_file():
    lines = ready.summary(context(), status_with(stranger))
    assert lines[-1] == (
        "in the cluster but not in the cluster file: old-w9 (left as they are: to remove one, "
        "put it back in the file and run deploys/remove.py --limit NAME)"
    )
    assert ready.strangers(context(), READY) == []


def test_a_converged_run_with_a_node_not_in_the_file_says_so_and_deletes_nothing():
    run = harness.run(wait_for_cluster, converged=True, facts={STATUS: status_with(stranger)})
    assert run.changed("cp1") == ["cluster: print summary"]  # printing only: no command
    assert run.commands("cp1") == ["call print_summary"]
    assert "in the cluster but not in the cluster file: old-w9" in run.log


# --- the deploy ---


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_a_ready_cluster_waits_for_nothing_and_changes_nothing(os_release):
    run = harness.run(wait_for_cluster, os=os_release, converged=True)
    assert run.op_names("cp1") == ["cluster: wait until ready", "cluster: print summary"]
    assert run.changed("cp1") == []
    assert "cluster ready:" not in run.log


@pytest.mark.parametrize("status", [None, status_with(lambda items: not_ready(item(items, "w2")))])
def test_a_cluster_not_yet_ready_is_waited_for_then_summarised(status):
    doc = {**harness.DEFAULT_CLUSTER, "settings": {"ready_timeout": 300}}
    run = harness.run(wait_for_cluster, cluster=doc, facts={STATUS: status})
    assert run.changed("cp1") == ["cluster: wait until ready", "cluster: print summary"]
    assert run.op("cp1", "cluster: wait until ready").commands == [
        f"{KUBECTL} wait --for=condition=Ready node/cp1 node/w1 node/w2 --timeout=300s",
        f"{KUBECTL} -n kube-flannel rollout status daemonset/kube-flannel-ds --timeout=300s",
        f"{KUBECTL} -n kube-system wait --for=condition=Ready pods --all"
        " '--field-selector=status.phase!=Succeeded' --timeout=300s",
    ]
    assert "[cp1] cluster ready: 3 nodes, API server 10.0.0.11:6443" in run.log
    assert "[cp1] kubeconfig: /etc/kubernetes/admin.conf on cp1" in run.log


def _applies_then_waits():
    """A run in which the first control plane changed (as when the add-ons are applied)."""
    server.shell(name="add-ons: apply something", commands=["true"])
    wait_for_cluster()


@pytest.mark.parametrize("os_release", ["debian-12", "ubuntu-24.04"])
def test_a_run_that_changed_the_cluster_ends_with_the_summary_though_it_was_ready(os_release):
    """The cluster can be ready before the final wait (the Kuboard agent's wait needs the pod
    network); a cold run must still end with the summary (found by the lab rehearsal)."""
    facts = harness.load_facts(os_release, converged=True)
    run = harness.run(_applies_then_waits, os=os_release, facts={STATUS: facts[STATUS]})
    assert run.changed("cp1") == ["add-ons: apply something", "cluster: print summary"]
    assert "[cp1] cluster ready: 3 nodes, API server 10.0.0.11:6443" in run.log


def test_a_wait_that_times_out_fails_the_run_without_a_summary():
    run = harness.run(
        wait_for_cluster,
        responses=[("rollout status", 1, "error: timed out waiting for the condition")],
    )
    (failed,) = run.failed("cp1")
    assert failed.name == "cluster: wait until ready"
    assert "timed out waiting" in failed.error
    assert "cluster: print summary" not in run.op_names("cp1")


def test_only_the_first_control_plane_waits():
    run = harness.run(wait_for_cluster)
    assert run.ops["w1"] == [] and run.ops["w2"] == []


def test_the_token_is_not_in_the_printed_summary():
    doc = {
        **harness.DEFAULT_CLUSTER,
        "settings": {
            "kuboard_server": "http://10.0.0.5:80",
            "kuboard_cluster_name": "site-a",
            "kuboard_agent_token": TOKEN,
        },
    }
    run = harness.run(wait_for_cluster, cluster=doc, facts={STATUS: None})
    assert "[cp1] Kuboard: http://10.0.0.5:80" in run.log
    assert TOKEN not in run.log


def test_no_recorded_command_carries_the_settings(monkeypatch):
    # pyinfra keeps (and its debug/JSON output shows) each command's repr, which for a
    # python.call includes its arguments.
    seen = []
    text_of = harness._command_text

    def recording(command):
        seen.append(repr(command))
        return text_of(command)

    monkeypatch.setattr(harness, "_command_text", recording)
    doc = {
        **harness.DEFAULT_CLUSTER,
        "settings": {
            "kuboard_server": "http://10.0.0.5:80",
            "kuboard_cluster_name": "site-a",
            "kuboard_agent_token": TOKEN,
        },
    }
    harness.run(wait_for_cluster, cluster=doc, facts={STATUS: None})
    assert any("print_summary" in r for r in seen)
    assert not any(TOKEN in r for r in seen)
