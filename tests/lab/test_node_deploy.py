"""deploys/node.py on real nodes: the real `pyinfra` command converges the test lab's nodes
(bookworm, containerd 1.6; trixie, 1.7; sid, 2.x), a second run changes and restarts
nothing, every drift of issue 3 is repaired by a re-run, an interrupted run is finished by
the next one, and a power-cycled node comes back converged.

The end state is read over SSH with plain commands (end_state), never with the deploy's own
facts. What the lab cannot show (systemd-nspawn nodes, see ../shared LAB-NOTES): swap
itself (there is none, only fstab and the masking), loading modules (the host kernel has
them built in), non-network sysctls (read-only), chrony running (skipped by its unit's
ConditionVirtualization inside a container), runc containers and so the kubelet; and the
firewall (Debian nodes have neither ufw nor firewalld).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest
import tomllib
import yaml

from deploys.settings import Settings, load_cluster
from deploys.versions import sandbox_image
from tests.lab import config, registry
from tests.lab.fixture import LAB_NODES
from tests.lab.runs import PYINFRA, pyinfra

pytestmark = pytest.mark.lab

DEFAULTS = Settings()
SANDBOX_IMAGE = sandbox_image(DEFAULTS.image_repository, DEFAULTS.kubernetes_version)
GUARD_SERVICE = "containerd-sandbox-image.service"
MODULES_FILE = "/etc/modules-load.d/k8s.conf"
DEPLOY = "deploys/node.py"
# Where the hosts-block drift moves the second node to.
MOVED = str(config.NETWORK[99])
SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
           "net.ipv4.ip_forward")  # fmt: skip
# A swap line as Ubuntu's installer writes it, seeded into fstab before the first run.
SEEDED_SWAP = "/swap.img\tnone\tswap\tsw\t0\t0"
# containerd's config version per node (1.6 and 1.7: 2; 2.x: 3).
CONFIG_VERSION = dict(zip(LAB_NODES, (2, 2, 3), strict=True))
# Where the checked values sit in `containerd config dump`, per config version.
DUMP_KEYS = {
    2: {
        "sandbox": ("plugins", "io.containerd.grpc.v1.cri", "sandbox_image"),
        "config_path": ("plugins", "io.containerd.grpc.v1.cri", "registry", "config_path"),
        "SystemdCgroup": ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes",
                          "runc", "options", "SystemdCgroup"),
    },
    3: {
        "sandbox": ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"),
        "config_path": ("plugins", "io.containerd.cri.v1.images", "registry", "config_path"),
        "SystemdCgroup": ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes",
                          "runc", "options", "SystemdCgroup"),
    },
}  # fmt: skip
# One SSH round trip printing everything end_state() reads, in sections.
_OBSERVE = f"""
echo '== hostname'; hostname
echo '== fstab'; cat /etc/fstab
echo '== swaps'; tail -n +2 /proc/swaps
echo '== modules'; cat {MODULES_FILE} 2>/dev/null
echo '== sysctl'; sysctl -n {" ".join(SYSCTLS)}
echo '== hosts'; cat /etc/hosts
echo '== enabled'; systemctl is-enabled containerd
echo '== active'; systemctl is-active containerd
echo '== images'; ctr -n k8s.io images ls -q
echo '== dump'; containerd config dump
"""


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("== "):
            lines = sections.setdefault(line[3:], [])
        else:
            lines.append(line)
    return sections


def _lookup(data: dict, path: tuple[str, ...]):
    for part in path:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return data if data != {} else None


def end_state(lab, name: str) -> dict:
    """What the node is, read with plain commands."""
    s = _sections(lab.ssh(name, _OBSERVE, check=False).stdout)
    fstab = [line.split() for line in s["fstab"] if line.strip()]
    dump = tomllib.loads("\n".join(s["dump"]))
    keys = DUMP_KEYS.get(dump.get("version"), DUMP_KEYS[2])
    hosts_block = "\n".join(s["hosts"]).partition("# BEGIN pyinfra-kubeadm: cluster nodes\n")[2]
    return {
        "hostname": s["hostname"],
        "active fstab swap": [f for f in fstab if len(f) > 2 and f[2] == "swap"],
        "commented seeded swap": any(
            line.startswith("#") and "/swap.img" in line for line in s["fstab"]
        ),
        "swaps": s["swaps"],
        "modules": sorted(m for m in s["modules"] if m and not m.startswith("#")),
        "sysctl": s["sysctl"],
        "hosts block": hosts_block.partition("# END")[0].splitlines(),
        "containerd": s["enabled"] + s["active"],
        "config version": dump.get("version"),
        **{key: _lookup(dump, path) for key, path in keys.items()},
        "sandbox image held": SANDBOX_IMAGE in s["images"],
    }


def converged_state(lab, name: str) -> dict:
    return {
        "hostname": [name],
        "active fstab swap": [],
        "commented seeded swap": True,
        "swaps": [],
        "modules": ["br_netfilter", "overlay"],
        "sysctl": ["1", "1", "1"],
        "hosts block": [f"{node.address} {node.name}" for node in lab.nodes],
        "containerd": ["enabled", "active"],
        "config version": CONFIG_VERSION[name],
        "sandbox": SANDBOX_IMAGE,
        "config_path": "/etc/containerd/certs.d",
        "SystemdCgroup": True,
        "sandbox image held": True,
    }


def deploy_argv() -> list[str]:
    return [str(PYINFRA), "-y", "inventory.py", DEPLOY]


def deploy_env(lab) -> dict:
    return {**os.environ, "CLUSTER": str(lab.inventory_path)}


def run_deploy(lab) -> str:
    """Run `pyinfra -y inventory.py deploys/node.py` on the lab; its output. Fails the test
    unless it succeeds."""
    run = pyinfra(DEPLOY, lab.inventory_path, timeout=900)
    assert run.result.returncode == 0, run.failure()
    return run.output


def changed_operations(output: str) -> int:
    """Operations pyinfra reports changed, from the "Grand total" row of its results table
    (columns Hosts, Success = changed, Error, No Change; "-" for none)."""
    match = re.search(r"^\s*Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s*$", output, re.M)
    assert match, f"no results table in pyinfra's output:\n{output[-3000:]}"
    hosts, changed, errors, unchanged = match.groups()
    assert errors == "-"
    return 0 if changed == "-" else int(changed)


def containerd_process(lab, name: str) -> str:
    return lab.ssh(
        name, "systemctl show -p MainPID -p ActiveEnterTimestamp containerd.service"
    ).stdout


def on_all_nodes(lab, command: str) -> None:
    for name in LAB_NODES:
        lab.ssh(name, command)


@pytest.fixture(scope="module")
def converged(lab) -> dict:
    """The lab after a first and a second run of the deploy (an fstab swap line seeded
    before the first); the second run's output and containerd's process before and after."""
    on_all_nodes(lab, f"printf '%s\\n' '{SEEDED_SWAP}' >> /etc/fstab")
    run_deploy(lab)
    before = {name: containerd_process(lab, name) for name in LAB_NODES}
    second = run_deploy(lab)
    after = {name: containerd_process(lab, name) for name in LAB_NODES}
    return {"second run": second, "before": before, "after": after}


def test_second_run_changes_nothing(converged):
    assert changed_operations(converged["second run"]) == 0


def test_second_run_restarts_nothing(converged):
    assert converged["after"] == converged["before"]
    assert all("MainPID=0" not in process for process in converged["after"].values())


@pytest.mark.parametrize("name", LAB_NODES)
def test_node_is_converged(lab, converged, name):
    assert end_state(lab, name) == converged_state(lab, name)


def _sandbox_tag() -> str:
    return SANDBOX_IMAGE.rpartition(":")[2]


def _mirror_digest() -> str:
    """The manifest digest of the pause image in the lab's registry (the mirror)."""
    request = urllib.request.Request(
        f"http://{config.REGISTRY_ENDPOINT}/v2/pause/manifests/{_sandbox_tag()}",
        method="HEAD",
        headers={"Accept": registry.OCI_MANIFEST},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Docker-Content-Digest"]


def held_digest(lab, name: str) -> str | None:
    listing = lab.ssh(name, f"ctr -n k8s.io images ls name=={SANDBOX_IMAGE}").stdout
    rows = [line.split() for line in listing.splitlines()[1:]]
    return rows[0][2] if rows else None


REMOVE_SANDBOX_IMAGE = f"ctr -n k8s.io images rm {SANDBOX_IMAGE}"
# Each drift of issue 3, as a shell command run on every node, and a check that it took.
DRIFTS = {
    "config.toml SystemdCgroup false": (
        "sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' /etc/containerd/config.toml"
        " && systemctl restart containerd",
        lambda state: state["SystemdCgroup"] is False,
    ),
    "config.toml sandbox image changed": (
        f"sed -i 's|{SANDBOX_IMAGE}|example.invalid/pause:0|' /etc/containerd/config.toml"
        " && systemctl restart containerd",
        lambda state: state["sandbox"] == "example.invalid/pause:0",
    ),
    "sysctl ip_forward 0": (
        "sysctl -q -w net.ipv4.ip_forward=0",
        lambda state: state["sysctl"][2] == "0",
    ),
    "fstab swap line uncommented": (
        r"sed -i -E 's|^#[[:space:]]*(/swap\.img)|\1|' /etc/fstab",
        lambda state: bool(state["active fstab swap"]),
    ),
    "modules file deleted": (
        f"rm {MODULES_FILE}",
        lambda state: state["modules"] == [],
    ),
    "hosts block edited": (
        f"sed -i 's/^{re.escape(config.node_address(2))} {LAB_NODES[1]}$/{MOVED} {LAB_NODES[1]}/;"
        f" /^[0-9.]* {LAB_NODES[2]}$/d' /etc/hosts",
        lambda state: state["hosts block"][1:] == [f"{MOVED} {LAB_NODES[1]}"],
    ),
    "sandbox image removed": (
        REMOVE_SANDBOX_IMAGE,
        lambda state: not state["sandbox image held"],
    ),
    "containerd stopped and disabled": (
        "systemctl disable --now containerd",
        lambda state: state["containerd"] == ["disabled", "inactive"],
    ),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_rerun_repairs_drift(lab, converged, drift):
    command, took = DRIFTS[drift]
    on_all_nodes(lab, command)
    assert all(took(end_state(lab, name)) for name in LAB_NODES), "the drift did not happen"

    output = run_deploy(lab)

    assert changed_operations(output) > 0
    assert {name: end_state(lab, name) for name in LAB_NODES} == {
        name: converged_state(lab, name) for name in LAB_NODES
    }


@pytest.mark.parametrize("name", LAB_NODES)
def test_guard_pulls_removed_sandbox_image_through_the_mirror(lab, converged, name):
    lab.ssh(name, REMOVE_SANDBOX_IMAGE)
    assert held_digest(lab, name) is None

    lab.ssh(name, f"systemctl start {GUARD_SERVICE}")

    assert held_digest(lab, name) == _mirror_digest()


def test_interrupted_run_is_finished_by_the_next(lab, converged):
    """Kill pyinfra once it has started writing config.toml (which it must: config.toml,
    the modules file and the guard's units are changed or gone), then run again."""
    on_all_nodes(
        lab,
        "sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' /etc/containerd/config.toml"
        f" && rm {MODULES_FILE} /etc/systemd/system/{GUARD_SERVICE}"
        f" && systemctl daemon-reload && {REMOVE_SANDBOX_IMAGE}",
    )
    process = subprocess.Popen(deploy_argv(), cwd=config.REPO_ROOT, env=deploy_env(lab),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "containerd: write config.toml" in line:
            time.sleep(0.3)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "".join(seen)[-3000:]

    run_deploy(lab)

    assert changed_operations(run_deploy(lab)) == 0
    assert {name: end_state(lab, name) for name in LAB_NODES} == {
        name: converged_state(lab, name) for name in LAB_NODES
    }


@pytest.mark.parametrize("name", LAB_NODES)
def test_node_stays_converged_after_reboot(lab, converged, name):
    """Power-cycle the node with the sandbox image removed: systemd-sysctl, the modules
    file, containerd and the sandbox image guard must bring everything back at boot (on
    containerd 2.x the CRI may pull its pinned sandbox image first; the guard then finds it)."""
    lab.ssh(name, f"{REMOVE_SANDBOX_IMAGE} && sync")

    lab.restart(name)

    assert end_state(lab, name) == converged_state(lab, name)
    guard = lab.ssh(
        name,
        f"systemctl show -p Result -p ExecMainStartTimestampMonotonic {GUARD_SERVICE};"
        f" journalctl -b -o cat -u {GUARD_SERVICE}",
    ).stdout
    assert "Result=success" in guard
    assert "ExecMainStartTimestampMonotonic=0" not in guard
    assert f"sandbox image {SANDBOX_IMAGE} is present" in guard
    assert held_digest(lab, name) == _mirror_digest()


@pytest.mark.parametrize("name", LAB_NODES)
def test_crictl_is_pointed_at_the_socket_containerd_answers_on(lab, converged, name):
    """crictl itself comes with kubeadm (cri-tools), which the lab's nodes do not get: the
    endpoints /etc/crictl.yaml names are the socket the running containerd serves."""
    crictl = yaml.safe_load(lab.ssh(name, "cat /etc/crictl.yaml").stdout)
    assert crictl["image-endpoint"] == crictl["runtime-endpoint"]
    socket = crictl["runtime-endpoint"].removeprefix("unix://")
    assert socket == "/run/containerd/containerd.sock"
    lab.ssh(name, f"test -S {socket} && ctr --address {socket} version")


def test_lab_inventory_sends_the_image_repository_to_the_lab_registry(lab):
    cluster = load_cluster(lab.inventory_path)
    mirrors = cluster.settings_for(cluster.nodes[0]).registry_mirrors
    assert mirrors == {DEFAULTS.image_repository: [f"http://{config.REGISTRY_ENDPOINT}"]}
