"""The tests' lab never touches the lab a person started: `pytest` (as root) brings up and
takes down "testlab", which shares no name, bridge, address, directory or inventory with
"lab", the one `python -m tests.lab up` starts."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from tests.lab import config

PROBE = (
    "import json; from tests.lab import config as c; print(json.dumps({"
    "'lab': c.LAB, 'bridge': c.BRIDGE, 'network': str(c.NETWORK),"
    " 'state': str(c.STATE_DIR), 'inventory': str(c.INVENTORY_PATH),"
    " 'nodes': [c.node_name(i) for i in range(1, 10)]}))"
)


def lab_config(selection: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != config.LAB_VARIABLE}
    if selection is not None:
        env[config.LAB_VARIABLE] = selection
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=config.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def labs() -> dict[str, dict]:
    return {
        "person": json.loads(lab_config(None).stdout),
        "tests": json.loads(lab_config("testlab").stdout),
    }


@pytest.fixture(scope="module")
def every_lab() -> list[dict]:
    return [json.loads(lab_config(name).stdout) for name in config.LABS]


def test_the_test_suite_runs_on_a_test_lab():
    assert config.LAB in config.TEST_LABS
    assert os.environ.get(config.TEST_LAB_VARIABLE, "testlab") == config.LAB


def test_the_persons_lab_is_not_a_test_lab():
    assert "lab" not in config.TEST_LABS
    assert "testlab" in config.TEST_LABS


@pytest.mark.parametrize("field", ["lab", "bridge", "state", "inventory"])
def test_no_two_labs_share(every_lab, field):
    values = [lab[field] for lab in every_lab]
    assert len(set(values)) == len(values) == len(config.LABS)


def test_no_two_labs_networks_overlap(every_lab):
    networks = [ipaddress.ip_network(lab["network"]) for lab in every_lab]
    for i, one in enumerate(networks):
        assert not any(one.overlaps(other) for other in networks[i + 1 :]), one


def test_no_node_name_is_shared_by_two_labs(every_lab):
    names = [name for lab in every_lab for name in lab["nodes"]]
    assert len(set(names)) == len(names)
    assert all(len(f"vb-{name}") <= 15 for name in names)


def test_without_a_selection_the_lab_is_the_persons(labs):
    assert labs["person"]["lab"] == "lab"
    assert labs["person"]["inventory"].endswith("inventory/lab.yaml")


def test_an_unknown_lab_is_refused():
    result = lab_config("prod")
    assert result.returncode != 0
    assert "PYINFRA_KUBEADM_LAB='prod'" in result.stderr


def test_the_benchmark_runs_on_the_test_lab():
    """`python -m tests.lab.benchmark` loads the package tests.lab first, then selects the
    test lab: the package must not have loaded tests/lab/config.py by then."""
    env = {k: v for k, v in os.environ.items() if k != config.LAB_VARIABLE}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tests.lab.benchmark; from tests.lab import config; print(config.LAB)",
        ],
        cwd=config.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "testlab", result.stderr
