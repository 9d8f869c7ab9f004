"""The Kubernetes deploy (packages, kubeadm configuration, init/join, kubeconfig) against
recorded hosts of every supported OS release.

kubeadm, kubelet and a cluster cannot run here: the hosts are the harness's test doubles
(recorded facts, tests/deploy/facts/<os>/kubernetes.yaml) and the output of the commands
the deploy reads is recorded in RESPONSES below (what `kubeadm token create
--print-join-command` and `kubeadm init phase upload-certs` leave in the first control
plane's credential files, and what kubeadm prints when init fails).
"""

from __future__ import annotations

import hashlib

import pytest
import yaml
from pyinfra.api import OperationError

from deploys import kubernetes
from tests.deploy import harness, live

TOKEN = "k8sjn1.0123456789abcdef"
CA_HASH = "sha256:" + "5" * 64
CERTIFICATE_KEY = "3c" * 32
JOIN_LINE = f"kubeadm join 10.0.0.11:6443 --token {TOKEN} --discovery-token-ca-cert-hash {CA_HASH} "
CREDENTIALS_DIR = "/etc/kubernetes/join-credentials"
# What `cat` of the first control plane's credential files returns.
RESPONSES = [
    (
        rf"^cat {CREDENTIALS_DIR}/join-command {CREDENTIALS_DIR}/certificate-key$",
        0,
        f"{JOIN_LINE}\n{CERTIFICATE_KEY}\n",
    ),
    (rf"^cat {CREDENTIALS_DIR}/join-command$", 0, f"{JOIN_LINE}\n"),
]
SECRETS = (TOKEN, TOKEN.split(".")[1], CERTIFICATE_KEY)
# Sha1File of admin.conf in the recorded converged facts.
ADMIN_CONF_SHA = "3f2a8c1d5e7b9a0c4d6e8f1a2b3c5d7e9f0a1b2c"
# kubeadm's own message when a preflight check fails (kubeadm 1.35, swap left on).
PREFLIGHT_FAILURE = (
    "[init] Using Kubernetes version: v1.35.9\n"
    "[preflight] Running pre-flight checks\n"
    "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
    "\t[ERROR Swap]: swap is supported for cgroup v2 only. The kubelet must be properly "
    "configured to use swap.\n"
    "[preflight] If you know what you are doing, you can make a check non-fatal with "
    "`--ignore-preflight-errors=...`\n"
    "To see the stack trace of this error execute with --v=5 or higher"
)
BOOTSTRAP_OPS = [
    "kubeadm: check sandbox image",
    "kubeadm: pull control-plane images",
    "kubeadm: initialize cluster",
    "kubeadm: reset leftovers of an earlier join",
    "kubeadm: delete stale node objects",
    "kubeadm: create join credentials",
    "kubeadm: write join configuration",
    "kubeadm: join control plane",
    "kubeadm: join worker",
    "kubeadm: remove join credentials",
    "kubeadm: install admin kubeconfig for root",
    "kubeadm: install admin kubeconfig for admin_user",
    "kubeadm: fetch admin kubeconfig",
]
# deploys/kubernetes/reconfigure.py: the ConfigMaps, before the joins; the nodes, after.
UPLOAD_OPS = [
    "kubeadm: upload cluster configuration",
    "kubeadm: upload kubelet configuration",
    "kube-proxy: update configuration and restart",
]
RECONFIGURE_OPS = ["kubeadm: reconfigure control plane"]
# deploys/kubernetes/certificates.py: renewal when due, the timer absent by default.
CERTIFICATE_OPS = [
    "kubeadm: renew certificates",
    "kubeadm: stop certificate renewal timer",
    "kubeadm: write kubeadm-certs-renew",
    "kubeadm: write kubeadm-certs-renew.service",
    "kubeadm: write kubeadm-certs-renew.timer",
    "kubeadm: reload systemd units",
]
ALL_OPS = [
    "kubernetes: install apt keyring",
    "kubernetes: write apt source",
    "kubernetes: install kubeadm, kubelet and kubectl",
    "kubernetes: hold kubeadm, kubelet and kubectl",
    "kubeadm: render kubeadm-init.yaml",
    "kubeadm: render kube-scheduler-config.yaml",
    *UPLOAD_OPS,
    *BOOTSTRAP_OPS,
    *RECONFIGURE_OPS,
    *CERTIFICATE_OPS,
]
PACKAGE_OPS = ALL_OPS[:4]
HA = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {"name": "cp2", "address": "10.0.0.12", "roles": ["control_plane"]},
        {"name": "cp3", "address": "10.0.0.13", "roles": ["control_plane"]},
        {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
    ],
    "settings": {"control_plane_endpoint": "10.0.0.10:6443"},
}
WITH_W3 = {
    "hosts": [
        *harness.DEFAULT_CLUSTER["hosts"],
        {"name": "w3", "address": "10.0.0.23", "roles": ["worker"]},
    ],
    "settings": {},
}


def run(**kwargs) -> harness.Run:
    return harness.run(kubernetes.converge, responses=kwargs.pop("responses", RESPONSES), **kwargs)


def join_configuration(result: harness.Run, host: str) -> dict:
    """The JoinConfiguration the run wrote on `host` (through stdin, never uploaded)."""
    (text,) = [text for command, text in result.stdin[host] if "kubeadm-join.yaml" in command]
    return yaml.safe_load(text.split("\n---\n", 1)[1])


def commands_run(result: harness.Run, host: str, name: str) -> list[str]:
    return result.op(host, name).commands


# --- a fresh cluster -----------------------------------------------------------------


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_fresh_cluster(os_release):
    result = run(os=os_release)
    assert result.missing_facts == {}
    assert not any(result.failed(h) for h in ("cp1", "w1", "w2"))
    for host in ("cp1", "w1", "w2"):
        assert result.op_names(host) == ALL_OPS  # every node runs the same operations
    assert result.changed("cp1") == [
        *PACKAGE_OPS,
        "kubeadm: render kubeadm-init.yaml",
        "kubeadm: check sandbox image",
        "kubeadm: pull control-plane images",
        "kubeadm: initialize cluster",
        "kubeadm: create join credentials",
        "kubeadm: remove join credentials",
        "kubeadm: install admin kubeconfig for root",
    ]
    for worker in ("w1", "w2"):
        assert result.changed(worker) == [
            *PACKAGE_OPS,
            "kubeadm: check sandbox image",
            "kubeadm: write join configuration",
            "kubeadm: join worker",
        ]


def test_fresh_cluster_packages():
    result = run()
    keyring = "\n".join(commands_run(result, "w1", "kubernetes: install apt keyring"))
    assert "curl -sSLf https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key" in keyring
    assert 'gpg --batch --dearmor -o "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"' in keyring
    assert result.uploads["w1"]["/etc/apt/sources.list.d/kubernetes.list"] == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        "https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n"
    )
    install = commands_run(result, "w1", "kubernetes: install kubeadm, kubelet and kubectl")
    assert install[0] == "apt-get update"
    assert install[1].endswith(
        "install --allow-downgrades --allow-change-held-packages "
        "kubeadm=1.35.9-1.1 kubelet=1.35.9-1.1 kubectl=1.35.9-1.1"
    )
    assert commands_run(result, "w1", "kubernetes: hold kubeadm, kubelet and kubectl") == [
        "apt-mark hold kubeadm kubelet kubectl"
    ]


def test_fresh_cluster_init_and_credentials():
    result = run()
    init_config = result.uploads["cp1"]["/etc/kubernetes/kubeadm-init.yaml"]
    assert [d["kind"] for d in yaml.safe_load_all(init_config)] == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    ]
    assert "chmod 600 /etc/kubernetes/kubeadm-init.yaml" in result.commands("cp1")
    init, record = commands_run(result, "cp1", "kubeadm: initialize cluster")
    assert record.endswith("/etc/kubernetes/kubeadm-applied.yaml")  # reconfigure.py's
    assert "kubeadm init --config /etc/kubernetes/kubeadm-init.yaml --skip-token-print" in init
    assert commands_run(result, "cp1", "kubeadm: pull control-plane images") == [
        "kubeadm config images pull --kubernetes-version v1.35.9 --image-repository "
        "registry.k8s.io --cri-socket unix:///run/containerd/containerd.sock"
    ]
    credentials = commands_run(result, "cp1", "kubeadm: create join credentials")
    assert "kubeadm token create --ttl 1h0m0s" in credentials[2]
    assert not any("upload-certs" in c for c in credentials)  # no control plane joins
    assert commands_run(result, "cp1", "kubeadm: install admin kubeconfig for root")[-1] == (
        "install -m 600 -o root -g $(id -gn root ) /etc/kubernetes/admin.conf /root/.kube/config"
    )


def test_fresh_cluster_worker_join():
    result = run()
    join = join_configuration(result, "w1")
    assert join["kind"] == "JoinConfiguration"
    assert join["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "10.0.0.11:6443",
        "token": TOKEN,
        "caCertHashes": [CA_HASH],
    }
    assert "controlPlane" not in join
    (write_command,) = [c for c, _ in result.stdin["w1"]]
    assert write_command.startswith("umask 077 && cat > /etc/kubernetes/kubeadm-join.yaml.part")
    (join_command,) = commands_run(result, "w1", "kubeadm: join worker")
    assert "kubeadm join --config /etc/kubernetes/kubeadm-join.yaml" in join_command
    assert join_command.endswith(
        "; status=$?; rm -f /etc/kubernetes/kubeadm-join.yaml ; exit $status"
    )


def test_nothing_secret_in_anything_logged():
    result = run(cluster=HA)
    assert join_configuration(result, "cp2")["controlPlane"]["certificateKey"] == CERTIFICATE_KEY
    logged = [result.log]
    for host, ops in result.ops.items():
        logged += [op.name for op in ops] + [op.error for op in ops] + result.commands(host)
        logged += list(result.uploads[host].values())  # `pyinfra --diff` prints uploads
        logged += [command for command, _ in result.stdin.get(host, [])]
    for secret in SECRETS:
        assert not [line for line in logged if secret in line]
    written = [t for texts in result.stdin.values() for c, t in texts if "kubeadm-join" in c]
    assert len(written) == 3 and all(TOKEN in text for text in written)  # where they belong


def test_no_preflight_check_is_ever_ignored():
    for result in (run(cluster=HA), run(responses=[("kubeadm init", 1, PREFLIGHT_FAILURE)])):
        for host in result.ops:
            assert not [c for c in result.commands(host) if "ignore-preflight-errors" in c]


# --- converged -----------------------------------------------------------------------


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_converged_cluster_changes_nothing(os_release):
    result = run(os=os_release, converged=True)
    assert result.missing_facts == {}
    for host in ("cp1", "w1", "w2"):
        assert result.op_names(host) == ALL_OPS
        assert result.changed(host) == []  # no init, no join, no credentials


def test_converged_scheduler_configuration_changes_nothing():
    scheduler = {"profiles": [{"scheduler_name": "default-scheduler"}]}
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"scheduler": scheduler}}
    first = run(cluster=cluster)
    assert "/etc/kubernetes/kube-scheduler-config.yaml" in first.uploads["cp1"]
    assert "/etc/kubernetes/kube-scheduler-config.yaml" not in first.uploads["w1"]
    converged = run(cluster=cluster, converged=True, host_facts=live.as_left(cluster))
    assert converged.changed("cp1") == []


# --- nodes added later ---------------------------------------------------------------


def test_new_worker_joins_alone():
    result = run(
        cluster=WITH_W3, converged=True, host_facts={"w3": harness.load_facts("ubuntu-24.04")}
    )
    assert result.changed("cp1") == [
        "kubeadm: create join credentials",
        "kubeadm: remove join credentials",
    ]
    assert result.changed("w1") == [] and result.changed("w2") == []
    assert result.changed("w3") == [
        *PACKAGE_OPS,
        "kubeadm: check sandbox image",
        "kubeadm: write join configuration",
        "kubeadm: join worker",
    ]
    assert join_configuration(result, "w3")["discovery"]["bootstrapToken"]["token"] == TOKEN
    assert not any("upload-certs" in c for c in result.commands("cp1"))


def test_new_control_plane_joins_with_the_certificate_key():
    left = {**live.as_left(HA), "cp3": harness.load_facts("ubuntu-24.04")}
    result = run(cluster=HA, converged=True, host_facts=left)
    assert result.changed("cp2") == [] and result.changed("w1") == []
    credentials = commands_run(result, "cp1", "kubeadm: create join credentials")
    assert "kubeadm init phase upload-certs --upload-certs" in credentials[-1]
    assert result.changed("cp3") == [
        *PACKAGE_OPS,
        "kubeadm: check sandbox image",
        "kubeadm: pull control-plane images",
        "kubeadm: write join configuration",
        "kubeadm: join control plane",
        "kubeadm: install admin kubeconfig for root",
    ]
    join = join_configuration(result, "cp3")
    assert join["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "10.0.0.13", "bindPort": 6443},
        "certificateKey": CERTIFICATE_KEY,
    }
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.0.0.10:6443"


def test_credentials_a_killed_run_left_behind_are_removed_by_the_next():
    """Every node joined, then the run was killed before it removed the join credentials
    (found by the lab rehearsal): the next run deletes the token and the directory."""
    left_over = {f"files.Directory(path={CREDENTIALS_DIR})": {"mode": 700, "user": "root"}}
    result = run(converged=True, host_facts={"cp1": left_over})
    assert result.changed("cp1") == ["kubeadm: remove join credentials"]
    (command,) = commands_run(result, "cp1", "kubeadm: remove join credentials")
    assert "kubeadm token delete" in command and f"rm -rf {CREDENTIALS_DIR}" in command
    assert result.changed("w1") == [] and result.changed("w2") == []


def test_control_planes_join_one_at_a_time_and_workers_in_parallel():
    result = run(cluster=HA)
    assert result.op("cp2", "kubeadm: join control plane").serial
    assert result.op("cp3", "kubeadm: join control plane").changed
    assert not result.op("w1", "kubeadm: join worker").serial


# --- a node that left the cluster but keeps an earlier join's state ----------------------

CA_CERT = "files.File(path=/etc/kubernetes/pki/ca.crt)"
KUBELET_CONF = "files.File(path=/etc/kubernetes/kubelet.conf)"
ADMIN_CONF = "files.File(path=/etc/kubernetes/admin.conf)"
LEFT_OVER = {KUBELET_CONF: None, CA_CERT: {"mode": 644, "user": "root", "size": 1107}}
REJOIN_OPS = [
    "kubeadm: check sandbox image",
    "kubeadm: reset leftovers of an earlier join",
    "kubeadm: write join configuration",
    "kubeadm: join worker",
]


def test_a_converged_worker_is_never_reset():
    """A node in the cluster keeps its CA certificate: that is no leftover; the fact is not
    even read (no extra command on converged runs)."""
    result = run(converged=True, host_facts={"w1": {CA_CERT: LEFT_OVER[CA_CERT]}})
    for name in ("cp1", "w1", "w2"):
        assert result.changed(name) == []
        assert not any("kubeadm reset" in c or "delete node" in c for c in result.commands(name))
        assert CA_CERT not in result.reads[name]


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_a_worker_without_kubelet_conf_is_reset_and_rejoins(os_release):
    """kubelet.conf removed, the CA certificate left: the worker is reset, its stale Node
    object deleted on the first control plane, then it joins (in this order: pyinfra runs
    each operation on every host before the next)."""
    result = run(os=os_release, converged=True, host_facts={"w1": LEFT_OVER})
    assert result.changed("w1") == REJOIN_OPS
    assert result.changed("w2") == []
    assert result.changed("cp1") == [
        "kubeadm: delete stale node objects",
        "kubeadm: create join credentials",
        "kubeadm: remove join credentials",
    ]
    (reset,) = commands_run(result, "w1", "kubeadm: reset leftovers of an earlier join")
    assert reset == "kubeadm reset -f --cri-socket unix:///run/containerd/containerd.sock"
    (delete,) = commands_run(result, "cp1", "kubeadm: delete stale node objects")
    assert delete == (
        "kubectl --kubeconfig /etc/kubernetes/admin.conf delete node w1 --ignore-not-found"
    )
    # Every host runs every operation, so each host's order is the run's.
    order = result.op_names("cp1")
    assert order == result.op_names("w1")
    steps = [
        "kubeadm: reset leftovers of an earlier join",
        "kubeadm: delete stale node objects",
        "kubeadm: write join configuration",
        "kubeadm: join worker",
    ]
    assert [order.index(step) for step in steps] == sorted(order.index(step) for step in steps)
    assert join_configuration(result, "w1")["discovery"]["bootstrapToken"]["token"] == TOKEN


def test_a_fresh_worker_is_not_reset():
    result = run()
    assert commands_run(result, "w1", "kubeadm: reset leftovers of an earlier join") == []
    assert commands_run(result, "cp1", "kubeadm: delete stale node objects") == []
    assert CA_CERT in result.reads["w1"]


@pytest.mark.parametrize(
    ("name", "missing"),
    [("cp2", KUBELET_CONF), ("cp1", ADMIN_CONF)],
)
def test_a_control_plane_with_leftovers_is_refused_before_any_change(name, missing):
    state = {missing: None, CA_CERT: LEFT_OVER[CA_CERT]}
    with pytest.raises(OperationError) as refused:
        run(cluster=HA, converged=True, host_facts={**live.as_left(HA), name: state})
    message = str(refused.value)
    assert message.startswith(f"{name} is a control plane without /etc/kubernetes/")
    assert "/etc/kubernetes/pki/ca.crt" in message
    assert "removes its stacked etcd member" in message
    for step in (f"kubectl drain {name}", "kubeadm reset -f", f"kubectl delete node {name}"):
        assert step in message


# --- join credentials are never reused ----------------------------------------------


class CredentialFilesStandIn:
    """Test double of the first control plane's root-only credential directory: `rm -rf`
    empties it, `kubeadm token create ... > join-command` puts a new join command there,
    `cat` reads it back."""

    def __init__(self, left_over: str | None = None):
        self.files = {f"{CREDENTIALS_DIR}/join-command": left_over} if left_over else {}
        self.created = 0

    def remove(self, command: str) -> str:
        self.files.clear()
        return ""

    def create(self, command: str) -> str:
        self.created += 1
        token = f"fresh{self.created}.{'f' * 16}"
        self.files[f"{CREDENTIALS_DIR}/join-command"] = JOIN_LINE.replace(TOKEN, token)
        return ""

    def cat(self, command: str) -> str:
        return "\n".join(self.files.get(path, "") for path in command.split()[1:])

    def responses(self) -> list:
        return [
            (rf"^rm -rf {CREDENTIALS_DIR}$", 0, self.remove),
            (
                r"kubeadm token create .*> /etc/kubernetes/join-credentials/join-command$",
                0,
                self.create,
            ),
            (r"^cat ", 0, self.cat),
        ]


def test_an_expired_token_left_over_is_never_reused():
    """A run stopped before it cleaned up left a join command whose token has expired since;
    the next run joining a node creates a fresh token and joins with that one."""
    expired = JOIN_LINE.replace(TOKEN, "old000.0123456789abcdef")
    stand_in = CredentialFilesStandIn(left_over=expired)
    result = run(
        cluster=WITH_W3,
        converged=True,
        host_facts={"w3": harness.load_facts("ubuntu-24.04")},
        responses=stand_in.responses(),
    )
    token = join_configuration(result, "w3")["discovery"]["bootstrapToken"]["token"]
    assert token.startswith("fresh") and token != "old000.0123456789abcdef"
    assert result.changed("w3")[-1] == "kubeadm: join worker"


def test_each_run_that_joins_creates_its_own_token():
    stand_in = CredentialFilesStandIn()
    tokens = []
    for _ in range(2):
        result = run(cluster=WITH_W3, host_facts={}, responses=stand_in.responses())
        tokens.append(join_configuration(result, "w3")["discovery"]["bootstrapToken"]["token"])
    assert len(set(tokens)) == 2


# --- failures reported clearly -------------------------------------------------------


def test_failed_init_is_reported_with_kubeadms_message():
    result = run(responses=[("kubeadm init --config", 1, PREFLIGHT_FAILURE)])
    (failed,) = result.failed("cp1")
    assert failed.name == "kubeadm: initialize cluster"
    assert "[ERROR Swap]: swap is supported for cgroup v2 only" in failed.error
    # The first control plane stops there: no credentials, no kubeconfig.
    assert result.op_names("cp1")[-1] == "kubeadm: initialize cluster"
    for worker in ("w1", "w2"):
        (failed,) = result.failed(worker)
        assert failed.name == "kubeadm: write join configuration"
        assert "the join credentials on cp1 are unusable" in failed.error
        assert "kubeadm: join worker" not in result.op_names(worker)


def test_sandbox_image_mismatch_stops_before_init():
    message = (
        "kubeadm v1.35.9 expects the sandbox image registry.k8s.io/pause:3.10.1 but containerd"
        " is configured with registry.k8s.io/pause:3.8"
    )
    result = run(responses=[(r"kubeadm config images list", 1, message)])
    (failed,) = result.failed("cp1")
    assert failed.name == "kubeadm: check sandbox image"
    assert message in failed.error
    assert "kubeadm: initialize cluster" not in result.op_names("cp1")


def test_a_node_not_in_the_cluster_gets_the_pinned_release():
    """Another release left by an earlier run on a node that never joined is replaced."""
    fresh = {"deb.DebPackages": {p: ["1.34.2-1.1"] for p in ("kubeadm", "kubelet", "kubectl")}}
    result = run(host_facts={"w2": fresh})
    install = commands_run(result, "w2", "kubernetes: install kubeadm, kubelet and kubectl")
    assert install[-1].endswith("kubeadm=1.35.9-1.1 kubelet=1.35.9-1.1 kubectl=1.35.9-1.1")


def test_minor_switch_on_new_nodes_uses_that_minors_repository():
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"kubernetes_version": "1.30.14"}}
    result = run(cluster=cluster)
    assert "/v1.30/deb/" in result.uploads["w1"]["/etc/apt/sources.list.d/kubernetes.list"]
    init = yaml.safe_load_all(result.uploads["cp1"]["/etc/kubernetes/kubeadm-init.yaml"])
    assert next(init)["apiVersion"] == "kubeadm.k8s.io/v1beta3"


# --- kubeconfig for people ---------------------------------------------------------------


def test_admin_user_gets_the_kubeconfig_on_control_planes():
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"admin_user": "vagrant"}}
    result = run(cluster=cluster, facts={"server.Home(user=vagrant)": "/home/vagrant"})
    assert commands_run(result, "cp1", "kubeadm: install admin kubeconfig for admin_user") == [
        "install -d -m 700 -o vagrant -g $(id -gn vagrant ) /home/vagrant/.kube",
        "install -m 600 -o vagrant -g $(id -gn vagrant ) /etc/kubernetes/admin.conf "
        "/home/vagrant/.kube/config",
    ]
    assert not result.op("w1", "kubeadm: install admin kubeconfig for admin_user").changed
    converged = run(
        cluster=cluster,
        converged=True,
        facts={
            "server.Home(user=vagrant)": "/home/vagrant",
            "files.File(path=/home/vagrant/.kube/config)": {"mode": 600, "user": "vagrant"},
            "files.Sha1File(path=/home/vagrant/.kube/config)": ADMIN_CONF_SHA,
        },
    )
    assert converged.changed("cp1") == []


def test_missing_admin_user_is_refused():
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"admin_user": "bob"}}
    with pytest.raises(OperationError, match="admin_user 'bob' does not exist on cp1"):
        run(cluster=cluster, facts={"server.Home(user=bob)": "~bob"})


def test_admin_kubeconfig_fetched_owner_only(tmp_path):
    dest = tmp_path / "kube" / "cluster.conf"
    kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: kubernetes-admin\n"
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"fetch_kubeconfig": str(dest)}}
    responses = [(r"^cat /etc/kubernetes/admin.conf$", 0, kubeconfig), *RESPONSES]
    result = run(cluster=cluster, responses=responses)
    assert result.op("cp1", "kubeadm: fetch admin kubeconfig").changed
    assert not result.op("w1", "kubeadm: fetch admin kubeconfig").changed
    assert dest.read_text() == kubeconfig
    assert dest.stat().st_mode & 0o777 == 0o600
    assert kubeconfig not in result.log
    sha = hashlib.sha1(kubeconfig.encode()).hexdigest()
    again = run(
        cluster=cluster,
        converged=True,
        facts={
            "files.Sha1File(path=/etc/kubernetes/admin.conf)": sha,
            "files.Sha1File(path=/root/.kube/config)": sha,
        },
        responses=responses,
    )
    assert again.changed("cp1") == []


def test_an_unreadable_admin_kubeconfig_fails_the_fetch_on_that_host_only(tmp_path):
    """Known only while the run executes: the operation fails on its host, with the
    reason, and nothing is raised (deploys/failure.py)."""
    dest = tmp_path / "cluster.conf"
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"fetch_kubeconfig": str(dest)}}
    denied = "cat: /etc/kubernetes/admin.conf: Permission denied"
    responses = [(r"^cat /etc/kubernetes/admin.conf$", 1, denied), *RESPONSES]
    result = run(cluster=cluster, responses=responses)
    (failed,) = result.failed("cp1")
    assert failed.name == "kubeadm: fetch admin kubeconfig"
    assert f"reading admin.conf on cp1 failed: {denied}" in result.log
    assert "Traceback" not in result.log and not dest.exists()
    assert not result.failed("w1")


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_sandbox_check_compares_with_the_image_containerd_loaded(os_release):
    """The loaded sandbox image comes from the parsed `containerd config dump` of the
    runtime's fact (read when the check executes), not from a second parse on the node."""
    state = harness.load_facts(os_release)["deploys.runtime.facts.ContainerdState"]
    dump = {**state["dump"], "version": 2, "plugins": {"io.containerd.grpc.v1.cri": {}}}
    dump["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] = "mirror.example/pause:3.8"
    changed = {"deploys.runtime.facts.ContainerdState": {**state, "dump": dump}}
    result = run(os=os_release, host_facts={"w1": changed})
    (check,) = result.op("w1", "kubeadm: check sandbox image").commands
    assert check.startswith("loaded=mirror.example/pause:3.8 && expected=$( kubeadm config")
    (check,) = result.op("w2", "kubeadm: check sandbox image").commands
    assert check.startswith("loaded=registry.k8s.io/pause:3.10.1 && ")
