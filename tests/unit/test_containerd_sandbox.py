"""The sandbox image guard (deploys/runtime/sandbox.py): its script pulls the image kubeadm
expects, by the name containerd stores, through containerd's registry host files."""

import shlex
import subprocess

import pytest

from deploys.runtime import sandbox
from deploys.settings import Settings

SCRIPT = sandbox.GUARD_SCRIPT
SERVICE = f"/etc/systemd/system/{sandbox.GUARD_SERVICE}"
TIMER = f"/etc/systemd/system/{sandbox.GUARD_TIMER}"


@pytest.mark.parametrize(
    ("image", "reference"),
    [
        ("registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10.1"),
        ("10.0.0.5:5000/k8s/pause:3.10", "10.0.0.5:5000/k8s/pause:3.10"),
        ("localhost/pause:3.9", "localhost/pause:3.9"),
        ("pause:3.9", "docker.io/library/pause:3.9"),
        ("docker.io/pause:3.9", "docker.io/library/pause:3.9"),
        ("mirrors/pause:3.9", "docker.io/mirrors/pause:3.9"),
        ("docker.io/mirrors/google/pause:3.9", "docker.io/mirrors/google/pause:3.9"),
    ],
)
def test_qualified_reference(image, reference):
    assert sandbox.qualified_reference(image) == reference


NAMES = ("image", "hosts_dir", "attempts", "delay")


def script_variables(text: str) -> dict[str, str]:
    """The script's settings as sh itself reads them: its lines before the first function,
    then the variables printed."""
    head = text[: text.index("present() {")]
    show = "; ".join(f'printf "%s\\0" "${name}"' for name in NAMES)
    out = subprocess.run(["sh", "-c", head + show], capture_output=True, text=True, check=True)
    return dict(zip(NAMES, out.stdout.split("\0")[:-1], strict=True))


def test_guard_script_pulls_the_sandbox_image_through_the_hosts_dir():
    text = sandbox.guard_files(Settings(kubernetes_version="1.35.9"))[SCRIPT]
    assert text.startswith("#!/bin/sh\n")
    assert script_variables(text) == {
        "image": "registry.k8s.io/pause:3.10.1",
        "hosts_dir": "/etc/containerd/certs.d",
        "attempts": "5",
        "delay": "10",
    }
    assert 'ctr -n k8s.io images pull --hosts-dir "$hosts_dir" "$image"' in text
    assert subprocess.run(["sh", "-n", "-c", text]).returncode == 0


def test_guard_script_quotes_whatever_the_image_is(monkeypatch):
    hostile = "evil.example/x';touch /tmp/pwned;'/pause"
    monkeypatch.setattr(sandbox, "sandbox_image", lambda settings: hostile + ":1")
    text = sandbox.guard_files(Settings())[SCRIPT]
    assert script_variables(text)["image"] == hostile + ":1"
    assert f"image={shlex.quote(hostile + ':1')}" in text


def test_service_runs_after_containerd_at_boot():
    unit = sandbox.guard_files(Settings())[SERVICE]
    assert "After=containerd.service\nRequires=containerd.service\n" in unit
    assert "Type=oneshot\n" in unit
    assert f"ExecStart={SCRIPT}\n" in unit
    assert "WantedBy=multi-user.target\n" in unit


def test_timer_checks_again_periodically():
    timer = sandbox.guard_files(Settings())[TIMER]
    assert "OnBootSec=15min\nOnUnitActiveSec=15min\n" in timer
    assert "WantedBy=timers.target\n" in timer


# A test double of `ctr`: `images ls -q` lists $STORE; `images pull` is logged to $PULLS and
# succeeds, adding the image to $STORE, from the $WORKS_FROM-th pull on.
FAKE_CTR = """#!/bin/sh
case "$*" in
  *"images ls -q"*) cat "$STORE" ;;
  *"images pull"*)
    echo "$*" >> "$PULLS"
    [ "$(wc -l < "$PULLS")" -ge "$WORKS_FROM" ] || exit 1
    for last; do :; done
    echo "$last" >> "$STORE" ;;
esac
"""


@pytest.fixture
def guard(tmp_path, monkeypatch):
    """Runs the guard script against the fake ctr, without pauses between pulls."""
    monkeypatch.setattr(sandbox, "PULL_DELAY", 0)
    script = tmp_path / "guard"
    script.write_text(sandbox.guard_files(Settings(kubernetes_version="1.35.9"))[SCRIPT])
    (tmp_path / "ctr").write_text(FAKE_CTR)
    (tmp_path / "ctr").chmod(0o755)
    store, pulls = tmp_path / "store", tmp_path / "pulls"
    pulls.touch()

    def run(images: list[str], works_from: int):
        store.write_text("".join(f"{image}\n" for image in images))
        env = {
            "PATH": f"{tmp_path}:/usr/bin:/bin",
            "STORE": str(store),
            "PULLS": str(pulls),
            "WORKS_FROM": str(works_from),
        }
        result = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=env)
        return result, pulls.read_text().splitlines(), store.read_text().splitlines()

    return run


def test_guard_does_nothing_when_the_image_is_there(guard):
    result, pulls, _ = guard(["registry.k8s.io/pause:3.10.1"], works_from=1)
    assert result.returncode == 0
    assert pulls == []


def test_guard_retries_until_the_image_is_back(guard):
    result, pulls, store = guard(["registry.k8s.io/pause:3.10"], works_from=3)
    assert result.returncode == 0
    assert (
        pulls
        == [
            "-n k8s.io images pull --hosts-dir /etc/containerd/certs.d registry.k8s.io/pause:3.10.1"
        ]
        * 3
    )
    assert store[-1] == "registry.k8s.io/pause:3.10.1"


def test_guard_gives_up_after_its_attempts_and_fails(guard):
    result, pulls, _ = guard([], works_from=99)
    assert result.returncode == 1
    assert len(pulls) == sandbox.PULL_ATTEMPTS
    assert "still missing after 5 pulls" in result.stderr
