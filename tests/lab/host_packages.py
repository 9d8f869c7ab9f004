"""Every Debian package this machine needs for the tests and the lab: the one list.

``.ci/run`` installs what is missing from it before the test command (``python3 -m
tests.lab.host_packages``), and so does ``python -m tests.lab up``. The unit test
tests/unit/test_host_packages.py finds every command the tests and the lab run on this
machine and fails when one is neither here nor part of every Debian system (ESSENTIAL), so
a new tool cannot be forgotten.

Tests that need one of these commands call ``require_commands``: where a command is
missing they skip, and under CI=true they fail, because CI installs this whole list.
"""

from __future__ import annotations

import os
import shutil
import sys

# package -> the commands the tests or the lab run from it (empty: needed, never run by name)
HOST_PACKAGES: dict[str, tuple[str, ...]] = {
    "systemd-container": ("systemd-nspawn",),  # the lab's nodes
    "systemd": ("systemctl",),  # `systemctl --root` enables units in a node's root filesystem
    "debootstrap": ("debootstrap",),  # the nodes' base root filesystems
    "openssh-client": ("ssh", "ssh-keygen"),  # reaching the nodes; their keys
    "iproute2": ("ip",),  # the lab's bridge
    "docker-registry": ("docker-registry",),  # the lab's image registry (an OCI distribution)
    "gcc": ("gcc",),  # the pause binary of the lab's sandbox image, compiled statically
    "libc6-dev": (),  # gcc's static libc
    "apt-utils": ("apt-ftparchive",),  # the stand-in Kubernetes apt repository's indexes
    "gpg": ("gpg",),  # signing the stand-in repository
    "gpg-agent": (),  # gpg's secret-key operations go through it
    "gpgconf": ("gpgconf",),  # stopping the throwaway key's agent
    "gpgv": ("gpgv",),  # apt's own signature check of the stand-in repository
    "curl": ("curl",),  # the deploy's Kuboard fetch, run for real against a stand-in server
    "containerd": ("containerd",),  # `containerd config dump` of the rendered config.toml
    "vagrant": ("vagrant",),  # `vagrant validate` of the Vagrantfile
    "ruby": ("ruby",),  # the Vagrantfile's known_hosts function, run on its own
}

# Commands of Debian's Essential and required packages (coreutils, dash, dpkg, apt,
# mount, ...), present on every Debian system: never installed, never missing.
ESSENTIAL: frozenset[str] = frozenset(
    {"sh", "cp", "rm", "umount", "grep", "sed", "gzip"}
    | {"dpkg", "dpkg-deb", "dpkg-query", "apt-get", "apt-cache"}
)
# Commands of the project's own Python dependencies, in the virtualenv the tests run from.
VIRTUALENV: frozenset[str] = frozenset({"pyinfra"})


def package_of(command: str) -> str | None:
    """The package on the list that provides ``command``, if any."""
    return next((p for p, commands in HOST_PACKAGES.items() if command in commands), None)


def require_commands(*commands: str) -> None:
    """Skip the calling test unless every command is on this machine; under CI=true, fail.

    Call it from a test or a fixture (pytest is imported here, not at module level).
    """
    import pytest

    missing = [command for command in commands if shutil.which(command) is None]
    if not missing:
        return
    packages = sorted({package_of(command) or f"? ({command})" for command in missing})
    message = (
        f"needs {', '.join(missing)} (Debian packages {', '.join(packages)}); "
        "`python3 -m tests.lab.host_packages` installs them"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI installs every host package, but this one {message}", pytrace=False)
    pytest.skip(message)


def main() -> int:
    """Install whichever packages of the list are missing (as root), else nothing."""
    from tests.lab import host

    if os.geteuid() != 0:
        missing = host.missing_packages(list(HOST_PACKAGES))
        if missing:
            print(f"not root: cannot install {' '.join(missing)}", file=sys.stderr)
            return 1
        return 0
    host.ensure_packages(list(HOST_PACKAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
