"""The concerns, in the order a run converges them. Each is a package with the same face:

    converge()              the @deploy that converges the node (reads its own facts)
    rendered_files(ctx)     {remote path: content} of every whole file converge() writes on
                            ctx.node, for the offline renderer and the tests that prove the
                            deploy writes exactly that (tests/deploy/test_rendered.py)

The entry files (deploys/node.py, deploys/cluster.py) and the renderer (deploys/render.py)
iterate these tuples; a new concern is a package with that face and one entry here.
"""

from deploys import addons, kubernetes, kuboard, loadbalancer, runtime, system

# What a node needs before Kubernetes: deploys/node.py.
NODE = (system, runtime)
# The whole cluster: deploys/cluster.py and the renderer. The Kuboard server (on the host
# with the role `kuboard`, if any) is up before the add-ons import its agent. The API load
# balancer comes before Kubernetes: init and joins go through the endpoint it serves.
CLUSTER = (*NODE, kuboard, loadbalancer, kubernetes, addons)
