"""The `scheduler` setting checked as kube-scheduler checks its configuration.

`kubeadm config validate` never reads the KubeSchedulerConfiguration, and kube-scheduler
only reads it when it starts: a bad file then stops the scheduler and every pod stays
Pending. So the cluster file check refuses here what kube-scheduler would refuse (unknown
plugins, weights on plugins that do not score, duplicate profile names, out-of-range
numbers) and what would leave pods Pending (a single profile not named default-scheduler,
weights on a plugin the profile disables).

The plugins per Kubernetes minor are kube-scheduler's in-tree registry
(pkg/scheduler/framework/plugins/registry.go, names in .../plugins/names/names.go) minus
those KubeSchedulerConfiguration v1 refuses (pkg/scheduler/apis/config/validation,
invalidPluginsByVersion):
- SelectorSpread: not valid in v1 since v1 exists (1.25; kubernetes/kubernetes#110534),
  code removed in 1.29 (#117720).
- AzureDiskLimits, CinderLimits, EBSLimits, GCEPDLimits: invalid in v1 from 1.31
  (#124500), removed in 1.32 (#124003).
- GangScheduling (#134722) and NodeDeclaredFeatures (#133389): added in 1.35 (alpha).
- PodGroupPodsCount (#137488) and TopologyAware (KEP-5732): added in 1.36 (alpha); they
  score placements (`placementScore`), not nodes, so they take no `score_weights`.
- DeferredPodScheduling (#140000, KEP-5836): added in 1.37 (alpha).
Plugins that score nodes (implement ScorePlugin): ImageLocality, InterPodAffinity,
NodeAffinity, NodeResourcesBalancedAllocation, NodeResourcesFit, PodTopologySpread,
TaintToleration, VolumeBinding; DynamicResources from 1.35 (#134711).
"""

from __future__ import annotations

import re
from typing import Any

from deploys import versions

DEFAULT_SCHEDULER = "default-scheduler"
# Plugins of every supported minor (1.27 and later).
_COMMON = (
    "DefaultBinder",
    "DefaultPreemption",
    "DynamicResources",
    "ImageLocality",
    "InterPodAffinity",
    "NodeAffinity",
    "NodeName",
    "NodePorts",
    "NodeResourcesBalancedAllocation",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "NodeVolumeLimits",
    "PodTopologySpread",
    "PrioritySort",
    "SchedulingGates",
    "TaintToleration",
    "VolumeBinding",
    "VolumeRestrictions",
    "VolumeZone",
)
# (first minor, last minor or None) of the plugins not in every supported minor.
_SPANS = {
    "AzureDiskLimits": (27, 30),
    "CinderLimits": (27, 30),
    "EBSLimits": (27, 30),
    "GCEPDLimits": (27, 30),
    "GangScheduling": (35, None),
    "NodeDeclaredFeatures": (35, None),
    "PodGroupPodsCount": (36, None),
    "TopologyAware": (36, None),
    "DeferredPodScheduling": (37, None),
}
_SCORING = (
    "ImageLocality",
    "InterPodAffinity",
    "NodeAffinity",
    "NodeResourcesBalancedAllocation",
    "NodeResourcesFit",
    "PodTopologySpread",
    "TaintToleration",
    "VolumeBinding",
)
_SCORING_FROM = {"DynamicResources": 35}
_PLUGIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_PROFILE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PROFILE_KEYS = ("scheduler_name", "plugins", "score_weights")
_TOP_KEYS = ("percentage_of_nodes_to_score", "profiles")
_KINDS = ("enabled", "disabled")
# The only in-tree plugins of the extension points a profile cannot do without
# (kube-scheduler's framework refuses a profile without exactly one queue sort plugin and
# at least one bind plugin).
_REQUIRED = {"PrioritySort": "a queue sort plugin", "DefaultBinder": "a bind plugin"}


def plugins(kubernetes_version: str) -> frozenset[str]:
    """The in-tree plugins a KubeSchedulerConfiguration v1 may name in this release."""
    minor = versions.kubernetes_minor(kubernetes_version)
    spans = {
        name
        for name, (first, last) in _SPANS.items()
        if first <= minor and (last is None or minor <= last)
    }
    return frozenset(_COMMON) | spans


def scoring_plugins(kubernetes_version: str) -> frozenset[str]:
    """The plugins of this release that score nodes (may take a score weight)."""
    minor = versions.kubernetes_minor(kubernetes_version)
    later = {name for name, first in _SCORING_FROM.items() if minor >= first}
    return frozenset(_SCORING) | later


def problems(scheduler: Any, kubernetes_version: str) -> list[str]:
    """Everything kube-scheduler of this release would refuse in the `scheduler` setting,
    or that would leave pods Pending; [] when it is good. Each problem names its field."""
    if not isinstance(scheduler, dict):
        return ["expected a mapping"]
    found = [f"unknown key {key!r}" for key in scheduler if key not in _TOP_KEYS]
    percentage = scheduler.get("percentage_of_nodes_to_score", 0)
    if type(percentage) is not int or not 0 <= percentage <= 100:
        found.append(f"percentage_of_nodes_to_score: {percentage!r} is not 0..100")
    profiles = scheduler.get("profiles", [])
    if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
        return [*found, "profiles: expected a list of profiles"]
    names = [profile.get("scheduler_name") for profile in profiles]
    for name in sorted({n for n in names if names.count(n) > 1}, key=str):
        found.append(f"profiles: scheduler_name {name!r} is used by more than one profile")
    if len(profiles) == 1 and names[0] != DEFAULT_SCHEDULER:
        found.append(
            f"profiles: the only profile is named {names[0]!r}: pods that name no scheduler "
            f"ask for {DEFAULT_SCHEDULER!r} and would stay Pending; name it "
            f"{DEFAULT_SCHEDULER!r} or add a profile of that name"
        )
    known, scoring = plugins(kubernetes_version), scoring_plugins(kubernetes_version)
    for index, profile in enumerate(profiles):
        label = f"profiles[{index}]"
        if isinstance(profile.get("scheduler_name"), str):
            label = f"profiles[{index}] ({profile['scheduler_name']})"
        found += [f"{label}: {p}" for p in _profile(profile, known, scoring, kubernetes_version)]
    return found


def _profile(profile: dict, known, scoring, kubernetes_version: str) -> list[str]:
    found = [f"unknown key {key!r}" for key in profile if key not in _PROFILE_KEYS]
    if not _PROFILE_NAME.fullmatch(str(profile.get("scheduler_name", ""))):
        found.append(f"scheduler_name {profile.get('scheduler_name')!r} is not a name")
    plugin_sets = profile.get("plugins", {})
    if not isinstance(plugin_sets, dict):
        return [*found, "plugins: expected {enabled: [...], disabled: [...]}"]
    found += [f"plugins: unknown key {key!r}" for key in plugin_sets if key not in _KINDS]
    lists: dict[str, list[str]] = {}
    for kind in _KINDS:
        names = plugin_sets.get(kind, [])
        wildcard = ("*",) if kind == "disabled" else ()
        if not isinstance(names, list) or not all(
            isinstance(n, str) and (_PLUGIN_NAME.fullmatch(n) or n in wildcard) for n in names
        ):
            found.append(f"plugins.{kind}: expected a list of plugin names")
            names = []
        lists[kind] = names
        found += [
            f"plugins.{kind}: {name!r} is not a kube-scheduler {kubernetes_version} plugin"
            + _hint(name, known)
            for name in names
            if name != "*" and name not in known
        ]
    for name, what in _REQUIRED.items():
        if name in lists["disabled"] or ("*" in lists["disabled"] and name not in lists["enabled"]):
            found.append(
                f"plugins: {name} is disabled, and kube-scheduler does not start without "
                f"{what}: add {name} to plugins.enabled"
            )
    weights = profile.get("score_weights", {})
    if not isinstance(weights, dict):
        return [*found, "score_weights: expected {PluginName: weight 1..100}"]
    enabled, disabled = set(lists["enabled"]), set(lists["disabled"])
    for name, weight in weights.items():
        field = f"score_weights.{name}"
        if type(weight) is not int or not 1 <= weight <= 100:
            found.append(f"{field}: {weight!r} is not a weight 1..100")
        if not isinstance(name, str) or not _PLUGIN_NAME.fullmatch(name):
            found.append(f"{field}: not a plugin name")
        elif name not in known:
            found.append(
                f"{field}: {name!r} is not a kube-scheduler {kubernetes_version} plugin"
                + _hint(name, known)
            )
        elif name not in scoring:
            found.append(
                f"{field}: {name} does not score nodes in Kubernetes {kubernetes_version}, "
                f"so it takes no weight (plugins that score: {', '.join(sorted(scoring))})"
            )
        elif name in disabled or ("*" in disabled and name not in enabled):
            found.append(
                f"{field}: {name} is disabled in this profile (plugins.disabled); a weight "
                "would enable it for scoring only: enable it, or drop the weight"
            )
    return found


def _hint(name: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
