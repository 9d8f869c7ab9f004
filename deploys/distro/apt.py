"""The apt/dpkg package family (Debian, Ubuntu): everything the deploys say to apt and dpkg,
in one module. Another family (rpm/dnf, ...) is another module with the same names.

Commands are shell text for the project's one-round-trip facts and its own operations;
the operations are pyinfra's own apt operations.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

KEYRINGS_DIR = "/etc/apt/keyrings"
SOURCES_DIR = "/etc/apt/sources.list.d"
# The node's package architecture ("amd64", "arm64"), as repositories name it.
ARCH_QUERY = "dpkg --print-architecture"
# The names of the packages held back from upgrades, one per line.
HELD_QUERY = "apt-mark showhold"
# install's extra argument that lets it replace a held package (the pinned version wins).
REPLACE_HELD = "--allow-change-held-packages"

# pyinfra's operations and facts of this family.
install = apt.packages
update = apt.update
add_key = apt.key
InstalledPackages = DebPackages


def installed_query(packages: Iterable[str], fields: str = "${Package} ${Version}") -> str:
    """Shell: one line "<flags> <fields>" per package dpkg knows of `packages`: the flags
    are dpkg's want/status/error letters (ii: installed, hi: held and installed)."""
    return f"dpkg-query -W -f '${{db:Status-Abbrev}} {fields}\\n' {' '.join(packages)}"


def parse_installed(line: str) -> tuple[str, str, bool] | None:
    """(name, version, held) of an installed package in installed_query()'s output
    (`ii  containerd 1.6.20~ds1-1+deb12u3`), None for a package not installed."""
    parts = line.split()
    if len(parts) == 3 and len(parts[0]) >= 2 and parts[0][1] == "i":
        return parts[1], parts[2], parts[0][0] == "h"
    return None


def policy_query(packages: Iterable[str], tag: str) -> str:
    """Shell: "<tag> <package>: Installed: <version>" and "<tag> <package>: Candidate:
    <version>" per package apt knows ("(none)": none); parse_policy reads them."""
    return (
        f"LC_ALL=C apt-cache policy {' '.join(packages)} 2>/dev/null"
        ' | awk \'/^[^ ]/ {p = $1} $1 == "Installed:" || $1 == "Candidate:"'
        f' {{print "{tag}", p, $1, $2}}\''
    )


def parse_policy(words: list[str]) -> tuple[str, str, str] | None:
    """(package, "installed" or "candidate", version; "" for none) of one policy_query()
    line after its tag, e.g. ["containerd:", "Installed:", "(none)"]."""
    if len(words) != 3:
        return None
    package, field, version = words[0].rstrip(":"), words[1].rstrip(":").lower(), words[2]
    if field not in ("installed", "candidate"):
        return None
    return package, field, "" if version == "(none)" else version


def held(showhold_output: str | None) -> set[str]:
    """The package names HELD_QUERY lists."""
    return set((showhold_output or "").split())


def hold_command(packages: Iterable[str]) -> str:
    """Hold packages back from upgrades."""
    return f"apt-mark hold {' '.join(packages)}"


def spec(package: str, version: str = "") -> str:
    """A package as apt installs it: "name" or "name=version"."""
    return f"{package}={version}" if version else package


def source_line(
    url: str, suite: str, keyring: str, components: Iterable[str] = (), arch: str = ""
) -> str:
    """One apt source that trusts only `keyring` (signed-by), never apt-key."""
    options = (f"arch={arch} " if arch else "") + f"signed-by={keyring}"
    return f"deb [{options}] {url} {' '.join((suite, *components))}\n"
