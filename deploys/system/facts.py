"""What OS preparation needs to know about a node, read in one round trip.

`SystemState` gathers, with a single remote command, everything the system deploys decide
on: the release, container or not, hostname, swap (active, in fstab, systemd units),
kernel modules (loaded or built in), the packages and services OS preparation manages,
and the state of ufw, firewalld and SELinux. Fixture tests: tests/unit/facts/.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys import distro
from deploys.distro import apt

# An fstab line that is active (not commented out) and has filesystem type "swap".
# One regex, for `grep -E` here and `sed -E` in deploys/system/swap.py.
FSTAB_SWAP_LINE = (
    r"[[:space:]]*[^#[:space:]][^[:space:]]*[[:space:]]+[^[:space:]]+[[:space:]]+swap"
    r"([[:space:]].*)?"
)
# Kernel modules the deploys may need (kubeadm, flannel, kube-proxy in IPVS mode).
MODULES = ("overlay", "br_netfilter", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
# What a module provides, seen where neither /proc/modules nor /sys/module lists it: a kernel
# without loadable modules has no /proc/modules, a built-in module without parameters has no
# /sys/module entry (br_netfilter), and a container may have no /sys/module at all.
MODULE_EVIDENCE = {
    "overlay": ("grep -qw overlay /proc/filesystems",),
    "br_netfilter": ("test -e /proc/sys/net/bridge/bridge-nf-call-iptables",),
    "nf_conntrack": ("test -e /proc/sys/net/netfilter/nf_conntrack_max",),
}
# Packages whose installed state the deploys decide on (see deploys/system/packages.py).
PACKAGES = (
    "apt-transport-https",
    "ca-certificates",
    "chrony",
    "conntrack",
    "curl",
    "ebtables",
    "ethtool",
    "gpg",
    "iproute2",
    "ipset",
    "iptables",
    "ipvsadm",
    "kmod",
    "nftables",
    "ntp",
    "ntpsec",
    "procps",
    "socat",
    "systemd-timesyncd",
)
# systemd units whose enablement and activity the deploys decide on.
UNITS = (
    "chrony.service",
    "ntp.service",
    "ntpsec.service",
    "systemd-timesyncd.service",
)
_UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "UnitFileState",
    "ActiveState",
    "ConditionResult",
    "ConditionTimestampMonotonic",
)

RELEASE_KEYS = ("id", "version")

_SCRIPT = "\n".join(
    (
        distro.release_line(RELEASE_KEYS),
        'echo "container $(systemd-detect-virt --container 2>/dev/null || true)"',
        'echo "hostname $(uname -n)"',
        'tail -n +2 /proc/swaps 2>/dev/null | while read -r f rest; do echo "swap $f"; done',
        f"grep -E '^{FSTAB_SWAP_LINE}$' /etc/fstab 2>/dev/null | sed 's/^/fstab /'",
        "systemctl list-unit-files --no-legend --no-pager swap.target '*.swap' 2>/dev/null"
        ' | while read -r u s rest; do echo "unit $u $s"; done',
        'loaded() { grep -q "^$1 " /proc/modules || test -d "/sys/module/$1"'
        ' || grep -q "/$1\\.ko" "/lib/modules/$(uname -r)/modules.builtin"; } 2>/dev/null',
        *(
            f"{{ {' || '.join((f'loaded {m}', *MODULE_EVIDENCE.get(m, ())))}; }} 2>/dev/null"
            f' && echo "module {m}"'
            for m in MODULES
        ),
        apt.installed_query(PACKAGES, "${Package}")
        + ' 2>/dev/null | awk \'substr($1, 2, 1) == "i" {print "package", $2}\'',
        "systemctl show --no-pager "
        + " ".join(f"-p {p}" for p in _UNIT_PROPERTIES)
        + f" {' '.join(UNITS)} 2>/dev/null | sed 's/^/service /'",
        "if command -v ufw >/dev/null 2>&1; then"
        ' echo "ufw $(ufw status 2>/dev/null | head -n 1)";'
        " ufw show added 2>/dev/null | tail -n +2 | sed 's/^/ufw-rule /'; fi",
        "if command -v firewall-cmd >/dev/null 2>&1; then"
        " if firewall-cmd --state >/dev/null 2>&1;"
        ' then echo "firewalld running $(firewall-cmd --permanent --list-services)";'
        ' else echo "firewalld stopped $(firewall-offline-cmd --list-services 2>/dev/null)";'
        " fi; fi",
        "if [ -f /etc/selinux/config ]; then"
        " echo \"selinux $(sed -n 's/^SELINUX=//p' /etc/selinux/config | tail -n 1)"
        ' $(getenforce 2>/dev/null || echo Disabled)"; fi',
        "true",
    )
)


def _empty() -> dict:
    return {
        "release": {"id": "", "version": ""},
        "container": "none",
        "hostname": "",
        "swaps": [],
        "fstab_swap": [],
        "swap_units": {},
        "modules": [],
        "packages": [],
        "services": {},
        "ufw": None,
        "firewalld": None,
        "selinux": None,
    }


class SystemState(FactBase):
    """
    Returns the node's OS-preparation state:

    .. code:: python

        {
            "release": {"id": "ubuntu", "version": "24.04"},
            "container": "none",            # or systemd-nspawn, lxc, docker, ...
            "hostname": "ubuntu",
            "swaps": ["/swap.img"],          # active, from /proc/swaps
            "fstab_swap": ["/swap.img none swap sw 0 0"],   # swap lines not commented out
            "swap_units": {"swap.target": "static", "swap.img.swap": "generated"},
            "modules": ["overlay"],          # of MODULES: loaded or built in
            "packages": ["curl", "systemd-timesyncd"],      # of PACKAGES: installed
            "services": {"chrony.service": {"LoadState": "loaded", "UnitFileState": "enabled",
                                            "ActiveState": "active", ...}},
            "ufw": {"active": False, "rules": ["allow 22/tcp"]},        # None: no ufw
            "firewalld": {"running": True, "services": ["ssh"]},        # None: no firewalld
            "selinux": {"config": "enforcing", "mode": "Enforcing"},    # None: no SELinux
        }
    """

    default = staticmethod(_empty)

    def command(self) -> str:
        return _SCRIPT

    def process(self, output) -> dict:
        state = _empty()
        unit: dict[str, str] = {}

        def end_unit():
            if unit.get("Id"):
                state["services"][unit["Id"]] = {k: v for k, v in unit.items() if k != "Id"}
            unit.clear()

        for line in output:
            kind, _, rest = line.partition(" ")
            rest = rest.strip()
            if kind == "service":
                key, eq, value = rest.partition("=")
                if not eq:
                    end_unit()
                elif key == "Id" and unit.get("Id"):
                    end_unit()
                    unit[key] = value
                else:
                    unit[key] = value
            elif kind == "release":
                state["release"] = distro.release_fields(rest, RELEASE_KEYS)
            elif kind == "container" and rest:
                state["container"] = rest
            elif kind == "hostname":
                state["hostname"] = rest
            elif kind == "swap" and rest:
                state["swaps"].append(rest)
            elif kind == "fstab" and rest:
                state["fstab_swap"].append(rest)
            elif kind == "unit" and " " in rest:
                name, _, unit_state = rest.partition(" ")
                state["swap_units"][name] = unit_state.strip()
            elif kind == "module" and rest in MODULES:
                state["modules"].append(rest)
            elif kind == "package" and rest in PACKAGES:
                state["packages"].append(rest)
            elif kind == "ufw":
                state["ufw"] = {"active": rest.lower() == "status: active", "rules": []}
            elif kind == "ufw-rule" and rest.startswith("ufw ") and state["ufw"] is not None:
                state["ufw"]["rules"].append(rest.removeprefix("ufw "))
            elif kind == "firewalld":
                running, _, services = rest.partition(" ")
                state["firewalld"] = {"running": running == "running", "services": services.split()}
            elif kind == "selinux":
                config, _, mode = rest.partition(" ")
                state["selinux"] = {"config": config, "mode": mode.strip()}
        end_unit()
        return state
