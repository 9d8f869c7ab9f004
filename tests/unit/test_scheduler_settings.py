"""The `scheduler` setting refused up front where kube-scheduler would refuse it at start
(and every pod would stay Pending), per Kubernetes release."""

import pytest

from deploys import versions
from deploys.kubernetes import scheduler
from deploys.settings import ClusterError, parse_cluster

HOSTS = [{"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]}]


def check(value, version="1.35.9"):
    """The cluster file check of a `scheduler` setting; its refusal text, or ""."""
    doc = {"hosts": HOSTS, "settings": {"kubernetes_version": version, "scheduler": value}}
    try:
        parse_cluster(doc, "site.yaml")
    except ClusterError as exc:
        return str(exc)
    return ""


def profile(name="default-scheduler", **fields):
    return {"profiles": [{"scheduler_name": name, **fields}]}


GOOD = [
    {},
    {"percentage_of_nodes_to_score": 0},
    {"percentage_of_nodes_to_score": 100},
    profile(),
    profile(score_weights={"NodeResourcesFit": 1, "ImageLocality": 100}),
    profile(plugins={"disabled": ["ImageLocality"]}, score_weights={"TaintToleration": 3}),
    profile(
        plugins={"enabled": ["PrioritySort", "DefaultBinder", "NodeAffinity"], "disabled": ["*"]},
        score_weights={"NodeAffinity": 5},
    ),
    {
        "profiles": [
            {"scheduler_name": "default-scheduler"},
            {"scheduler_name": "bin-pack", "score_weights": {"NodeResourcesFit": 10}},
        ]
    },
]


@pytest.mark.parametrize("value", GOOD)
def test_good_scheduler_settings_are_accepted(value):
    assert check(value) == ""


BAD = {
    "duplicate profile names": (
        {"profiles": [{"scheduler_name": "default-scheduler"}] * 2},
        "scheduler_name 'default-scheduler' is used by more than one profile",
    ),
    "single profile not default-scheduler": (
        profile("spread"),
        "the only profile is named 'spread'",
    ),
    "unknown enabled plugin": (
        profile(plugins={"enabled": ["NodeResourceFit"]}),
        "plugins.enabled: 'NodeResourceFit' is not a kube-scheduler 1.35.9 plugin "
        "(did you mean 'NodeResourcesFit'?)",
    ),
    "unknown disabled plugin": (
        profile(plugins={"disabled": ["SelectorSpread"]}),
        "plugins.disabled: 'SelectorSpread' is not a kube-scheduler 1.35.9 plugin",
    ),
    "wildcard enabled": (
        profile(plugins={"enabled": ["*"]}),
        "plugins.enabled: expected a list of plugin names",
    ),
    "unknown weighted plugin": (
        profile(score_weights={"Spread": 2}),
        "score_weights.Spread: 'Spread' is not a kube-scheduler 1.35.9 plugin",
    ),
    "weight on a plugin that does not score": (
        profile(score_weights={"NodePorts": 2}),
        "score_weights.NodePorts: NodePorts does not score nodes in Kubernetes 1.35.9",
    ),
    "weight on a disabled plugin": (
        profile(plugins={"disabled": ["ImageLocality"]}, score_weights={"ImageLocality": 2}),
        "score_weights.ImageLocality: ImageLocality is disabled in this profile",
    ),
    "weight on a plugin disabled by *": (
        profile(
            plugins={"enabled": ["PrioritySort", "DefaultBinder"], "disabled": ["*"]},
            score_weights={"ImageLocality": 2},
        ),
        "score_weights.ImageLocality: ImageLocality is disabled in this profile",
    ),
    "no queue sort plugin left": (
        profile(plugins={"disabled": ["PrioritySort"]}),
        "PrioritySort is disabled, and kube-scheduler does not start without a queue sort",
    ),
    "no bind plugin left": (
        profile(plugins={"enabled": ["PrioritySort"], "disabled": ["*"]}),
        "DefaultBinder is disabled, and kube-scheduler does not start without a bind plugin",
    ),
    "weight 0": (profile(score_weights={"ImageLocality": 0}), "0 is not a weight 1..100"),
    "weight 101": (profile(score_weights={"ImageLocality": 101}), "101 is not a weight 1..100"),
    "weight true": (profile(score_weights={"ImageLocality": True}), "True is not a weight"),
    "weight text": (profile(score_weights={"ImageLocality": "5"}), "'5' is not a weight"),
    "percentage -1": ({"percentage_of_nodes_to_score": -1}, "-1 is not 0..100"),
    "percentage 101": ({"percentage_of_nodes_to_score": 101}, "101 is not 0..100"),
    "percentage float": ({"percentage_of_nodes_to_score": 50.0}, "50.0 is not 0..100"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_scheduler_settings_are_refused_naming_the_field(case):
    value, message = BAD[case]
    refusal = check(value)
    assert message in refusal
    assert refusal.startswith("site.yaml: settings: scheduler: ")


def test_every_problem_of_the_scheduler_setting_in_one_report():
    refusal = check(
        {
            "percentage_of_nodes_to_score": 500,
            "profiles": [
                {"scheduler_name": "a", "score_weights": {"NodePorts": 2}},
                {"scheduler_name": "a", "plugins": {"enabled": ["Nope"]}},
            ],
        }
    )
    assert len(refusal.splitlines()) == 4, refusal


@pytest.mark.parametrize(
    ("plugin", "first", "last"),
    [
        ("EBSLimits", "1.27.0", "1.30.14"),
        ("AzureDiskLimits", "1.27.0", "1.30.14"),
        ("GangScheduling", "1.35.0", "1.37.0"),
        ("NodeDeclaredFeatures", "1.35.0", "1.37.0"),
        ("PodGroupPodsCount", "1.36.0", "1.37.0"),
        ("TopologyAware", "1.36.0", "1.37.0"),
        ("DeferredPodScheduling", "1.37.0", "1.37.0"),
    ],
)
def test_plugins_exist_only_in_their_releases(plugin, first, last):
    minors = versions.SUPPORTED_MINORS
    for minor in minors:
        inside = versions.kubernetes_minor(first) <= minor <= versions.kubernetes_minor(last)
        assert (plugin in scheduler.plugins(f"1.{minor}.0")) is inside, minor


def test_an_unknown_plugin_of_an_older_release_is_named_with_that_release():
    refusal = check(profile(plugins={"enabled": ["GangScheduling"]}), version="1.34.1")
    assert "'GangScheduling' is not a kube-scheduler 1.34.1 plugin" in refusal
    assert check(profile(plugins={"enabled": ["GangScheduling"]}), version="1.35.0") == ""


@pytest.mark.parametrize(("version", "scores"), [("1.34.1", False), ("1.35.0", True)])
def test_dynamic_resources_scores_from_1_35(version, scores):
    assert ("DynamicResources" in scheduler.scoring_plugins(version)) is scores


def test_placement_score_plugins_take_no_node_score_weight():
    refusal = check(profile(score_weights={"PodGroupPodsCount": 5}), version="1.36.0")
    assert "PodGroupPodsCount does not score nodes" in refusal


def test_every_scoring_plugin_is_a_plugin_of_its_release():
    for minor in versions.SUPPORTED_MINORS:
        version = f"1.{minor}.0"
        assert scheduler.scoring_plugins(version) <= scheduler.plugins(version)
