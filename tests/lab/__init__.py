"""A lab of real systemd-booted Debian nodes (systemd-nspawn) for integration tests.

python -m tests.lab up [--nodes N] [--suite SUITE ...]
python -m tests.lab status
python -m tests.lab restart NAME
python -m tests.lab down
"""

from tests.lab.api import Lab, LabUnavailable, Node

__all__ = ["Lab", "LabUnavailable", "Node"]
