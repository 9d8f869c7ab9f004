"""deploys.runtime.facts: recorded outputs (facts/containerd.ContainerdState/*.json, as in
pyinfra's own fact tests, and the real `containerd config dump` of containerd 1.6.20 in
facts/containerd/) parse to the fact, and the command itself runs under sh."""

import json
import subprocess
from pathlib import Path

import pytest

from deploys.runtime import config, verify
from deploys.runtime.facts import APPLIED_STAMP, PACKAGES, UNITS, ContainerdState
from deploys.settings import Settings

FACTS = Path(__file__).parent / "facts"
CASES = sorted((FACTS / "containerd.ContainerdState").glob("*.json"))
DATA = FACTS / "containerd"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_recorded_output_parses(path):
    case = json.loads(path.read_text())
    assert ContainerdState().process(case["output"]) == case["fact"]


def converged_debian_12_output() -> list[str]:
    """What the command prints on a converged Debian 12 node: containerd 1.6.20's real
    config dump and `ctr plugins ls` output, each line with its prefix."""
    return [
        "release debian 12 bookworm",
        "arch amd64",
        "package hi  containerd 1.6.20~ds1-1+deb12u3",
        "version containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3",
        "applied yes",
        "unit Id=containerd.service",
        "unit ActiveState=active",
        "unit UnitFileState=enabled",
        "unit ",
        "unit Id=containerd-sandbox-image.service",
        "unit ActiveState=inactive",
        "unit UnitFileState=enabled",
        "unit ",
        "unit Id=containerd-sandbox-image.timer",
        "unit ActiveState=active",
        "unit UnitFileState=enabled",
        *(
            f"dump {line}"
            for line in (DATA / "containerd-1.6.20-wanted.dump").read_text().splitlines()
        ),
        *(f"plugin {line}" for line in (DATA / "ctr-plugins-1.6.txt").read_text().splitlines()),
        "image registry.k8s.io/pause:3.10.1",
        "image sha256:873ed75102791e5b0b8a7fcd41606c92fcec98d56d05ead4ac5131650004c136",
    ]


def test_converged_debian_12_node():
    state = ContainerdState().process(converged_debian_12_output())
    assert state["packages"] == {"containerd": {"version": "1.6.20~ds1-1+deb12u3", "held": True}}
    assert state["applied"] is True
    assert state["units"] == {
        "containerd.service": {"active": True, "enabled": True},
        "containerd-sandbox-image.service": {"active": False, "enabled": True},
        "containerd-sandbox-image.timer": {"active": True, "enabled": True},
    }
    assert state["dump_error"] == ""
    assert state["dump"]["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == (
        "registry.k8s.io/pause:3.10.1"
    )
    assert state["plugins"]["io.containerd.grpc.v1.cri"] == "ok"
    assert state["images"][0] == "registry.k8s.io/pause:3.10.1"
    wanted = config.config(Settings(kubernetes_version="1.35.9"), state["version"])
    assert verify.config_problems(state["dump"], wanted, state["plugins"]) == []


def test_a_dump_that_is_not_toml_is_reported_not_raised():
    state = ContainerdState().process(["dump version = 2", "dump [plugins", "dump x = ]"])
    assert state["dump"] is None
    assert state["dump_error"].startswith("not TOML: ")


@pytest.mark.parametrize(
    "line, release",
    [
        ("release debian 12 bookworm", {"id": "debian", "version": "12", "codename": "bookworm"}),
        # Debian testing and sid have no VERSION_ID: the codename must not take its place.
        ("release debian  forky", {"id": "debian", "version": "", "codename": "forky"}),
        ("release ubuntu 24.04 ", {"id": "ubuntu", "version": "24.04", "codename": ""}),
    ],
)
def test_release_fields_keep_their_places(line, release):
    assert ContainerdState().process([line])["release"] == release


def test_no_output_is_the_default():
    assert ContainerdState().process([]) == ContainerdState.default()


def test_default_is_a_fresh_dict_each_time():
    first = ContainerdState.default()
    first["images"].append("x")
    assert ContainerdState.default()["images"] == []


@pytest.mark.parametrize(
    "name",
    [*PACKAGES, *UNITS, APPLIED_STAMP, config.CONFIG_TOML, config.CERTS_DIR, "config dump"],
)
def test_command_asks_for(name):
    assert name in ContainerdState().command()


def test_command_is_valid_sh():
    result = subprocess.run(["sh", "-n", "-c", ContainerdState().command()], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_command_runs_here_and_exits_zero():
    """Whatever this machine is (no containerd, no systemd...), the command succeeds and its
    output parses: it never fails a host's fact gathering."""
    result = subprocess.run(
        ["sh", "-c", ContainerdState().command()], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    state = ContainerdState().process(result.stdout.splitlines())
    assert state["release"]["id"]
