"""The sandbox image guard: a systemd oneshot after containerd that makes sure the Kubernetes
sandbox (pause) image is in containerd's k8s.io namespace and pulls it again, with retries,
through containerd's registry host configuration (mirrors and their credentials, see
deploys/runtime/registries.py) when image garbage collection or a person removed it.

It runs at boot after containerd (WantedBy=multi-user.target), every CHECK_INTERVAL from a
timer, and whenever the deploy finds the image missing.
"""

from __future__ import annotations

import shlex

from deploys.runtime.config import CERTS_DIR, sandbox_image
from deploys.settings import Settings
from deploys.templating import render

GUARD_SCRIPT = "/usr/local/sbin/containerd-sandbox-image"
GUARD_SERVICE = "containerd-sandbox-image.service"
GUARD_TIMER = "containerd-sandbox-image.timer"
UNIT_DIR = "/etc/systemd/system"
# Pulls per run of the guard and the pause between them (seconds).
PULL_ATTEMPTS = 5
PULL_DELAY = 10
# How often the timer checks again (a systemd time span).
CHECK_INTERVAL = "15min"


def qualified_reference(image: str) -> str:
    """The image name as containerd stores it (and as `ctr` needs it): registry host first,
    Docker Hub's implicit "docker.io" and "library/" made explicit."""
    host, slash, path = image.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        host, path = "docker.io", image
    if host == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return f"{host}/{path}"


def guard_files(settings: Settings) -> dict[str, str]:
    """{remote path: content} of the guard: its script, service and timer."""
    return {
        GUARD_SCRIPT: render(
            "containerd/containerd-sandbox-image.sh.j2",
            service=GUARD_SERVICE,
            timer=GUARD_TIMER,
            image=shlex.quote(qualified_reference(sandbox_image(settings))),
            hosts_dir=shlex.quote(CERTS_DIR),
            attempts=PULL_ATTEMPTS,
            delay=PULL_DELAY,
        ),
        f"{UNIT_DIR}/{GUARD_SERVICE}": render(
            "containerd/containerd-sandbox-image.service.j2", script=GUARD_SCRIPT
        ),
        f"{UNIT_DIR}/{GUARD_TIMER}": render(
            "containerd/containerd-sandbox-image.timer.j2", interval=CHECK_INTERVAL
        ),
    }
