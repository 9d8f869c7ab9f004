"""What the load balancer deploy needs to know about a node, read in one round trip: the
release (its package family), the haproxy and keepalived packages and their holds, and
their units. Fixture tests: tests/unit/test_loadbalancer.py."""

from __future__ import annotations

from pyinfra.api import FactBase

from deploys import distro
from deploys.distro import apt

PACKAGES = ("haproxy", "keepalived")
UNITS = tuple(f"{p}.service" for p in PACKAGES)
RELEASE_KEYS = ("id", "version", "codename")

_SCRIPT = "\n".join(
    (
        distro.release_line(RELEASE_KEYS),
        f"{apt.installed_query(PACKAGES)} 2>/dev/null | sed 's/^/package /'",
        f"systemctl show --no-pager -p Id -p ActiveState -p UnitFileState {' '.join(UNITS)}"
        " 2>/dev/null | sed 's/^/unit /'",
        "true",
    )
)


def _empty() -> dict:
    return {"release": {"id": "", "version": "", "codename": ""}, "packages": {}, "units": {}}


class LoadBalancerState(FactBase):
    """
    Returns the load balancer's packages and units:

    .. code:: python

        {
            "release": {"id": "debian", "version": "12", "codename": "bookworm"},
            "packages": {"haproxy": {"version": "2.6.12-1+deb12u4", "held": True}},
            "units": {"haproxy.service": {"active": True, "enabled": True}},
        }
    """

    default = staticmethod(_empty)

    def command(self) -> str:
        return _SCRIPT

    def process(self, output) -> dict:
        state = _empty()
        units: list[dict[str, str]] = [{}]  # one block per unit, blank lines between
        for line in output:
            kind, _, rest = line.partition(" ")
            rest = rest.strip()
            if kind == "release":
                state["release"] = distro.release_fields(rest, RELEASE_KEYS)
            elif kind == "package" and (installed := apt.parse_installed(rest)):
                name, version, held = installed
                state["packages"][name] = {"version": version, "held": held}
            elif kind == "unit":
                key, eq, value = rest.partition("=")
                if eq:
                    units[-1][key] = value
                else:
                    units.append({})
        for unit in units:
            if unit.get("Id"):
                state["units"][unit["Id"]] = {
                    "active": unit.get("ActiveState") == "active",
                    "enabled": unit.get("UnitFileState") == "enabled",
                }
        return state
