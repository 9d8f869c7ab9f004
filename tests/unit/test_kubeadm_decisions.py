"""The Kubernetes concern's pure decisions: versions, apt repository, packages, credentials,
commands, kubeconfig checks, and the cluster-file checks of its settings."""

from __future__ import annotations

import copy
import hashlib
import shlex

import pytest

from deploys import versions
from deploys.distro import apt
from deploys.kubernetes import bootstrap, packages
from deploys.settings import ClusterError, Settings, parse_cluster

# --- versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "api"),
    [
        ("1.27.0", "kubeadm.k8s.io/v1beta3"),
        ("1.28.15", "kubeadm.k8s.io/v1beta3"),
        ("v1.30.14", "kubeadm.k8s.io/v1beta3"),
        ("1.31.0", "kubeadm.k8s.io/v1beta4"),
        ("1.35.9", "kubeadm.k8s.io/v1beta4"),
        ("1.36.1", "kubeadm.k8s.io/v1beta4"),
    ],
)
def test_kubeadm_api_version(version, api):
    assert versions.kubeadm_api_version(version) == api


@pytest.mark.parametrize("version", ["1.26.15", "1.99.0", "2.0.0", "1.35", "latest", "; id"])
def test_kubeadm_api_version_refuses_unsupported(version):
    with pytest.raises(ValueError):
        versions.kubeadm_api_version(version)


@pytest.mark.parametrize(
    ("base", "version", "url"),
    [
        (
            "https://pkgs.k8s.io/core:/stable:",
            "1.35.9",
            "https://pkgs.k8s.io/core:/stable:/v1.35/deb/",
        ),
        (
            "https://pkgs.k8s.io/core:/stable:/",
            "1.27.3",
            "https://pkgs.k8s.io/core:/stable:/v1.27/deb/",
        ),
        (
            "https://mirrors.aliyun.com/kubernetes-new/core/stable",
            "1.31.2",
            "https://mirrors.aliyun.com/kubernetes-new/core/stable/v1.31/deb/",
        ),
    ],
)
def test_kubernetes_apt_url(base, version, url):
    assert versions.kubernetes_apt_url(base, version) == url


# --- packages --------------------------------------------------------------------------


def test_apt_source_is_signed_by_the_keyring():
    assert packages.apt_source(Settings(kubernetes_version="1.33.4")) == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
        "https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n"
    )


@pytest.mark.parametrize(
    ("version", "revision", "pinned"),
    [("1.35.9", "1.1", "1.35.9-1.1"), ("1.28.14", "2.1", "1.28.14-2.1")],
)
def test_package_version(version, revision, pinned):
    settings = Settings(kubernetes_version=version, kubernetes_package_revision=revision)
    assert packages.package_version(settings) == pinned


@pytest.mark.parametrize(
    ("output", "names"),
    [
        (None, set()),
        ("", set()),
        ("kubeadm\nkubectl\nkubelet", {"kubeadm", "kubectl", "kubelet"}),
        ("containerd\nkubelet\n", {"containerd", "kubelet"}),
    ],
)
def test_held_packages(output, names):
    assert apt.held(output) == names


# --- credentials -------------------------------------------------------------------------

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "9" * 64
KEY = "a1" * 32
JOIN_LINE = f"kubeadm join 10.0.0.11:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} "


@pytest.mark.parametrize(
    ("text", "control_plane", "key"),
    [
        (JOIN_LINE, False, ""),
        (f"{JOIN_LINE}\n", False, ""),
        (f"{JOIN_LINE}\n{KEY}\n", True, KEY),
        (f"{JOIN_LINE}\n{KEY}\n", False, ""),
    ],
)
def test_parse_credentials(text, control_plane, key):
    assert bootstrap.parse_credentials(text, control_plane) == (
        bootstrap.JoinCredentials(TOKEN, HASH, key)
    )


@pytest.mark.parametrize(
    ("text", "control_plane"),
    [
        ("", False),
        ("kubeadm join 10.0.0.11:6443 --token abcdef.0123456789abcdef", False),
        (f"kubeadm join x --discovery-token-ca-cert-hash {HASH}", False),
        (JOIN_LINE.replace(TOKEN, "ABCDEF.0123456789ABCDEF"), False),
        (JOIN_LINE.replace(TOKEN, f"{TOKEN}; whoami"), False),
        (JOIN_LINE.replace(HASH, "sha256:abc"), False),
        (JOIN_LINE, True),  # a control plane needs the certificate key
        (f"{JOIN_LINE}\n{KEY}x\n", True),
        (f"{JOIN_LINE}\n{KEY[:-2]}\n", True),
        ("error: the server could not find the requested resource", False),
    ],
)
def test_unusable_credentials_are_refused_without_quoting_them(text, control_plane):
    with pytest.raises(ValueError) as raised:
        bootstrap.parse_credentials(text, control_plane)
    assert TOKEN not in str(raised.value) and KEY not in str(raised.value)


def test_credentials_commands_keep_secrets_out_of_command_lines():
    commands = [c.get_raw_value() for c in bootstrap.credentials_commands(certificate_key=True)]
    assert commands == [
        "rm -rf /etc/kubernetes/join-credentials",
        "install -d -m 700 /etc/kubernetes/join-credentials",
        "umask 077 && kubeadm token create --ttl 1h0m0s --description 'pyinfra-kubeadm join' "
        "--print-join-command > /etc/kubernetes/join-credentials/join-command",
        "umask 077 && kubeadm init phase upload-certs --upload-certs --config "
        "/etc/kubernetes/kubeadm-init.yaml | grep -xE '[0-9a-f]{64}' > "
        "/etc/kubernetes/join-credentials/certificate-key",
    ]


def test_worker_joins_need_no_certificate_upload():
    commands = [c.get_raw_value() for c in bootstrap.credentials_commands(certificate_key=False)]
    assert not any("upload-certs" in c for c in commands)


def test_cleanup_deletes_the_token_by_its_public_id_and_the_directory():
    command = bootstrap.cleanup_command().get_raw_value()
    assert command.startswith("kubeadm token delete $(sed -n ")
    assert command.endswith("; rm -rf /etc/kubernetes/join-credentials")


# --- commands ----------------------------------------------------------------------------


def test_init_validates_and_never_prints_or_ignores():
    command = bootstrap.init_command(Settings()).get_raw_value()
    assert command.startswith(
        "kubeadm config validate --config /etc/kubernetes/kubeadm-init.yaml && kubeadm init "
        "--config /etc/kubernetes/kubeadm-init.yaml --skip-token-print "
        "--skip-certificate-key-print || {"
    )
    assert "kubeadm reset -f" in command
    assert "ignore-preflight-errors" not in command


def test_join_removes_its_configuration_whatever_the_outcome():
    command = bootstrap.join_command(Settings()).get_raw_value()
    join, _, after = command.partition("; status=$?; ")
    assert join.startswith(
        "kubeadm config validate --config /etc/kubernetes/kubeadm-join.yaml && "
        "kubeadm join --config /etc/kubernetes/kubeadm-join.yaml || {"
    )
    assert after == "rm -f /etc/kubernetes/kubeadm-join.yaml ; exit $status"
    assert "ignore-preflight-errors" not in command


def test_sandbox_check_compares_kubeadm_with_what_containerd_loaded():
    settings = Settings(kubernetes_version="1.33.4")
    command = bootstrap.sandbox_check(settings, "registry.k8s.io/pause:3.10").get_raw_value()
    assert command.startswith(
        "loaded=registry.k8s.io/pause:3.10 && expected=$( kubeadm config images list "
        "--kubernetes-version v1.33.4 --image-repository registry.k8s.io | grep '/pause:')"
    )
    assert 'if [ "$expected" != "$loaded" ]; then echo "kubeadm v1.33.4 expects' in command


@pytest.mark.parametrize("value", ["; whoami", "$(reboot)", "a'b", "x y"])
def test_image_flags_and_the_loaded_image_are_quoted(value):
    """Even a registry the cluster file would refuse, or whatever containerd reports, stays
    one shell word."""
    settings = Settings(image_repository=value)
    for command in (bootstrap.sandbox_check(settings, value), bootstrap.pull_images(settings)):
        text = command.get_raw_value()
        assert value not in text.replace(shlex.quote(value), "")


# --- kubeconfig checks -------------------------------------------------------------------

SHA = "3f2a8c1d5e7b9a0c4d6e8f1a2b3c5d7e9f0a1b2c"
OWNED = {"mode": 600, "user": "root", "group": "root"}


@pytest.mark.parametrize(
    ("source", "dest", "dest_sha", "current"),
    [
        (SHA, OWNED, SHA, True),
        (SHA, None, None, False),
        (SHA, OWNED, "0" * 40, False),
        (SHA, {**OWNED, "mode": 644}, SHA, False),
        (SHA, {**OWNED, "user": "vagrant"}, SHA, False),
        (None, OWNED, SHA, False),
    ],
)
def test_kubeconfig_current(source, dest, dest_sha, current):
    assert bootstrap.kubeconfig_current(source, dest, dest_sha, "root") is current


def test_local_copy_current(tmp_path):
    path = tmp_path / "admin.conf"
    content = b"apiVersion: v1\n"
    assert not bootstrap.local_copy_current(path, hashlib.sha1(content).hexdigest())
    path.write_bytes(content)
    path.chmod(0o644)
    assert not bootstrap.local_copy_current(path, hashlib.sha1(content).hexdigest())
    path.chmod(0o600)
    assert bootstrap.local_copy_current(path, hashlib.sha1(content).hexdigest())
    assert not bootstrap.local_copy_current(path, "0" * 40)
    assert not bootstrap.local_copy_current(path, None)


# --- cluster-file checks of the Kubernetes settings ---------------------------------------

BASE = {
    "hosts": [{"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]}],
    "settings": {},
}


def with_settings(**values):
    doc = copy.deepcopy(BASE)
    doc["settings"].update(values)
    return doc


@pytest.mark.parametrize(
    "values",
    [
        {"kubernetes_apt_repo": "https://mirrors.aliyun.com/kubernetes-new/core/stable"},
        {"kubernetes_apt_repo": "http://10.0.0.5:8080/k8s/core:/stable:"},
        {"kubernetes_package_revision": "2.1"},
        {"image_repository": "registry.aliyuncs.com/google_containers"},
        {"image_repository": "localhost:5000/k8s"},
        {"admin_user": "vagrant"},
        {"cert_sans": ["api.example.internal", "10.0.0.10", "*.k8s.example", "fd00::1"]},
        {"scheduler": {}},
        {"scheduler": {"percentage_of_nodes_to_score": 100, "profiles": []}},
        {
            "scheduler": {
                "profiles": [
                    {
                        "scheduler_name": "default-scheduler",
                        "plugins": {
                            "enabled": [
                                "PrioritySort",
                                "DefaultBinder",
                                "ImageLocality",
                                "NodeResourcesFit",
                            ],
                            "disabled": ["*"],
                        },
                        "score_weights": {"NodeResourcesFit": 100},
                    }
                ]
            }
        },
    ],
)
def test_kubernetes_settings_accepted(values):
    parse_cluster(with_settings(**values))


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (
            {"kubernetes_apt_repo": "https://pkgs.k8s.io/core:/stable: ; whoami"},
            "kubernetes_apt_repo",
        ),
        ({"kubernetes_apt_repo": "https://x/\n[trusted=yes]"}, "kubernetes_apt_repo"),
        ({"kubernetes_apt_repo": "ftp://pkgs.k8s.io/"}, "kubernetes_apt_repo"),
        ({"kubernetes_apt_repo": "https://user:pw@host/"}, "kubernetes_apt_repo"),
        ({"kubernetes_package_revision": "1.1; id"}, "kubernetes_package_revision"),
        ({"kubernetes_package_revision": ""}, "kubernetes_package_revision"),
        ({"image_repository": "; whoami"}, "image_repository"),
        ({"image_repository": "Registry.k8s.io"}, "image_repository"),
        ({"image_repository": ""}, "image_repository"),
        ({"admin_user": "root; whoami"}, "admin_user"),
        ({"admin_user": "Bob"}, "admin_user"),
        ({"cert_sans": ["a b"]}, "cert_sans"),
        ({"cert_sans": ["x\ny"]}, "cert_sans"),
        ({"cert_sans": [7]}, "cert_sans"),
        ({"scheduler": {"percentage": 5}}, "unknown key 'percentage'"),
        ({"scheduler": {"percentage_of_nodes_to_score": 101}}, "0..100"),
        ({"scheduler": {"percentage_of_nodes_to_score": True}}, "0..100"),
        ({"scheduler": {"profiles": {"a": 1}}}, "list of profiles"),
        ({"scheduler": {"profiles": [{"plugins": {}}]}}, "scheduler_name"),
        ({"scheduler": {"profiles": [{"scheduler_name": "a\n"}]}}, "scheduler_name"),
        (
            {"scheduler": {"profiles": [{"scheduler_name": "a", "plugins": {"on": []}}]}},
            "unknown key 'on'",
        ),
        (
            {"scheduler": {"profiles": [{"scheduler_name": "a", "plugins": {"enabled": "X"}}]}},
            "plugin names",
        ),
        (
            {"scheduler": {"profiles": [{"scheduler_name": "a", "plugins": {"enabled": ["a b"]}}]}},
            "plugin names",
        ),
        (
            {"scheduler": {"profiles": [{"scheduler_name": "a", "score_weights": {"X": 0}}]}},
            "score_weights",
        ),
        (
            {"scheduler": {"profiles": [{"scheduler_name": "a", "score_weights": {"X": "2"}}]}},
            "score_weights",
        ),
    ],
)
def test_kubernetes_settings_refused(values, field):
    with pytest.raises(ClusterError, match=field.replace("(", r"\(")):
        parse_cluster(with_settings(**values))


@pytest.mark.parametrize(
    ("version", "validates"), [("1.27.16", False), ("1.28.0", True), ("1.35.9", True)]
)
def test_config_validate_only_where_kubeadm_has_it(version, validates):
    assert versions.kubeadm_validates_config(version) is validates
    for command in (bootstrap.init_command, bootstrap.join_command):
        text = command(Settings(kubernetes_version=version)).get_raw_value()
        assert ("kubeadm config validate --config" in text) is validates
        assert "--config /etc/kubernetes/kubeadm-" in text


def test_default_release_is_supported_and_uses_v1beta4():
    settings = Settings()
    assert versions.kubernetes_minor(settings.kubernetes_version) == 35
    assert versions.kubeadm_api_version(settings.kubernetes_version) == "kubeadm.k8s.io/v1beta4"
    assert packages.package_version(settings) == "1.35.9-1.1"
