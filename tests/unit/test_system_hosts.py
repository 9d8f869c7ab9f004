"""/etc/hosts: the managed block."""

from deploys.settings import Node
from deploys.system.hosts import hosts_block

CP = Node("cp1", "10.0.0.11", ("control_plane",))
WORKER = Node("w1", "10.0.0.21", ("worker",))


def test_hosts_block():
    nodes = (CP, WORKER, Node("w6", "fd00::6", ("worker",)))
    assert hosts_block(nodes) == ["10.0.0.11 cp1", "10.0.0.21 w1", "fd00::6 w6"]
