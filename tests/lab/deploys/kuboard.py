"""Lab entry point: the Kuboard server's host and the agent's fetch, no further.

    CLUSTER=<cluster file> pyinfra -y inventory.py tests/lab/deploys/kuboard.py

The same operations as deploys/cluster.py for the host with the role `kuboard` (OS
preparation, containerd, the Kuboard server), and on the first control plane OS
preparation and the Kuboard agent's fetch (its config and the fetched manifest), not the
apply: the lab runs no API server (its rehearsal applies against a stand-in).
"""

from pyinfra import host

from deploys import kuboard, runtime, system
from deploys.addons import kuboard as agent
from deploys.context import NodeContext

system.converge()
ctx = NodeContext.of(host)
if ctx.node.is_kuboard:
    runtime.converge()
    kuboard.converge()
settings = agent.agent_settings(ctx) if ctx.is_first_control_plane else None
if settings:
    from pyinfra.operations import files

    from deploys.addons.kubectl import ADDONS_DIR

    files.directory(name="add-ons: create manifest directory", path=ADDONS_DIR, mode="700")
    agent.fetch_agent(settings)
