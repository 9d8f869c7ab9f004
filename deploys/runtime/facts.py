"""What the containerd deploy needs to know about a node, read in one round trip.

`ContainerdState` gathers with a single remote command: the release and architecture (for
Docker's repository), the containerd packages and their holds, `containerd --version`,
whether the running containerd was restarted with the current config.toml, the units,
the registry host files, and what containerd loads: `containerd config dump` (parsed),
`ctr plugins ls` and the images of the k8s.io namespace. Fixture tests:
tests/unit/test_containerd_facts.py with outputs in tests/unit/facts/containerd/.
"""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys import distro
from deploys.distro import apt
from deploys.runtime import toml_text
from deploys.runtime.config import CERTS_DIR, CONFIG_TOML
from deploys.runtime.sandbox import GUARD_SERVICE, GUARD_TIMER
from deploys.runtime.verify import parse_plugins

PACKAGES = ("containerd", "containerd.io")
UNITS = ("containerd.service", GUARD_SERVICE, GUARD_TIMER)
# sha256sum of the config.toml containerd was last restarted with by the deploy.
APPLIED_STAMP = "/var/lib/containerd/config.toml.applied"
# Bound the calls that need the daemon, so a hung containerd cannot hang the run.
_CTR = "timeout 10 ctr"

RELEASE_KEYS = ("id", "version", "codename")

_SCRIPT = "\n".join(
    (
        distro.release_line(RELEASE_KEYS),
        f'echo "arch $({apt.ARCH_QUERY} 2>/dev/null)"',
        f"{apt.installed_query(PACKAGES)} 2>/dev/null | sed 's/^/package /'",
        'echo "version $(containerd --version 2>/dev/null)"',
        f"if [ -f {APPLIED_STAMP} ] && sha256sum {CONFIG_TOML} 2>/dev/null"
        f' | cmp -s - {APPLIED_STAMP}; then echo "applied yes"; fi',
        "systemctl show --no-pager -p Id -p ActiveState -p UnitFileState"
        f" {' '.join(UNITS)} 2>/dev/null | sed 's/^/unit /'",
        f"find {CERTS_DIR} -mindepth 2 -maxdepth 2 -name hosts.toml -type f 2>/dev/null"
        " | sed 's/^/hosts /'",
        "if command -v containerd >/dev/null 2>&1; then",
        'if dump=$(containerd config dump 2>/dev/null); then printf "%s\\n" "$dump"'
        " | sed 's/^/dump /'; else echo \"dump-error $(containerd config dump 2>&1 >/dev/null"
        ' | tail -n 1)"; fi',
        f"{_CTR} plugins ls 2>/dev/null | sed 's/^/plugin /'",
        f"{_CTR} -n k8s.io images ls -q 2>/dev/null | sed 's/^/image /'",
        "fi",
        "true",
    )
)


def _empty() -> dict:
    return {
        "release": {"id": "", "version": "", "codename": ""},
        "arch": "",
        "packages": {},
        "version": "",
        "applied": False,
        "units": {},
        "hosts_files": [],
        "dump": None,
        "dump_error": "",
        "plugins": {},
        "images": [],
    }


class ContainerdState(FactBase):
    """
    Returns the node's container runtime state:

    .. code:: python

        {
            "release": {"id": "debian", "version": "12", "codename": "bookworm"},
            "arch": "amd64",
            "packages": {"containerd": {"version": "1.6.20~ds1-1+deb12u3", "held": True}},
            "version": "containerd github.com/containerd/containerd 1.6.20~ds1 ...",  # or ""
            "applied": True,     # containerd was restarted with the current config.toml
            "units": {"containerd.service": {"active": True, "enabled": True}, ...},
            "hosts_files": ["/etc/containerd/certs.d/docker.io/hosts.toml"],
            "dump": {"version": 2, "plugins": {...}, ...},    # None: no containerd
            "dump_error": "",    # what `containerd config dump` said when it failed
            "plugins": {"io.containerd.grpc.v1.cri": "ok", ...},   # {} : daemon not up
            "images": ["registry.k8s.io/pause:3.10.1", ...],        # k8s.io namespace
        }
    """

    default = staticmethod(_empty)

    def command(self) -> str:
        return _SCRIPT

    def process(self, output) -> dict:
        state = _empty()
        dump: list[str] = []
        plugins: list[str] = []
        unit: dict[str, str] = {}

        def end_unit():
            if unit.get("Id"):
                state["units"][unit["Id"]] = {
                    "active": unit.get("ActiveState") == "active",
                    "enabled": unit.get("UnitFileState") == "enabled",
                }
            unit.clear()

        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "dump":
                dump.append(rest)
                continue
            rest = rest.strip()
            if kind == "dump-error":
                state["dump_error"] = rest or "no output"
            if kind == "unit":
                key, eq, value = rest.partition("=")
                if not eq or (key == "Id" and unit.get("Id")):
                    end_unit()
                if eq:
                    unit[key] = value
            elif kind == "release":
                state["release"] = distro.release_fields(rest, RELEASE_KEYS)
            elif kind == "arch":
                state["arch"] = rest
            elif kind == "package" and (installed := apt.parse_installed(rest)):
                name, version, held = installed
                state["packages"][name] = {"version": version, "held": held}
            elif kind == "version":
                state["version"] = rest
            elif kind == "applied":
                state["applied"] = rest == "yes"
            elif kind == "hosts" and rest:
                state["hosts_files"].append(rest)
            elif kind == "plugin":
                plugins.append(rest)
            elif kind == "image" and rest:
                state["images"].append(rest)
        end_unit()
        state["plugins"] = parse_plugins("\n".join(plugins))
        if dump:
            try:
                state["dump"] = toml_text.loads("\n".join(dump))
            except toml_text.TOMLDecodeError as exc:
                state["dump_error"] = f"not TOML: {exc}"
        return state
