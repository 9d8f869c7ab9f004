"""Root filesystems: one cached Debian base per suite, and a configured copy of it per node."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.lab import config, host

# Bump when the base's preparation changes, so cached bases are rebuilt.
BASE_FORMAT = 2
SSH_HOST_KEY = "etc/ssh/ssh_host_ed25519_key"


def base_dir(suite: str) -> Path:
    return config.CACHE_DIR / f"base-{suite}"


def _recipe(suite: str, mirror: str) -> str:
    """What a base is built from; a cached base with another recipe is rebuilt."""
    recipe = {
        "format": BASE_FORMAT,
        "suite": suite,
        "mirror": mirror,
        "packages": config.BASE_PACKAGES,
    }
    return json.dumps(recipe, sort_keys=True)


def _marker(suite: str) -> Path:
    """Written only once the base of ``suite`` is complete."""
    return config.CACHE_DIR / f"base-{suite}.done"


def base_is_current(suite: str, mirror: str) -> bool:
    marker = _marker(suite)
    return marker.is_file() and marker.read_text() == _recipe(suite, mirror)


def build_base(suite: str, mirror: str) -> None:
    """Debootstrap a minimal bootable base of ``suite``, replacing any partial or stale one."""
    target = base_dir(suite)
    _marker(suite).unlink(missing_ok=True)
    # An interrupted debootstrap leaves its /proc mount in the target.
    host.unmount_under(target)
    host.remove_tree(target)
    log = config.CACHE_DIR / f"base-{suite}.log"
    try:
        host.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(config.BASE_PACKAGES)}",
                suite,
                str(target),
                mirror,
            ]
        )
    except RuntimeError as exc:
        log.write_text(str(exc))
        raise RuntimeError(f"debootstrap {suite} failed; its output is in {log}") from None
    _strip_base(target)
    host.run(["systemctl", f"--root={target}", "enable", "systemd-networkd.service"])
    _marker(suite).write_text(_recipe(suite, mirror))


def _strip_base(root: Path) -> None:
    """Remove what must differ between nodes (each gets its own) and the downloaded .debs."""
    for path in [*(root / "etc/ssh").glob("ssh_host_*"), *(root / "var/cache/apt").rglob("*.deb")]:
        path.unlink()
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(f"HostKey /{SSH_HOST_KEY}\n")
    (root / "etc/machine-id").write_text("")
    (root / "etc/apt/sources.list").write_text("")


def ensure_bases(suites: list[str], mirror: str) -> None:
    """Build, in parallel, the bases of ``suites`` that are missing or stale."""
    todo = sorted({s for s in suites if not base_is_current(s, mirror)})
    if not todo:
        return
    config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"building base root filesystems (debootstrap): {' '.join(todo)}", flush=True)
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        list(pool.map(build_base, todo, [mirror] * len(todo)))


def create_node_rootfs(
    rootfs: Path, suite: str, name: str, address: str, public_key: str, sources_list: str
) -> None:
    """Copy the base of ``suite`` to ``rootfs`` and give it the node's identity and network.

    The copy is configured under a temporary name and renamed last, so an interrupted
    creation never leaves a half-configured node behind.
    """
    partial = rootfs.with_name(rootfs.name + ".partial")
    host.remove_tree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    host.run(["cp", "-a", str(base_dir(suite)), str(partial)])
    (partial / "etc/hostname").write_text(f"{name}\n")
    (partial / "etc/machine-id").write_text(f"{uuid.uuid4().hex}\n")
    host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}",
              "-f", str(partial / SSH_HOST_KEY)])  # fmt: skip
    ssh_dir = partial / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    (partial / "etc/systemd/network/10-host0.network").write_text(
        "[Match]\nName=host0\n\n"
        f"[Network]\nAddress={address}/{config.NETWORK.prefixlen}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    proxy = f"http://{config.PROXY_ENDPOINT}/"
    (partial / "etc/apt/apt.conf.d/01lab").write_text(
        f'Acquire::http::Proxy "{proxy}";\n'
        f'Acquire::https::Proxy "{proxy}";\n'
        "// The lab's own services on the bridge (the stand-in Kubernetes repository).\n"
        f'Acquire::http::Proxy::{config.BRIDGE_ADDRESS} "DIRECT";\n'
        "// The host's mirror can serve a suite past its Valid-Until (sid, by weeks);\n"
        "// signatures are still checked.\n"
        'Acquire::Check-Valid-Until "false";\n'
    )
    (partial / "etc/apt/sources.list").write_text(sources_list)
    partial.rename(rootfs)


def host_public_key(rootfs: Path) -> str:
    """The node's SSH host public key, ``TYPE BASE64`` (read from its root filesystem)."""
    key_type, key = (rootfs / f"{SSH_HOST_KEY}.pub").read_text().split()[:2]
    return f"{key_type} {key}"
