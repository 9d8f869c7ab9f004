"""Shared pytest wiring: the lab fixtures (tests/lab/fixture.py), on the test lab.

The tests bring up and take down their own lab ("testlab": its own bridge, subnet, node
names, state directory and inventory), never the one a person started with
`python -m tests.lab up`. Selected here, before tests/lab/config.py is first imported.
PYINFRA_KUBEADM_TEST_LAB picks one of the spare test labs (testlab-b..e, see
tests/lab/config.py) so that two checkouts can run the lab suite at once.
"""

import os

TEST_LAB = os.environ.get("PYINFRA_KUBEADM_TEST_LAB", "testlab")
if not TEST_LAB.startswith("testlab"):
    raise SystemExit(f"PYINFRA_KUBEADM_TEST_LAB={TEST_LAB!r}: the tests run on a test lab only")
os.environ["PYINFRA_KUBEADM_LAB"] = TEST_LAB

pytest_plugins = ["tests.lab.fixture"]
