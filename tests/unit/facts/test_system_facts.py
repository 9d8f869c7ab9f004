"""deploys.system.facts: recorded outputs (system.SystemState/*.json, as in pyinfra's own fact
tests) parse to the recorded facts, and the command itself runs under sh."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from deploys.system.facts import FSTAB_SWAP_LINE, MODULES, PACKAGES, UNITS, SystemState

CASES = sorted((Path(__file__).parent / "system.SystemState").glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_recorded_output_parses(path):
    case = json.loads(path.read_text())
    assert SystemState().process(case["output"]) == case["fact"]


def test_no_output_is_the_default():
    assert SystemState().process([]) == SystemState.default()


def test_default_is_a_fresh_dict_each_time():
    first = SystemState.default()
    first["swaps"].append("/swapfile")
    assert SystemState.default()["swaps"] == []


@pytest.mark.parametrize("name", [*MODULES, *PACKAGES, *UNITS, FSTAB_SWAP_LINE])
def test_command_asks_for(name):
    assert name in SystemState().command()


def test_command_is_valid_sh():
    result = subprocess.run(["sh", "-n", "-c", SystemState().command()], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_command_runs_here_and_exits_zero():
    """Whatever this machine is (no systemd, no ufw, no swap...), the command succeeds and
    its output parses: it never fails a host's fact gathering."""
    result = subprocess.run(
        ["sh", "-c", SystemState().command()], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    state = SystemState().process(result.stdout.splitlines())
    assert state["hostname"] == os.uname().nodename
