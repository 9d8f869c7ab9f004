"""pytest fixtures for tests against the lab; such tests are marked ``@pytest.mark.lab``.

Load with ``pytest_plugins = ["tests.lab.fixture"]`` in tests/conftest.py.

The lab is brought up once per test session (one node per suite: containerd 1.6, 1.7
and 2.x) and taken down at its end; a lab already up on this machine is reshaped to this
one, and taken down as well. Where it cannot run (not root, no systemd-nspawn)
its tests are skipped, except under CI=true, where that is a failure: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.lab import config, registry
from tests.lab.api import Lab, LabUnavailable

LAB_SUITES = ("bookworm", "trixie", "sid")
LAB_NODES = tuple(config.node_name(i) for i in range(1, len(LAB_SUITES) + 1))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The running test lab: nodes testlab1 (bookworm), testlab2 (trixie), testlab3 (sid)."""
    try:
        lab = Lab.up(nodes=len(LAB_NODES), suites=LAB_SUITES)
    except LabUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the lab tests, but {exc}", pytrace=False)
        pytest.skip(str(exc))
    except Exception:
        Lab.load().down()  # leave nothing of a start that failed
        raise
    yield lab
    lab.down()


@dataclass(frozen=True)
class MirroredImage:
    registry: str  # address:port on the lab bridge, plain HTTP
    repository: str
    tag: str
    digest: str  # of the manifest

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


@pytest.fixture(scope="session")
def pause_image(lab: Lab) -> MirroredImage:
    """The lab's pause image, pushed to the registry the lab runs on its bridge."""
    address = registry.start_registry(lab)
    repository, tag = "google_containers/pause", "3.10"
    digest = registry.push_image(address, repository, tag, registry.build_pause_image())
    return MirroredImage(address, repository, tag, digest)
