"""The host's own apt sources: which Debian mirror the nodes use and which hosts apt may reach.

Nothing here names a mirror: everything is read from /etc/apt on the machine running the lab,
in both formats apt reads (one-line ``*.list`` and deb822 ``*.sources``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.lab import config

_ONE_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)(?P<components>.*)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]

    @property
    def endpoint(self) -> str | None:
        """``host:port`` apt connects to for this source; None for non-network sources."""
        parts = urlsplit(self.uri)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        return f"{parts.hostname}:{parts.port or _DEFAULT_PORTS[parts.scheme]}"


@dataclass(frozen=True)
class DebianMirrors:
    archive: AptSource
    security: AptSource | None


def parse_one_line(text: str) -> list[AptSource]:
    """The binary (``deb``) sources of a one-line format file."""
    sources = []
    for line in text.splitlines():
        match = _ONE_LINE.match(line.split("#", 1)[0].strip())
        if match:
            sources.append(
                AptSource(
                    uri=match["uri"],
                    suites=(match["suite"],),
                    components=tuple(match["components"].split()),
                )
            )
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """The enabled binary (``deb``) sources of a deb822 ``.sources`` file."""
    sources = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        name = None
        for line in paragraph.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and name:
                fields[name] += " " + line.strip()
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                fields[name] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(
                    uri=uri,
                    suites=tuple(fields.get("suites", "").split()),
                    components=tuple(fields.get("components", "").split()),
                )
            )
    return sources


def host_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every binary source apt on this machine reads, in apt's file order."""
    sources = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text())
    for path in sorted((apt_dir / "sources.list.d").glob("*")):
        if path.suffix == ".list":
            sources += parse_one_line(path.read_text())
        elif path.suffix == ".sources":
            sources += parse_deb822(path.read_text())
    return sources


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    """The host's Debian codename (``VERSION_CODENAME``)."""
    for line in os_release.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    raise RuntimeError(f"{os_release} has no VERSION_CODENAME")


def debian_mirrors(sources: list[AptSource], codename: str) -> DebianMirrors:
    """The host's Debian archive (the source of its own suite) and security archive."""

    def serving(suite: str) -> AptSource | None:
        return next((s for s in sources if suite in s.suites and s.endpoint), None)

    archive = serving(codename)
    if archive is None:
        raise RuntimeError(f"no apt source on this machine serves its own suite {codename!r}")
    return DebianMirrors(archive=archive, security=serving(f"{codename}-security"))


def allowed_endpoints(sources: list[AptSource]) -> list[str]:
    """``host:port`` of every network source: all the apt proxy may connect to."""
    return sorted({s.endpoint for s in sources if s.endpoint})


def node_sources_list(suite: str, mirrors: DebianMirrors) -> str:
    """A node's /etc/apt/sources.list for ``suite`` on the host's mirrors."""
    components = " ".join(mirrors.archive.components or ("main",))
    lines = [f"deb {mirrors.archive.uri} {suite} {components}"]
    if suite in config.STABLE_SUITES:
        lines.append(f"deb {mirrors.archive.uri} {suite}-updates {components}")
        if mirrors.security:
            lines.append(f"deb {mirrors.security.uri} {suite}-security {components}")
    return "\n".join(lines) + "\n"
