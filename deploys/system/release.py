"""The OS release of a node, as far as OS preparation decides on it."""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED = ("ubuntu", "debian")


@dataclass(frozen=True)
class Release:
    id: str  # "ubuntu" or "debian" (os-release ID)
    version: tuple[int, ...]  # (24, 4), (12,); () for a release without a number (sid)

    @classmethod
    def parse(cls, release_id: str, version_id: str) -> Release:
        """From os-release's ID and VERSION_ID; ValueError for a distribution not supported."""
        if release_id not in SUPPORTED:
            raise ValueError(f"unsupported distribution {release_id!r}: supported are {SUPPORTED}")
        try:
            version = tuple(int(part) for part in version_id.split(".")) if version_id else ()
        except ValueError:
            raise ValueError(f"{release_id} VERSION_ID {version_id!r} is not a number") from None
        return cls(release_id, version)

    def older_than(self, ubuntu: tuple[int, ...], debian: tuple[int, ...]) -> bool:
        """True before the given release of this distribution; a release without a number
        (testing, sid) is newer than every numbered one."""
        limit = ubuntu if self.id == "ubuntu" else debian
        return bool(self.version) and self.version < limit
