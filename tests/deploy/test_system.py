"""OS preparation (deploys/system) on each supported release: a fresh host gets every step,
a converged host gets no change and few remote reads, drift is repaired, and a container
node (the lab's systemd-nspawn) runs without failing on what a container cannot do."""

import copy
import functools

import pytest
from pyinfra.api import OperationError

from deploys import runtime, system
from tests.deploy import harness

STATE = "deploys.system.facts.SystemState"
LIVE_SYSCTLS = (
    "server.Sysctl(keys=['net.bridge.bridge-nf-call-iptables', "
    "'net.bridge.bridge-nf-call-ip6tables', 'net.ipv4.ip_forward'])"
)
HOSTS_BLOCK = (
    "files.Block(begin=None, end=None, marker=# {mark} pyinfra-kubeadm: cluster nodes, "
    "path=/etc/hosts)"
)
UBUNTU = ("ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04")
OLD = ("ubuntu-20.04", "debian-11")
# The swap unit systemd generated from each release's fstab swap line.
SWAP_UNITS = {
    "ubuntu-20.04": "swap.img.swap",
    "ubuntu-22.04": "swap.img.swap",
    "ubuntu-24.04": "swap.img.swap",
    "debian-11": r"'dev-disk-by\x2duuid-0a5b3c9e\x2d8f0d\x2d4c41\x2d9a57\x2d3f5b6e2d7c11.swap'",
    "debian-12": r"'dev-disk-by\x2duuid-5e1f7c2a\x2d93b4\x2d4d7e\x2db1c8\x2d0f2a6d4e9b37.swap'",
    "debian-13": r"'dev-disk-by\x2duuid-c7d94e1b\x2d2a6f\x2d4b83\x2d8e5d\x2d91f0a3b7c264.swap'",
}
CP_UFW = [
    "ufw allow 2379:2380/tcp comment pyinfra-kubeadm",
    "ufw allow 6443/tcp comment pyinfra-kubeadm",
    "ufw allow 8472/udp comment pyinfra-kubeadm",
    "ufw allow 10250/tcp comment pyinfra-kubeadm",
    "ufw allow 10257/tcp comment pyinfra-kubeadm",
    "ufw allow 10259/tcp comment pyinfra-kubeadm",
]
WORKER_UFW = [
    "ufw allow 8472/udp comment pyinfra-kubeadm",
    "ufw allow 10250/tcp comment pyinfra-kubeadm",
    "ufw allow 10256/tcp comment pyinfra-kubeadm",
    "ufw allow 30000:32767/tcp comment pyinfra-kubeadm",
]
# The workers' rules as `ufw show added` lists them once added.
WORKER_RULES = [
    "allow 8472/udp comment 'pyinfra-kubeadm'",
    "allow 10250/tcp comment 'pyinfra-kubeadm'",
    "allow 10256/tcp comment 'pyinfra-kubeadm'",
    "allow 30000:32767/tcp comment 'pyinfra-kubeadm'",
]


@functools.cache
def recorded_state(os_release: str, converged: bool) -> dict:
    return harness.load_facts(os_release, converged=converged)[STATE]


def fresh_state(os_release: str, **changes) -> dict:
    return {**copy.deepcopy(recorded_state(os_release, False)), **changes}


def converged_state(os_release: str, host: str, **changes) -> dict:
    """The recorded converged state (cp1's), as the given host of the default cluster sees it."""
    state = copy.deepcopy(recorded_state(os_release, True))
    state["hostname"] = host
    if state["ufw"] is not None and host != "cp1":
        state["ufw"]["rules"] = list(WORKER_RULES)
    return {**state, **changes}


def converged_hosts(os_release: str, **changes) -> dict:
    return {
        host: {STATE: converged_state(os_release, host, **changes)} for host in ("cp1", "w1", "w2")
    }


def run_converged(os_release, host_facts=None, **kwargs):
    """A converged run: the fresh run first, then the converged facts per host."""
    per_host = converged_hosts(os_release)
    for host, facts in (host_facts or {}).items():
        per_host[host].update(facts)
    return harness.run(
        system.converge, os=os_release, converged=True, host_facts=per_host, **kwargs
    )


def install_command(run, host="cp1") -> list[str]:
    update, install = run.op(host, "packages: install node packages").commands
    assert update == "apt-get update"
    return install.split(" install ")[1].split()


# --- a fresh host -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=harness.OS_RELEASES)
def fresh(request):
    return request.param, harness.run(system.converge, os=request.param)


def test_fresh_host_has_every_fact_recorded(fresh):
    _, run = fresh
    assert run.missing_facts == {}
    assert all(not run.failed(host) for host in ("cp1", "w1", "w2"))


def test_fresh_host_installs_packages_after_apt_update(fresh):
    os_release, run = fresh
    installed = install_command(run)
    assert {"conntrack", "ebtables", "socat", "chrony"} <= set(installed)
    assert ("apt-transport-https" in installed) is (os_release in OLD)
    if os_release.startswith("debian"):
        assert {"curl", "gpg"} <= set(installed)


def test_fresh_host_turns_swap_off_for_good(fresh):
    os_release, run = fresh
    swapoff, sed, mask = run.op("cp1", "swap: turn off swap for good").commands
    assert swapoff == "swapoff -a"
    assert sed.startswith("sed -E -i.") and r"/# \1/' /etc/fstab" in sed
    assert mask == f"systemctl mask {SWAP_UNITS[os_release]} swap.target"


def test_fresh_host_loads_modules_and_sets_sysctls(fresh):
    _, run = fresh
    assert run.uploads["cp1"]["/etc/modules-load.d/k8s.conf"].splitlines()[1:] == [
        "overlay",
        "br_netfilter",
    ]
    assert run.op("cp1", "kernel: load modules").commands == ["modprobe -a overlay br_netfilter"]
    assert "net.ipv4.ip_forward = 1" in run.uploads["cp1"]["/etc/sysctl.d/99-kubernetes.conf"]
    assert run.op("cp1", "sysctl: set live values").commands == [
        "sysctl net.bridge.bridge-nf-call-iptables=1",
        "sysctl net.bridge.bridge-nf-call-ip6tables=1",
        "sysctl net.ipv4.ip_forward=1",
    ]
    # modules first: the bridge sysctls exist only once br_netfilter is loaded
    names = run.op_names("cp1")
    assert names.index("kernel: load modules") < names.index("sysctl: set live values")


def test_fresh_host_replaces_timesyncd_by_chrony(fresh):
    _, run = fresh
    (remove,) = run.op("cp1", "time: remove other time daemons").commands
    assert remove.endswith(" remove systemd-timesyncd")
    assert "pool pool.ntp.org iburst" in run.uploads["cp1"]["/etc/chrony/chrony.conf"]
    assert run.op("cp1", "time: enable chrony").commands == [
        "systemctl start chrony.service",
        "systemctl enable chrony.service",
    ]


def test_fresh_host_lists_nodes_and_sets_hostname(fresh):
    _, run = fresh
    (block,) = run.op("w1", "hosts: list cluster nodes in /etc/hosts").commands
    assert (
        "# BEGIN pyinfra-kubeadm: cluster nodes\n10.0.0.11 cp1\n10.0.0.21 w1\n10.0.0.22 w2\n"
        "# END pyinfra-kubeadm: cluster nodes" in block
    )
    assert run.op("w1", "hosts: set hostname").commands == ["hostnamectl set-hostname w1"]


def test_fresh_host_opens_ports_per_role_where_ufw_is(fresh):
    os_release, run = fresh
    if os_release in UBUNTU:
        assert run.op("cp1", "firewall: allow kubernetes ports in ufw").commands == CP_UFW
        assert run.op("w2", "firewall: allow kubernetes ports in ufw").commands == WORKER_UFW
        assert not any("ufw enable" in c for c in run.commands("cp1"))
    else:
        assert not any(c.startswith("ufw") for c in run.commands("cp1"))
    assert not any("firewall-cmd" in c for c in run.commands("cp1"))


# --- a converged host ---------------------------------------------------------------------

HOSTS = ("cp1", "w1", "w2")
OPERATIONS = [
    "packages: install node packages",
    "swap: turn off swap for good",
    "kernel: write modules-load.d/k8s.conf",
    "kernel: load modules",
    "sysctl: write 99-kubernetes.conf",
    "sysctl: set live values",
    "time: remove other time daemons",
    "time: write chrony.conf",
    "time: enable chrony",
    "time: restart chrony",
    "hosts: list cluster nodes in /etc/hosts",
    "hosts: set hostname",
    "firewall: allow kubernetes ports in ufw",
    "selinux: set permissive",
]


@pytest.fixture(scope="module", params=harness.OS_RELEASES)
def converged(request):
    """(os, the converged run, the facts that run read): the fresh run's reads are known
    from running it alone first, through a spy on the harness's fact lookup."""
    reads = []
    fact_key = harness.fact_key

    def counting_fact_key(cls, args, kwargs):
        reads.append(fact_key(cls, args, kwargs))
        return reads[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "fact_key", counting_fact_key)
        harness.run(system.converge, os=request.param, host_facts=converged_hosts(request.param))
        first_run = len(reads)
        run = run_converged(request.param)
    return request.param, run, reads[2 * first_run :]


def test_converged_host_has_every_fact_recorded(converged):
    _, run, _ = converged
    assert run.missing_facts == {}


@pytest.mark.parametrize("host", HOSTS)
def test_converged_host_changes_nothing(converged, host):
    _, run, _ = converged
    assert run.changed(host) == []


@pytest.mark.parametrize("host", HOSTS)
def test_fresh_host_gets_every_operation(fresh, host):
    assert fresh[1].op_names(host) == OPERATIONS


@pytest.mark.parametrize("host", HOSTS)
def test_converged_host_gets_every_operation(converged, host):
    assert converged[1].op_names(host) == OPERATIONS


def test_converged_host_reads_little(converged):
    """What a converged host is asked: the state fact, the live sysctls, the three files
    (existence and checksum), the modules-load.d directory (absent on minimal Debian 13+)
    and the hosts block. Under `pyinfra -y` that is 11 remote reads (pyinfra reads the hosts
    block twice); the harness also runs pyinfra's change
    detection, which reads the operations' facts once more and chrony's status for the
    restart whose condition it does not evaluate."""
    _, _, reads = converged
    assert sorted(set(reads)) == sorted(
        {
            STATE,
            LIVE_SYSCTLS,
            HOSTS_BLOCK,
            *(
                f"files.{fact}(path={path})"
                for fact in ("File", "Sha1File")
                for path in (
                    "/etc/modules-load.d/k8s.conf",
                    "/etc/sysctl.d/99-kubernetes.conf",
                    "/etc/chrony/chrony.conf",
                )
            ),
            "files.Directory(path=/etc/modules-load.d)",
            "systemd.SystemdStatus(machine=None, services=['chrony.service'], "
            "user_mode=False, user_name=None)",
        }
    )
    assert len(reads) == 3 * 21  # per host: 2 deploy-level reads + 2 x 9 + 1


@pytest.mark.parametrize(
    "message",
    [
        "noop: node packages are installed",
        "noop: no swap is active, in /etc/fstab or unmasked",
        "noop: overlay, br_netfilter: loaded or built into the kernel",
        "noop: live values match 99-kubernetes.conf",
        "noop: chrony is the only time daemon",
        "noop: chrony.service is enabled and running",
        "noop: hostname is w1",
        "noop: SELinux is not enforcing",
    ],
)
def test_converged_host_says_why_nothing_is_done(converged, message):
    assert f"[w1] {message}" in converged[1].log.replace("[w1]  ", "[w1] ")


def test_converged_firewall_says_why(converged):
    os_release, run, _ = converged
    message = "ufw allows the node's ports" if os_release in UBUNTU else "ufw is not installed"
    assert f"noop: {message}" in run.log


# --- drift --------------------------------------------------------------------------------

UNCOMMENTED = "/swap.img\tnone\tswap\tsw\t0\t0"
FSTAB = (
    "files.FindInFile(extended_regex=True, interpolate_variables=False, path=/etc/fstab, "
    "pattern=^([[:space:]]*[^#[:space:]][^[:space:]]*[[:space:]]+[^[:space:]]+[[:space:]]+swap"
    "([[:space:]].*)?)$)"
)
DRIFT = [
    (
        "swap line uncommented",
        {STATE: {"fstab_swap": [UNCOMMENTED]}, FSTAB: [UNCOMMENTED]},
        {"swap: turn off swap for good": "sed -E -i."},
    ),
    (
        "swap turned on",
        {STATE: {"swaps": ["/swap.img"]}},
        {"swap: turn off swap for good": "swapoff -a"},
    ),
    (
        "swap.target unmasked",
        {STATE: {"swap_units": {"swap.target": "static"}}},
        {"swap: turn off swap for good": "systemctl mask swap.target"},
    ),
    (
        "sysctl set to 0",
        {
            LIVE_SYSCTLS: {
                "net.bridge.bridge-nf-call-iptables": 0,
                "net.bridge.bridge-nf-call-ip6tables": 1,
                "net.ipv4.ip_forward": 1,
            },
            "server.Sysctl(keys=['net.bridge.bridge-nf-call-iptables'])": {
                "net.bridge.bridge-nf-call-iptables": 0
            },
        },
        {"sysctl: set live values": "sysctl net.bridge.bridge-nf-call-iptables=1"},
    ),
    (
        "modules file deleted",
        {"files.File(path=/etc/modules-load.d/k8s.conf)": None},
        {"kernel: write modules-load.d/k8s.conf": "upload /etc/modules-load.d/k8s.conf"},
    ),
    (
        "module unloaded",
        {STATE: {"modules": ["overlay"]}},
        {"kernel: load modules": "modprobe -a br_netfilter"},
    ),
    (
        "hosts block edited",
        {HOSTS_BLOCK: ["10.0.0.11 cp1", "10.0.0.99 w1", "10.0.0.22 w2"]},
        {"hosts: list cluster nodes in /etc/hosts": "10.0.0.21 w1"},
    ),
    (
        "hostname changed",
        {STATE: {"hostname": "localhost"}, "server.Hostname": "localhost"},
        {"hosts: set hostname": "hostnamectl set-hostname w1"},
    ),
    (
        "package removed",
        {STATE: {"packages": ["chrony"]}, "deb.DebPackages": {"chrony": ["4.3-2"]}},
        {"packages: install node packages": "apt-get update"},
    ),
]


@pytest.mark.parametrize("what, drift, repaired", DRIFT, ids=[d[0] for d in DRIFT])
@pytest.mark.parametrize("os_release", ["ubuntu-24.04", "debian-12"])
def test_drift_is_repaired(os_release, what, drift, repaired):
    facts = dict(drift)
    if STATE in facts:
        facts[STATE] = converged_state(os_release, "w1", **drift[STATE])
    run = run_converged(os_release, host_facts={"w1": facts})
    ((name, command),) = repaired.items()
    assert run.changed("w1") == [name]
    assert any(command in c for c in run.op("w1", name).commands)
    assert run.changed("w2") == []


def test_stopped_chrony_is_started():
    stopped = {"UnitFileState": "disabled", "ActiveState": "inactive"}
    state = converged_state("debian-12", "w1")
    state["services"]["chrony.service"].update(stopped)
    status = (
        "systemd.{}(machine=None, services=['chrony.service'], user_mode=False, user_name=None)"
    )
    run = run_converged(
        "debian-12",
        host_facts={
            "w1": {
                STATE: state,
                status.format("SystemdStatus"): {"chrony.service": False},
                status.format("SystemdEnabled"): {"chrony.service": False},
            }
        },
    )
    assert run.op("w1", "time: enable chrony").commands == [
        "systemctl start chrony.service",
        "systemctl enable chrony.service",
    ]


def test_changed_chrony_conf_restarts_running_chrony():
    status = (
        "systemd.SystemdStatus(machine=None, services=['chrony.service'], user_mode=False, "
        "user_name=None)"
    )
    run = harness.run(system.converge, os="ubuntu-22.04", facts={status: {"chrony.service": True}})
    assert run.op("cp1", "time: restart chrony").commands == ["systemctl restart chrony.service"]


def test_role_change_moves_ufw_rules():
    """cp1 was a worker before: its worker-only rules go, the control-plane ones come."""
    state = converged_state("ubuntu-24.04", "cp1")
    state["ufw"]["rules"] = list(WORKER_RULES)
    run = run_converged("ubuntu-24.04", host_facts={"cp1": {STATE: state}})
    assert run.op("cp1", "firewall: allow kubernetes ports in ufw").commands == [
        "ufw allow 2379:2380/tcp comment pyinfra-kubeadm",
        "ufw allow 6443/tcp comment pyinfra-kubeadm",
        "ufw allow 10257/tcp comment pyinfra-kubeadm",
        "ufw allow 10259/tcp comment pyinfra-kubeadm",
        "ufw --force delete allow 10256/tcp",
        "ufw --force delete allow 30000:32767/tcp",
    ]


# --- a container node (the lab) -----------------------------------------------------------


def nspawn_state(os_release="debian-12", **changes) -> dict:
    state = fresh_state(
        os_release,
        container="systemd-nspawn",
        swaps=[],
        fstab_swap=[],
        swap_units={"swap.target": "static"},
        modules=["overlay", "br_netfilter", "nf_conntrack"],  # built in: /sys/module/NAME
    )
    return {**state, **changes}


def test_container_node_runs_without_impossible_steps():
    cluster = {
        "hosts": [{"name": "lab1", "address": "10.0.0.11", "roles": ["control_plane", "worker"]}],
        "settings": {"sysctls": {"vm.max_map_count": 262144, "net.core.somaxconn": 4096}},
    }
    live = {"net.ipv4.ip_forward": 0, "vm.max_map_count": 65530, "net.core.somaxconn": 4096}
    keys = (
        "server.Sysctl(keys=['net.bridge.bridge-nf-call-iptables', "
        "'net.bridge.bridge-nf-call-ip6tables', 'net.ipv4.ip_forward', "
        "'vm.max_map_count', 'net.core.somaxconn'])"
    )
    run = harness.run(
        system.converge, os="debian-12", cluster=cluster, facts={STATE: nspawn_state(), keys: live}
    )
    assert not run.failed("lab1")
    # built-in modules count as loaded: no modprobe; no swap: no swapoff
    assert run.op("lab1", "kernel: load modules").commands == []
    assert run.op("lab1", "swap: turn off swap for good").commands == ["systemctl mask swap.target"]
    # vm.* belongs to the container host: kept in the file, reported, not set
    assert "vm.max_map_count = 262144" in run.uploads["lab1"]["/etc/sysctl.d/99-kubernetes.conf"]
    assert run.op("lab1", "sysctl: set live values").commands == [
        "sysctl net.bridge.bridge-nf-call-iptables=1",
        "sysctl net.bridge.bridge-nf-call-ip6tables=1",
        "sysctl net.ipv4.ip_forward=1",
    ]
    assert (
        "sysctl: vm.max_map_count = 262144 is in /etc/sysctl.d/99-kubernetes.conf but cannot "
        "be set inside this container (systemd-nspawn)" in run.log
    )
    # a container cannot set the clock: chrony enabled, not started
    assert run.op("lab1", "time: enable chrony").commands == ["systemctl enable chrony.service"]


def test_container_node_leaves_the_hosts_swap_alone():
    cluster = {"hosts": [{"name": "lab1", "address": "10.0.0.11", "roles": ["control_plane"]}]}
    state = nspawn_state(swaps=["/dev/sda2"])
    run = harness.run(system.converge, os="debian-12", cluster=cluster, facts={STATE: state})
    assert run.op("lab1", "swap: turn off swap for good").commands == ["systemctl mask swap.target"]
    assert "swap: /dev/sda2 is the container host's swap (systemd-nspawn)" in run.log


def test_container_node_with_chrony_skipped_by_its_condition_is_converged():
    skipped = {
        "LoadState": "loaded",
        "UnitFileState": "enabled",
        "ActiveState": "inactive",
        "ConditionResult": "no",
        "ConditionTimestampMonotonic": "1830551",
    }
    state = converged_state("debian-12", "cp1", container="systemd-nspawn")
    state["services"]["chrony.service"] = skipped
    run = run_converged("debian-12", host_facts={"cp1": {STATE: state}})
    assert run.changed("cp1") == []


# --- firewall and SELinux variants --------------------------------------------------------


def test_firewall_disabled_turns_ufw_and_firewalld_off():
    firewalld = {"running": True, "services": ["ssh"]}
    per_host = converged_hosts("ubuntu-24.04", firewalld=firewalld)
    for facts in per_host.values():
        facts[STATE]["ufw"]["active"] = True
    status = (
        "systemd.{}(machine=None, services=['firewalld.service'], user_mode=False, user_name=None)"
    )
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"firewall": "disabled"}}
    run = harness.run(
        system.converge,
        os="ubuntu-24.04",
        cluster=cluster,
        host_facts=per_host,
        facts={
            status.format("SystemdStatus"): {"firewalld.service": True},
            status.format("SystemdEnabled"): {"firewalld.service": True},
        },
    )
    assert run.op("cp1", "firewall: disable ufw").commands == ["ufw disable"]
    assert run.op("cp1", "firewall: stop and disable firewalld").commands == [
        "systemctl stop firewalld.service",
        "systemctl disable firewalld.service",
    ]
    assert not any("ufw allow" in c for c in run.commands("cp1"))


def test_firewalld_running_gets_the_service_and_reloads():
    state = fresh_state("debian-12", firewalld={"running": True, "services": ["ssh"]})
    run = harness.run(system.converge, os="debian-12", facts={STATE: state})
    xml = run.uploads["w1"]["/etc/firewalld/services/pyinfra-kubeadm.xml"]
    assert '<port protocol="tcp" port="30000-32767"/>' in xml
    assert '<port protocol="tcp" port="6443"/>' not in xml
    assert run.op("w1", "firewall: reload firewalld").commands == ["firewall-cmd --reload"]
    assert run.op("w1", "firewall: add service pyinfra-kubeadm to firewalld").commands == [
        "firewall-cmd --permanent --add-service=pyinfra-kubeadm",
        "firewall-cmd --add-service=pyinfra-kubeadm",
    ]


def test_firewalld_converged_does_not_reload():
    firewalld = {"running": True, "services": ["ssh", "pyinfra-kubeadm"]}
    run = harness.run(
        system.converge,
        os="debian-12",
        converged=True,
        host_facts=converged_hosts("debian-12", firewalld=firewalld),
    )
    assert run.changed("w1") == []
    assert run.op("w1", "firewall: reload firewalld").commands == []


def test_firewalld_stopped_is_configured_offline():
    state = fresh_state("debian-12", firewalld={"running": False, "services": ["ssh"]})
    run = harness.run(system.converge, os="debian-12", facts={STATE: state})
    assert run.op("cp1", "firewall: add service pyinfra-kubeadm to firewalld").commands == [
        "firewall-offline-cmd --add-service=pyinfra-kubeadm"
    ]
    assert "firewall: reload firewalld" not in run.op_names("cp1")


SELINUX_CONFIG = (
    "files.FindInFile(extended_regex=False, interpolate_variables=False, "
    "path=/etc/selinux/config, pattern=^SELINUX=enforcing$)"
)


@pytest.mark.parametrize(
    "selinux, expected",
    [
        ({"config": "enforcing", "mode": "Enforcing"}, ["sed -i.", "setenforce 0"]),
        ({"config": "enforcing", "mode": "Permissive"}, ["sed -i."]),
        ({"config": "permissive", "mode": "Enforcing"}, ["setenforce 0"]),
        ({"config": "permissive", "mode": "Permissive"}, []),
        ({"config": "disabled", "mode": "Disabled"}, []),
    ],
)
def test_selinux_becomes_permissive(selinux, expected):
    state = fresh_state("debian-13", selinux=selinux)
    run = harness.run(
        system.converge,
        os="debian-13",
        facts={STATE: state, SELINUX_CONFIG: ["SELINUX=enforcing"]},
    )
    commands = run.op("cp1", "selinux: set permissive").commands
    assert [c[: len(e)] for c, e in zip(commands, expected, strict=True)] == expected
    if expected[:1] == ["sed -i."]:
        assert "'s/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config" in commands[0]


def test_hostile_sysctl_value_is_quoted():
    cluster = {
        **harness.DEFAULT_CLUSTER,
        "settings": {"sysctls": {"net.core.somaxconn": "1; whoami"}},
    }
    run = harness.run(system.converge, os="debian-12", cluster=cluster)
    assert (
        "sysctl net.core.somaxconn='1; whoami'" in run.op("cp1", "sysctl: set live values").commands
    )


@pytest.mark.parametrize(
    "os_release, package, config",
    [("debian-11", "ntp", "/etc/ntp.conf"), ("debian-12", "ntpsec", "/etc/ntpsec/ntp.conf")],
)
def test_ntp_choice(os_release, package, config):
    cluster = {**harness.DEFAULT_CLUSTER, "settings": {"time_sync": "ntp"}}
    run = harness.run(system.converge, os=os_release, cluster=cluster)
    assert install_command(run)[-1] == package
    assert "pool pool.ntp.org iburst" in run.uploads["cp1"][config]


def test_timesyncd_choice_keeps_timesyncd():
    cluster = {
        **harness.DEFAULT_CLUSTER,
        "settings": {
            "time_sync": "timesyncd",
            "time_servers": ["cn.pool.ntp.org", "ntp.aliyun.com"],
        },
    }
    run = harness.run(system.converge, os="ubuntu-20.04", cluster=cluster)
    assert run.op("cp1", "time: remove other time daemons").commands == []
    assert run.op("cp1", "time: enable systemd-timesyncd").commands == []  # enabled, running
    drop_in = "/etc/systemd/timesyncd.conf.d/kubernetes.conf"
    assert "NTP=cn.pool.ntp.org ntp.aliyun.com" in run.uploads["cp1"][drop_in]
    assert "mkdir -p /etc/systemd/timesyncd.conf.d" in run.commands("cp1")


# --- kube-proxy in nftables mode ----------------------------------------------------------

# A node's kernel release is checked by preflight (tests/deploy/test_preflight.py).
NFTABLES_CLUSTER = {**harness.DEFAULT_CLUSTER, "settings": {"kube_proxy_mode": "nftables"}}


@pytest.mark.parametrize("os_release", harness.OS_RELEASES)
def test_nftables_mode_installs_nft_to_inspect_kube_proxys_rules(os_release):
    run = harness.run(system.converge, os=os_release, cluster=NFTABLES_CLUSTER)
    assert "nftables" in install_command(run)
    assert not any(run.failed(host) for host in ("cp1", "w1", "w2"))


def test_other_modes_read_no_kernel_release_and_install_no_nft(fresh):
    _, run = fresh
    assert "server.KernelVersion" not in run.reads["cp1"]
    assert "nftables" not in install_command(run)


@pytest.mark.parametrize("concern", ["system", "runtime"])
@pytest.mark.parametrize(
    "release", [{"id": "centos", "version": "9"}, {"id": "ubuntu", "version": "noble"}]
)
def test_an_unsupported_release_stops_the_run_before_any_change(concern, release):
    """Known from the facts read before any change: OperationError while pyinfra prepares
    the run (deploys/failure.py), naming the host, for every concern that reads it."""
    deploy, key = {
        "system": (system.converge, STATE),
        "runtime": (runtime.converge, "deploys.runtime.facts.ContainerdState"),
    }[concern]
    state = {**harness.load_facts("debian-12")[key], "release": release}
    with pytest.raises(OperationError, match=f"^w1: .*{release['id']}"):
        harness.run(deploy, os="debian-12", host_facts={"w1": {key: state}})
