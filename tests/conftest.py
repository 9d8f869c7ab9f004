"""Shared pytest wiring: the lab fixtures (tests/lab/fixture.py), on the test lab.

The tests bring up and take down their own lab ("testlab": its own bridge, subnet, node
names, state directory and inventory), never the one a person started with
`python -m tests.lab up`. Selected here, before tests/lab/config.py is first imported.
"""

import os

os.environ["PYINFRA_KUBEADM_LAB"] = "testlab"

pytest_plugins = ["tests.lab.fixture"]
