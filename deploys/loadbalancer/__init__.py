"""The API load balancer (settings.api_load_balancer): haproxy on every node (local) or on
the control planes with keepalived holding a virtual IP (vip); nothing with none. Before
the Kubernetes concern: init and joins already go through the endpoint it serves.

haproxy and keepalived are the distribution's packages, held (apt-mark hold) as
containerd is: at the exact versions haproxy_version and keepalived_version when set (a
node with another version installed gets that one), else at the version the release's
archive offers. No default version is written here: a Debian or Ubuntu archive keeps only
the current version of a package per suite (point releases and security updates replace
it), so a version written down per release would stop installing at the next update; an
unpinned node keeps what it installed first, and no `apt upgrade` replaces it behind the
deploy's back.

A changed configuration is applied with `systemctl reload-or-restart`: haproxy's reload
(its systemd unit's ExecReload: check the file, then USR2 to the master) starts new workers
and lets the old ones finish their connections; keepalived reloads on SIGHUP. A daemon
that is not running is started. Decisions: deploys/loadbalancer/model.py.
"""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from deploys import secret
from deploys.context import NodeContext
from deploys.distro import apt, host_release
from deploys.loadbalancer.facts import LoadBalancerState
from deploys.loadbalancer.model import (
    HAPROXY_CFG,
    KEEPALIVED_CONF,
    check_settings,
    components,
    pinned_versions,
    ports,
    vrrp,
)
from deploys.loadbalancer.model import files as config_files

__all__ = ["check_settings", "converge", "ports", "rendered_files", "vrrp"]


def rendered_files(ctx: NodeContext) -> dict[str, str]:
    """haproxy.cfg and keepalived.conf, where this node runs them."""
    return config_files(ctx)


@deploy("API load balancer")
def converge():
    ctx = NodeContext.of(host)
    wanted = components(ctx)
    if not wanted:
        return
    current = host.get_fact(LoadBalancerState)
    family = host_release(current["release"], host.name).family
    pins = pinned_versions(ctx.settings)
    missing = [
        p
        for p in wanted
        if p not in current["packages"] or pins[p] not in ("", current["packages"][p]["version"])
    ]
    if missing:
        family.install(
            name=f"loadbalancer: install {' and '.join(missing)}",
            packages=[apt.spec(p, pins[p]) for p in missing],
            update=True,
            extra_install_args=family.REPLACE_HELD,
        )
    unheld = [p for p in wanted if p in missing or not current["packages"][p]["held"]]
    if unheld:
        server.shell(
            name=f"loadbalancer: hold {' and '.join(unheld)}",
            commands=[family.hold_command(unheld)],
        )
    for path, content in config_files(ctx).items():
        unit = "haproxy" if path == HAPROXY_CFG else "keepalived"
        if path == KEEPALIVED_CONF:  # the VRRP password: root-only
            written = secret.put(name=f"loadbalancer: write {path}", dest=path, content=content)
        else:
            written = files.put(
                name=f"loadbalancer: write {path}",
                src=io.StringIO(content),
                dest=path,
                user="root",
                group="root",
                mode="644",
            )
        state = current["units"].get(f"{unit}.service", {})
        if not state.get("enabled"):
            server.shell(name=f"loadbalancer: enable {unit}", commands=[f"systemctl enable {unit}"])
        # Running: reload only when the file changed; stopped (or just installed with the
        # package's own file): reload-or-restart starts it.
        server.shell(
            name=f"loadbalancer: reload {unit}",
            commands=[f"systemctl reload-or-restart {unit}"],
            _if=written.did_change if state.get("active") else None,
        )
