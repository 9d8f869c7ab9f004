"""What preflight checks on a node before any change, read in one round trip.

`PreflightState` gathers with a single remote command: the OS release, container or not,
the kernel release, the cgroup hierarchy, CPUs and memory, the machine's identities
(/etc/machine-id, product_uuid, the MAC addresses of its hardware interfaces), whether the
node is in a cluster already (/etc/kubernetes/kubelet.conf) or keeps what an earlier join
left (/etc/kubernetes/pki/ca.crt), the TCP and UDP ports
something listens on, and the installed and candidate versions of the containerd
packages. Read from /proc and /sys where it can, so it needs nothing the deploy installs
(no ss, no iproute2). Fixture tests: tests/unit/facts/test_preflight_facts.py.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys import distro
from deploys.distro import apt

CONTAINERD_PACKAGES = ("containerd", "containerd.io")
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
# What an earlier join or init leaves (deploys/kubernetes/bootstrap.py JOIN_LEFTOVER).
CLUSTER_CA = "/etc/kubernetes/pki/ca.crt"
# /proc/net files: (protocol, socket state that means "listening": TCP_LISTEN 0A, and 07
# for UDP, which has no listen state: an unconnected bound socket).
_SOCKETS = (
    ("tcp", "tcp", "0A"),
    ("tcp6", "tcp", "0A"),
    ("udp", "udp", "07"),
    ("udp6", "udp", "07"),
)

RELEASE_KEYS = ("id", "version")

_SCRIPT = "\n".join(
    (
        distro.release_line(RELEASE_KEYS),
        'echo "container $(systemd-detect-virt --container 2>/dev/null || true)"',
        'echo "kernel $(uname -r)"',
        'echo "cgroup $(stat -fc %T /sys/fs/cgroup 2>/dev/null)"',
        'echo "cpus $(nproc 2>/dev/null)"',
        'awk \'$1 == "MemTotal:" {print "memory", $2}\' /proc/meminfo 2>/dev/null',
        'echo "machine-id $(cat /etc/machine-id 2>/dev/null)"',
        'echo "product-uuid $(cat /sys/class/dmi/id/product_uuid 2>/dev/null)"',
        # Interfaces backed by a device: software ones (bridges, veth, vxlan, cni0) live
        # under /sys/devices/virtual and may repeat a device's MAC on purpose.
        'for i in /sys/class/net/*; do case $(readlink -f "$i") in */virtual/*) ;;'
        ' *) echo "mac ${i##*/} $(cat "$i/address" 2>/dev/null)" ;; esac; done',
        f'if [ -e {KUBELET_CONF} ]; then echo "joined yes"; fi',
        f'if [ -e {CLUSTER_CA} ]; then echo "left-over yes"; fi',
        *(
            f'[ -r /proc/net/{name} ] && awk \'NR > 1 && $4 == "{state}"'
            f' {{split($2, a, ":"); print "listen {protocol}", a[2]}}\' /proc/net/{name}'
            for name, protocol, state in _SOCKETS
        ),
        apt.policy_query(CONTAINERD_PACKAGES, "apt"),
        # IPv4 addresses per interface (api_load_balancer vip: the VIP's subnet, its holder)
        "command -v ip >/dev/null && ip -o -4 addr show | awk '{print \"addr\", $2, $4}'",
        "true",
    )
)
# Whether an address answers on the network (api_load_balancer vip: the VIP before
# keepalived holds it): a TCP connection to it is accepted or refused; "silent" when it is
# unreachable or nothing came back within 3 seconds. (The neighbour table is no evidence:
# an entry stays there, stale, after its address has gone.)
_PROBE = (
    'if out=$(timeout 3 bash -c "exec 3<>/dev/tcp/{address}/{port}" 2>&1)'
    " || case $out in *refused*) true ;; *) false ;; esac;"
    ' then echo "probe answered"; else echo "probe silent"; fi'
)


def _empty() -> dict:
    return {
        "release": {"id": "", "version": ""},
        "container": "none",
        "kernel": "",
        "cgroup": "",
        "cpus": 0,
        "memory_mib": 0,
        "machine_id": "",
        "product_uuid": "",
        "macs": {},
        "joined": False,
        "left_over": False,
        "listening": [],
        "containerd": {},
        "addresses": {},
        "probe": "",
    }


class PreflightState(FactBase):
    """
    Returns what preflight checks on the node:

    .. code:: python

        {
            "release": {"id": "ubuntu", "version": "24.04"},
            "container": "none",           # or systemd-nspawn, lxc, docker, ...
            "kernel": "6.8.0-85-generic",   # uname -r
            "cgroup": "cgroup2fs",         # /sys/fs/cgroup's type: cgroup2fs is cgroup v2
            "cpus": 2,                      # usable CPUs (nproc)
            "memory_mib": 3916,             # MemTotal
            "machine_id": "0e1b...",        # /etc/machine-id; "" if absent
            "product_uuid": "4c4c...",      # "" where unreadable
            "macs": {"ens3": "52:54:00:12:34:56"},   # interfaces backed by a device
            "joined": False,                # /etc/kubernetes/kubelet.conf exists
            "left_over": False,             # /etc/kubernetes/pki/ca.crt exists
            "listening": ["22/tcp", "68/udp"],       # sorted, without duplicates
            "containerd": {"containerd": {"installed": "", "candidate": "1.7.24-0ubuntu1"}},
            "addresses": {"eth0": ["10.0.0.11/24"]},  # IPv4, per interface
            "probe": "answered",   # or "silent"; "" when no address was probed
        }

    `probe`: "address:port" to probe (see _PROBE), or "" for none.
    """

    default = staticmethod(_empty)

    def command(self, probe: str = "") -> str:
        if not probe:
            return _SCRIPT
        address, _, port = probe.rpartition(":")
        return f"{_SCRIPT}\n{_PROBE.format(address=address, port=int(port))}"

    def process(self, output) -> dict:
        state = _empty()
        listening: set[tuple[int, str]] = set()
        for line in output:
            kind, _, rest = line.partition(" ")
            rest = rest.strip()
            if kind == "release":
                state["release"] = distro.release_fields(rest, RELEASE_KEYS)
            elif kind == "container" and rest:
                state["container"] = rest
            elif kind == "kernel":
                state["kernel"] = rest
            elif kind == "cgroup":
                state["cgroup"] = rest
            elif kind == "cpus" and rest.isdigit():
                state["cpus"] = int(rest)
            elif kind == "memory" and rest.isdigit():
                state["memory_mib"] = int(rest) // 1024
            elif kind == "machine-id":
                state["machine_id"] = rest
            elif kind == "product-uuid":
                state["product_uuid"] = rest.lower()
            elif kind == "mac":
                name, _, address = rest.partition(" ")
                if address.strip():
                    state["macs"][name] = address.strip().lower()
            elif kind == "joined":
                state["joined"] = rest == "yes"
            elif kind == "left-over":
                state["left_over"] = rest == "yes"
            elif kind == "listen":
                protocol, _, port = rest.partition(" ")
                try:
                    listening.add((int(port, 16), protocol))
                except ValueError:
                    continue
            elif kind == "apt":
                _apt(state["containerd"], rest.split())
            elif kind == "addr" and len(rest.split()) == 2:
                interface, address = rest.split()
                state["addresses"].setdefault(interface, []).append(address)
            elif kind == "probe":
                state["probe"] = rest
        state["listening"] = [f"{port}/{protocol}" for port, protocol in sorted(listening)]
        return state


def _apt(packages: dict, words: list[str]) -> None:
    """One containerd package's installed or candidate version ("" for none)."""
    policy = apt.parse_policy(words)
    if policy and policy[0] in CONTAINERD_PACKAGES:
        package, field, version = policy
        packages.setdefault(package, {"installed": "", "candidate": ""})[field] = version
