"""The operating systems the project supports: one table of releases, and per distribution
the package family (the module that speaks its package manager, e.g. deploys/distro/apt.py).

The renderer (--os), the deploy-level test harness (its recorded hosts) and the deploys
(the release a node reports) all read RELEASES and Release from here. A release that is not
in the table but of a supported distribution (a newer point release, testing, sid) is still
accepted by Release.parse: decisions compare versions with Release.older_than.

Adding a release: one line in RELEASES, and recorded facts in tests/deploy/facts/<name>/.
Adding a distribution of a known family: one entry in FAMILIES. Adding a package family
(rpm, ...): one module like apt.py, and its distributions in FAMILIES.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from pyinfra.api import OperationError

from deploys.distro import apt

# Package family of each supported distribution (os-release ID).
FAMILIES: dict[str, ModuleType] = {"ubuntu": apt, "debian": apt}
SUPPORTED = tuple(FAMILIES)


@dataclass(frozen=True)
class Release:
    id: str  # os-release ID: "ubuntu" or "debian"
    version_id: str  # os-release VERSION_ID: "24.04", "12"; "" for testing/sid
    codename: str = ""  # os-release VERSION_CODENAME: "noble", "bookworm"

    @classmethod
    def parse(cls, release_id: str, version_id: str, codename: str = "") -> Release:
        """From os-release's ID, VERSION_ID (and VERSION_CODENAME); ValueError for a
        distribution not supported or a version that is not a number."""
        if release_id not in SUPPORTED:
            raise ValueError(f"unsupported distribution {release_id!r}: supported are {SUPPORTED}")
        release = cls(release_id, version_id, codename)
        try:
            release.version  # noqa: B018 (checks VERSION_ID)
        except ValueError:
            raise ValueError(f"{release_id} VERSION_ID {version_id!r} is not a number") from None
        return release

    @property
    def name(self) -> str:
        """The release as RELEASES and the renderer's --os name it: "ubuntu-24.04"."""
        return f"{self.id}-{self.version_id}"

    @property
    def version(self) -> tuple[int, ...]:
        """(24, 4), (12,); () for a release without a number (sid)."""
        return tuple(int(part) for part in self.version_id.split(".")) if self.version_id else ()

    @property
    def family(self) -> ModuleType:
        """The package family module of this distribution (deploys/distro/apt.py)."""
        return FAMILIES[self.id]

    def older_than(self, ubuntu: tuple[int, ...], debian: tuple[int, ...]) -> bool:
        """True before the given release of this distribution; a release without a number
        (testing, sid) is newer than every numbered one."""
        limit = ubuntu if self.id == "ubuntu" else debian
        return bool(self.version) and self.version < limit


# The supported releases, by the name the renderer's --os and the test fixtures use.
RELEASES: dict[str, Release] = {
    release.name: release
    for release in (
        Release("ubuntu", "20.04", "focal"),
        Release("ubuntu", "22.04", "jammy"),
        Release("ubuntu", "24.04", "noble"),
        Release("debian", "11", "bullseye"),
        Release("debian", "12", "bookworm"),
        Release("debian", "13", "trixie"),
    )
}


# Supported releases of a distribution that carry no VERSION_ID: Debian's testing and unstable.
ROLLING = {"debian": "testing/unstable"}


def supported(release_id: str, version_id: str) -> bool:
    """Whether os-release's ID and VERSION_ID name a supported release: one in RELEASES,
    or a rolling one (ROLLING)."""
    return f"{release_id}-{version_id}" in RELEASES or (not version_id and release_id in ROLLING)


def supported_text() -> str:
    """The supported releases for a message: "Ubuntu 20.04, 22.04, 24.04, Debian 11, 12, 13
    (and Debian testing/unstable)"."""
    by_id: dict[str, list[str]] = {}
    for each in RELEASES.values():
        by_id.setdefault(each.id, []).append(each.version_id)
    listed = ", ".join(f"{i.capitalize()} {', '.join(v)}" for i, v in by_id.items())
    rolling = ", ".join(f"{i.capitalize()} {what}" for i, what in ROLLING.items())
    return f"{listed} (and {rolling})" if rolling else listed


# The os-release variables a fact may report on its "release" line, by the key it uses.
OS_RELEASE = {"id": "ID", "version": "VERSION_ID", "codename": "VERSION_CODENAME"}


def release_line(keys: tuple[str, ...]) -> str:
    """Shell that prints one line `release <value> ...` of the os-release variables of
    ``keys`` (OS_RELEASE), in that order, one space apart (an empty one keeps its place)."""
    values = " ".join(f"${{{OS_RELEASE[key]}:-}}" for key in keys)
    return f'if [ -r /etc/os-release ]; then . /etc/os-release; fi\necho "release {values}"'


def release_fields(rest: str, keys: tuple[str, ...]) -> dict[str, str]:
    """What release_line(keys) printed after "release ": {key: value}. Split on single
    spaces, so an empty VERSION_ID (Debian testing, sid) does not shift the codename."""
    values = rest.split(" ")
    return {key: values[i].strip() if i < len(values) else "" for i, key in enumerate(keys)}


def release(name: str) -> Release:
    """The supported release named like "ubuntu-24.04"; ValueError for any other."""
    if name not in RELEASES:
        raise ValueError(f"unknown OS release {name!r}: one of {', '.join(RELEASES)}")
    return RELEASES[name]


def host_release(fact: dict, host_name: str) -> Release:
    """The release a host's fact reports ({"id", "version", "codename"}, os-release's ID,
    VERSION_ID, VERSION_CODENAME); an unsupported one stops the run before any change."""
    try:
        return Release.parse(fact["id"], fact["version"], fact.get("codename", ""))
    except ValueError as exc:
        raise OperationError(f"{host_name}: {exc}") from None
