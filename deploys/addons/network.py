"""The pod network plugin (CNI) seam. The cluster has one network plugin, PLUGIN, and the
rest of the project knows it only through this interface, which a plugin module provides:

    NAME                         "flannel", in messages and the summary
    NAMESPACE, DAEMONSET         readiness: a ready pod of DAEMONSET in NAMESPACE on every node
    ports(node, settings)        (first, last, protocol) of the ports every node opens for it
                                 (deploys/system/firewall.py)
    check_settings(settings)     (setting, problem) for each of its settings to refuse
                                 (deploys/settings.py, before any host is touched)
    summary(settings)            one line for the summary at the end of a run
    CONFIG_MAP                   its ConfigMap in NAMESPACE, read from the running cluster
    live_configuration(data)     that ConfigMap's data -> its running configuration
    live_refusals(live, settings) (setting, running, wanted, why) a live network cannot
                                 change (deploys/kubernetes/reconfigure.py refuses them)
    rendered_files(ctx)          {remote path: content} it writes (the offline renderer)
    converge(ctx)                the @deploy that installs it, on the first control plane

Another plugin is one module with these names and its settings in deploys/settings.py
(and, once there are two, a setting that chooses between them here).
"""

from deploys.addons import flannel

# What every plugin module provides (above).
INTERFACE = (
    "NAME",
    "NAMESPACE",
    "DAEMONSET",
    "ports",
    "check_settings",
    "summary",
    "CONFIG_MAP",
    "live_configuration",
    "live_refusals",
    "rendered_files",
    "converge",
)
PLUGIN = flannel
