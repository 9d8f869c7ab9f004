"""containerd (deploys/runtime) on each supported release: a fresh host gets the package,
config.toml in the format of the containerd installed, crictl's configuration, the guard
and a check of what containerd loaded; a converged host gets no change and few remote
reads; drift is repaired; a loaded configuration that is not the wanted one fails the host,
by name."""

import copy

import pytest
import yaml

from deploys import runtime
from deploys.runtime import config
from deploys.runtime.registries import basic_authorization
from deploys.settings import Settings
from tests.deploy import harness

STATE = "deploys.runtime.facts.ContainerdState"
HOSTS = ("cp1", "w1", "w2")
CONFIG = "/etc/containerd/config.toml"
CRICTL = "/etc/crictl.yaml"
GUARD = (
    "/usr/local/sbin/containerd-sandbox-image",
    "/etc/systemd/system/containerd-sandbox-image.service",
    "/etc/systemd/system/containerd-sandbox-image.timer",
)
# Debian 11's own containerd (1.4) is too old: a Debian 11 cluster takes Docker's.
SETTINGS = {"debian-11": {"containerd_source": "docker"}}
# The config.toml format each release's containerd reads (fixtures: 1.7, 2.2, 2.2, 1.7 from
# Docker, 1.6, 1.7).
CONFIG_VERSION = {
    "ubuntu-20.04": 2,
    "ubuntu-22.04": 3,
    "ubuntu-24.04": 3,
    "debian-11": 2,
    "debian-12": 2,
    "debian-13": 2,
}
FRESH_OPERATIONS = [
    "containerd: install {package}",
    "containerd: hold {package}",
    "containerd: write config.toml",
    "containerd: restart with new config.toml",
    "containerd: enable and start service",
    f"containerd: write {CRICTL}",
    *(f"containerd: write {path}" for path in GUARD),
    "containerd: reload systemd units",
    "containerd: enable containerd-sandbox-image.service",
    "containerd: enable and start containerd-sandbox-image.timer",
    "containerd: verify loaded configuration and sandbox image",
]
CONVERGED_OPERATIONS = [
    "containerd: write config.toml",
    "containerd: restart with new config.toml",
    f"containerd: write {CRICTL}",
    *(f"containerd: write {path}" for path in GUARD),
    "containerd: reload systemd units",
    "containerd: verify loaded configuration and sandbox image",
]
DOCKER_FILES = ("/etc/apt/keyrings/docker.asc", "/etc/apt/sources.list.d/docker.list")


def cluster(os_release: str, **settings) -> dict:
    doc = copy.deepcopy(harness.DEFAULT_CLUSTER)
    doc["settings"] = {**SETTINGS.get(os_release, {}), **settings}
    return doc


def state(os_release: str, converged: bool = False, **changes) -> dict:
    recorded = harness.load_facts(os_release, converged=converged)[STATE]
    return {**copy.deepcopy(recorded), **changes}


def run(os_release: str, converged: bool = False, settings=None, state_changes=None, **kwargs):
    """A run on all three hosts; `state_changes` alter the recorded ContainerdState of cp1
    (of the converged host when `converged`)."""
    host_facts = kwargs.pop("host_facts", {})
    if state_changes:
        changed = state(os_release, converged, **state_changes)
        host_facts = {**host_facts, "cp1": {STATE: changed, **host_facts.get("cp1", {})}}
    return harness.run(
        runtime.converge,
        os=os_release,
        cluster=cluster(os_release, **(settings or {})),
        converged=converged,
        host_facts=host_facts,
        **kwargs,
    )


def package(os_release: str) -> str:
    return "containerd.io" if os_release == "debian-11" else "containerd"


# --- a fresh host -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=harness.OS_RELEASES)
def fresh(request):
    return request.param, run(request.param)


def test_fresh_host_has_every_fact_recorded(fresh):
    _, result = fresh
    assert result.missing_facts == {}
    assert all(not result.failed(host) for host in HOSTS)


@pytest.mark.parametrize("host", HOSTS)
def test_fresh_host_gets_every_operation(fresh, host):
    os_release, result = fresh
    docker = [f"containerd: write {path}" for path in DOCKER_FILES]
    expected = [name.format(package=package(os_release)) for name in FRESH_OPERATIONS]
    assert result.op_names(host) == (docker if os_release == "debian-11" else []) + expected


def test_fresh_host_installs_and_holds_the_package(fresh):
    os_release, result = fresh
    update, install = result.op("cp1", f"containerd: install {package(os_release)}").commands
    assert update == "apt-get update"
    assert install.endswith(f" install --allow-change-held-packages {package(os_release)}")
    hold = result.op("cp1", f"containerd: hold {package(os_release)}").commands
    assert hold == [f"apt-mark hold {package(os_release)}"]


def test_fresh_host_config_has_the_installed_versions_format(fresh):
    os_release, result = fresh
    written = result.uploads["cp1"][CONFIG]
    assert f"\nversion = {CONFIG_VERSION[os_release]}\n" in written
    cri = "io.containerd.grpc.v1.cri" if CONFIG_VERSION[os_release] == 2 else "io.containerd.cri.v1"
    assert f'[plugins."{cri}' in written
    assert "SystemdCgroup = true" in written
    assert 'config_path = "/etc/containerd/certs.d"' in written


def test_fresh_host_restarts_then_waits_then_records(fresh):
    _, result = fresh
    restart, wait, record = result.op("cp1", "containerd: restart with new config.toml").commands
    assert restart == "systemctl restart containerd.service"
    assert wait.startswith("timeout 60 sh -c 'until ctr version")
    assert record == f"sha256sum {CONFIG} > /var/lib/containerd/config.toml.applied"


def test_fresh_host_installs_and_starts_the_guard(fresh):
    _, result = fresh
    assert set(GUARD) <= set(result.uploads["cp1"])
    assert "chmod 755 /usr/local/sbin/containerd-sandbox-image" in result.commands("cp1")
    assert result.op("cp1", "containerd: reload systemd units").commands == [
        "systemctl daemon-reload"
    ]
    assert result.op(
        "cp1", "containerd: enable and start containerd-sandbox-image.timer"
    ).commands == [
        "systemctl start containerd-sandbox-image.timer",
        "systemctl enable containerd-sandbox-image.timer",
    ]
    # no sandbox image yet: the check pulls it through the guard
    verify = result.op("cp1", "containerd: verify loaded configuration and sandbox image")
    assert verify.commands == ["systemctl start containerd-sandbox-image.service"]


@pytest.mark.parametrize("host", HOSTS)
def test_fresh_host_gets_crictl_pointed_at_containerd(fresh, host):
    """`crictl ps` and `crictl images` work without flags: crictl.yaml names containerd's
    socket, the kubelet's (kubeadm's criSocket), for both of crictl's endpoints."""
    _, result = fresh
    crictl = yaml.safe_load(result.uploads[host][CRICTL])
    assert crictl == {
        "runtime-endpoint": "unix:///run/containerd/containerd.sock",
        "image-endpoint": "unix:///run/containerd/containerd.sock",
        "timeout": 10,
        "debug": False,
    }
    assert f"chmod 644 {CRICTL}" in result.commands(host)
    assert f"chown root:root {CRICTL}" in result.commands(host)


def test_docker_source_trusts_only_dockers_key():
    result = run("debian-11")
    uploads = result.uploads["cp1"]
    assert uploads["/etc/apt/sources.list.d/docker.list"] == (
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] "
        "https://download.docker.com/linux/debian bullseye stable\n"
    )
    assert uploads["/etc/apt/keyrings/docker.asc"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK")
    assert not any("apt-key" in command for command in result.commands("cp1"))


def test_docker_pin_names_the_release_and_replaces_a_held_other_version():
    installed = {"containerd.io": {"version": "1.7.27-1~debian.12~bookworm", "held": True}}
    result = run(
        "debian-12",
        converged=True,
        settings={"containerd_source": "docker", "containerd_version": "1.7.28-1"},
        state_changes={"packages": installed},
    )
    update, install = result.op("cp1", "containerd: install containerd.io").commands
    assert install.endswith(
        " install --allow-change-held-packages 'containerd.io=1.7.28-1~debian.12~bookworm'"
    )
    assert result.op("cp1", "containerd: hold containerd.io").commands == [
        "apt-mark hold containerd.io"
    ]


# --- a converged host ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=harness.OS_RELEASES)
def converged(request):
    return request.param, run(request.param, converged=True)


def test_converged_host_has_every_fact_recorded(converged):
    _, result = converged
    assert result.missing_facts == {}


@pytest.mark.parametrize("host", HOSTS)
def test_converged_host_changes_nothing(converged, host):
    os_release, result = converged
    docker = [f"containerd: write {path}" for path in DOCKER_FILES]
    expected = (docker if os_release == "debian-11" else []) + CONVERGED_OPERATIONS
    assert result.changed(host) == []
    assert result.op_names(host) == expected


@pytest.mark.parametrize("host", HOSTS)
def test_converged_host_reads_little(converged, host):
    """Under `pyinfra -y` a converged host is asked for the state fact and the five files
    (existence and checksum): 11 remote reads; with Docker's repository also its two files
    and their directories: 17."""
    os_release, result = converged
    files = (CONFIG, CRICTL, *GUARD)
    if os_release == "debian-11":
        files += DOCKER_FILES
    expected = [STATE]
    for path in files:
        expected += [f"files.File(path={path})", f"files.Sha1File(path={path})"]
    if os_release == "debian-11":
        expected += ["files.Directory(path=/etc/apt/keyrings)"]
        expected += ["files.Directory(path=/etc/apt/sources.list.d)"]
    assert sorted(result.reads[host]) == sorted(expected)


# --- drift --------------------------------------------------------------------------------


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_edited_crictl_yaml_is_rewritten_without_restarting_containerd(os_release):
    result = run(
        os_release, converged=True, host_facts={"cp1": {f"files.Sha1File(path={CRICTL})": "0"}}
    )
    assert result.changed("cp1") == [f"containerd: write {CRICTL}"]
    assert result.changed("w1") == []


def edited_config(os_release: str) -> dict:
    return {f"files.Sha1File(path={CONFIG})": "0" * 40}


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_edited_config_is_rewritten_and_containerd_restarted(os_release):
    result = run(os_release, converged=True, host_facts={"cp1": edited_config(os_release)})
    assert result.changed("cp1") == [
        "containerd: write config.toml",
        "containerd: restart with new config.toml",
    ]
    assert result.commands("cp1")[0] == f"upload {CONFIG}"
    assert result.changed("w1") == []


def test_config_written_but_never_applied_restarts_containerd():
    """A run interrupted between writing config.toml and restarting: the next run restarts."""
    result = run("debian-12", converged=True, state_changes={"applied": False})
    assert result.changed("cp1") == ["containerd: restart with new config.toml"]


def test_stopped_and_disabled_containerd_is_started_and_enabled():
    units = state("debian-12", converged=True)["units"]
    units["containerd.service"] = {"active": False, "enabled": False}
    unit_facts = {
        f"systemd.{fact}(machine=None, services=['containerd.service'], user_mode=False, "
        "user_name=None)": {"containerd.service": False}
        for fact in ("SystemdStatus", "SystemdEnabled")
    }
    result = run(
        "debian-12", converged=True, state_changes={"units": units}, host_facts={"cp1": unit_facts}
    )
    assert result.op("cp1", "containerd: enable and start service").commands == [
        "systemctl start containerd.service",
        "systemctl enable containerd.service",
    ]
    assert result.changed("cp1") == ["containerd: enable and start service"]


def test_removed_sandbox_image_is_pulled_again_by_the_guard():
    result = run("ubuntu-24.04", converged=True, state_changes={"images": []})
    assert result.changed("cp1") == ["containerd: verify loaded configuration and sandbox image"]
    assert result.commands("cp1") == ["systemctl start containerd-sandbox-image.service"]


def test_registry_no_longer_configured_loses_its_hosts_file():
    stale = "/etc/containerd/certs.d/quay.io/hosts.toml"
    file = {f"files.File(path={stale})": {"mode": 600, "user": "root", "group": "root"}}
    result = run(
        "debian-13",
        converged=True,
        state_changes={"hosts_files": [stale]},
        host_facts={"cp1": file},
    )
    assert result.op("cp1", f"containerd: remove {stale}").commands == [f"rm -f {stale}"]


# --- registry mirrors and credentials -----------------------------------------------------

MIRRORED = {
    "registry_mirrors": {"registry.k8s.io": ["http://10.0.0.5:5000"]},
    "registry_auth": {"10.0.0.5:5000": {"username": "puller", "password": "s3cr'et; whoami"}},
}
HOSTS_TOML = "/etc/containerd/certs.d/registry.k8s.io/hosts.toml"


@pytest.fixture(scope="module")
def mirrored():
    return run("debian-12", settings=MIRRORED)


def test_mirror_hosts_file_is_written_root_only_through_stdin(mirrored):
    (write,) = mirrored.op("cp1", f"containerd: write {HOSTS_TOML}").commands
    assert write.startswith(f"umask 077 && cat > {HOSTS_TOML}.part")
    ((command, text),) = [(c, t) for c, t in mirrored.stdin["cp1"] if HOSTS_TOML in c]
    assert 'server = "https://registry.k8s.io"' in text
    assert '[host."http://10.0.0.5:5000"]' in text
    assert basic_authorization(MIRRORED["registry_auth"]["10.0.0.5:5000"]) in text
    assert mirrored.op("cp1", "containerd: create /etc/containerd/certs.d/registry.k8s.io")


def test_credentials_never_reach_the_output_or_a_command_line(mirrored):
    secret = MIRRORED["registry_auth"]["10.0.0.5:5000"]["password"]
    header = basic_authorization(MIRRORED["registry_auth"]["10.0.0.5:5000"])
    for host in HOSTS:
        assert not any(secret in c or header in c for c in mirrored.commands(host))
    assert secret not in mirrored.log
    assert header not in mirrored.log


# --- the check of what containerd loaded ---------------------------------------------------


def dump_with(os_release: str, path: tuple, value) -> dict:
    dump = copy.deepcopy(state(os_release)["dump"])
    table = dump
    for part in path[:-1]:
        table = table[part]
    table[path[-1]] = value
    return dump


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_systemd_cgroup_false_after_the_restart_fails_the_host(os_release):
    key = config.VERIFIED_KEYS[CONFIG_VERSION[os_release]][-1]
    assert key[-1] == "SystemdCgroup"
    result = run(os_release, state_changes={"dump": dump_with(os_release, key, False)})
    (failed,) = result.failed("cp1")
    assert failed.name == "containerd: verify loaded configuration and sandbox image"
    assert "containerd on cp1 did not load the wanted configuration" in result.log
    assert "runtimes.runc.options.SystemdCgroup = false, wanted true" in result.log
    assert result.failed("w1") == []


def test_a_drifted_converged_host_is_checked_before_the_run_changes_nothing():
    """Nothing to change, yet containerd reports another sandbox image (e.g. an import in
    config.toml's directory): the check from the state read before the run fails it."""
    key = config.VERIFIED_KEYS[2][0]
    dump = dump_with("debian-12", key, "registry.k8s.io/pause:3.6")
    result = run("debian-12", converged=True, state_changes={"dump": dump})
    assert [op.name for op in result.failed("cp1")] == [
        "containerd: verify loaded configuration and sandbox image"
    ]
    assert 'sandbox_image = "registry.k8s.io/pause:3.6", wanted' in result.log


def test_cri_plugin_that_did_not_load_fails_the_host():
    plugins = {"io.containerd.grpc.v1.cri": "error"}
    result = run("debian-13", state_changes={"plugins": plugins})
    assert "the CRI plugin io.containerd.grpc.v1.cri is error in the running containerd" in (
        result.log
    )
    assert result.failed("cp1")


def test_config_dump_failure_is_reported():
    error = "containerd: failed to load TOML: /etc/containerd/config.toml: (10, 3): oops"
    result = run("debian-12", state_changes={"dump": None, "dump_error": error})
    assert f"`containerd config dump` failed: {error}" in result.log
    assert result.failed("cp1")


def test_debian_11_own_containerd_is_refused_by_name():
    version = "containerd github.com/containerd/containerd 1.4.13~ds1 1.4.13~ds1-1~deb11u5"
    result = run(
        "debian-11", settings={"containerd_source": "distro"}, state_changes={"version": version}
    )
    (failed,) = result.failed("cp1")
    assert failed.name == "containerd: write config.toml"
    assert "containerd on cp1: containerd 1.4.13 is not supported" in result.log
    assert "containerd_source: docker" in result.log


def test_no_containerd_after_the_install_fails_the_config_step():
    result = run("ubuntu-22.04", state_changes={"version": ""})
    (failed,) = result.failed("cp1")
    assert failed.name == "containerd: write config.toml"
    assert "`containerd --version` gives nothing" in result.log


def test_a_new_kubernetes_minor_moves_the_sandbox_image_everywhere():
    """A node converged for 1.35, run for 1.36: config.toml, the guard and the check follow
    the new pause tag; the guard's script changes but no unit does, so systemd is not
    reloaded."""
    before = run("debian-12")  # the 1.35 run, whose files the node then holds
    new = {"kubernetes_version": "1.36.1"}
    loaded = config.config(Settings(**new), state("debian-12")["version"])
    facts = {
        **harness.load_facts("debian-12", converged=True),
        **harness._upload_facts(before)["cp1"],  # the files as the 1.35 run left them
        STATE: state("debian-12", converged=True, dump=loaded),
    }
    result = harness.run(
        runtime.converge, os="debian-12", cluster=cluster("debian-12", **new), facts=facts
    )
    assert 'sandbox_image = "registry.k8s.io/pause:3.10.2"' in result.uploads["cp1"][CONFIG]
    assert "image=registry.k8s.io/pause:3.10.2" in result.uploads["cp1"][GUARD[0]]
    assert result.changed("cp1") == [
        "containerd: write config.toml",
        "containerd: restart with new config.toml",
        f"containerd: write {GUARD[0]}",
        "containerd: verify loaded configuration and sandbox image",
    ]
    verify = result.op("cp1", "containerd: verify loaded configuration and sandbox image")
    assert verify.commands == ["systemctl start containerd-sandbox-image.service"]
