"""The check of what containerd loaded (deploys/runtime/verify.py) on `containerd config
dump` output: real dumps of containerd 1.6.20 (Debian 12's, run on the files in
tests/unit/facts/containerd/) and a containerd 2.x dump written from containerd's
documented 2.x layout (docs/cri/config.md, "Full configuration")."""

from pathlib import Path

import pytest

from deploys.runtime import config, verify
from deploys.runtime.toml_text import loads
from deploys.settings import Settings

DATA = Path(__file__).parent / "facts" / "containerd"
SETTINGS = Settings(kubernetes_version="1.35.9")
V2 = config.config(SETTINGS, "1.6.20")
V3 = config.config(SETTINGS, "2.2.1")
PLUGINS_1 = verify.parse_plugins((DATA / "ctr-plugins-1.6.txt").read_text())
PLUGINS_2 = verify.parse_plugins((DATA / "ctr-plugins-2.x.txt").read_text())


def dump(name: str) -> dict:
    return loads((DATA / name).read_text())


def test_containerd_1_6_loaded_the_wanted_configuration():
    assert verify.config_problems(dump("containerd-1.6.20-wanted.dump"), V2, PLUGINS_1) == []


def test_containerd_2_loaded_the_wanted_configuration():
    assert verify.config_problems(dump("containerd-2.x-wanted.dump"), V3, PLUGINS_2) == []


def test_drifted_configuration_names_each_key():
    problems = verify.config_problems(dump("containerd-1.6.20-drifted.dump"), V2, PLUGINS_1)
    assert problems == [
        'plugins."io.containerd.grpc.v1.cri".sandbox_image = "registry.k8s.io/pause:3.6",'
        ' wanted "registry.k8s.io/pause:3.10.1"',
        'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup'
        " = false, wanted true",
    ]


def test_docker_packages_default_config_has_the_cri_disabled():
    problems = verify.config_problems(dump("containerd.io-default.dump"), V2)
    assert "disabled_plugins disables the CRI plugin io.containerd.grpc.v1.cri" in problems
    assert any("SystemdCgroup is missing" in problem for problem in problems)


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (
            (
                "plugins",
                "io.containerd.cri.v1.runtime",
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ),
            False,
            "SystemdCgroup = false, wanted true",
        ),
        (
            ("plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"),
            "docker.io/library/pause:3.6",
            'pinned_images.sandbox = "docker.io/library/pause:3.6"',
        ),
        (
            ("plugins", "io.containerd.cri.v1.images", "registry", "config_path"),
            "",
            'registry.config_path = "", wanted "/etc/containerd/certs.d"',
        ),
        (
            ("plugins", "io.containerd.cri.v1.runtime", "containerd", "default_runtime_name"),
            "crun",
            'default_runtime_name = "crun", wanted "runc"',
        ),
    ],
)
def test_containerd_2_drift_names_the_key(path, value, problem):
    loaded = dump("containerd-2.x-wanted.dump")
    table = loaded
    for part in path[:-1]:
        table = table[part]
    table[path[-1]] = value
    (found,) = verify.config_problems(loaded, V3, PLUGINS_2)
    assert problem in found


@pytest.mark.parametrize("disabled", ["cri", "io.containerd.grpc.v1.cri", "images", "runtime"])
def test_disabling_any_cri_plugin_is_a_problem(disabled):
    loaded = dump("containerd-2.x-wanted.dump")
    loaded["disabled_plugins"] = [disabled]
    (problem,) = verify.config_problems(loaded, V3, PLUGINS_2)
    assert problem.startswith("disabled_plugins disables the CRI plugin")


@pytest.mark.parametrize(
    ("plugin", "status", "problem"),
    [
        ("io.containerd.grpc.v1.cri", "error", "io.containerd.grpc.v1.cri is error"),
        ("io.containerd.cri.v1.images", None, "io.containerd.cri.v1.images is not loaded"),
    ],
)
def test_cri_plugins_must_have_loaded_in_the_daemon(plugin, status, problem):
    plugins = dict(PLUGINS_2)
    if status is None:
        del plugins[plugin]
    else:
        plugins[plugin] = status
    (found,) = verify.config_problems(dump("containerd-2.x-wanted.dump"), V3, plugins)
    assert problem in found


def test_no_daemon_means_no_cri():
    problems = verify.config_problems(dump("containerd-1.6.20-wanted.dump"), V2, {})
    assert problems == [
        "the CRI plugin io.containerd.grpc.v1.cri is not loaded in the running containerd"
    ]


def test_a_1_x_dump_for_a_2_x_node_is_a_format_problem():
    assert verify.config_problems(dump("containerd-1.6.20-wanted.dump"), V3) == [
        "version = 2, wanted 3 (the config.toml format)"
    ]


@pytest.mark.parametrize("empty", [None, {}])
def test_no_dump_is_a_problem(empty):
    assert verify.config_problems(empty, V2) == ["`containerd config dump` gave no configuration"]


def test_unexpected_types_are_shown_not_crashed_on():
    loaded = dump("containerd-1.6.20-wanted.dump")
    loaded["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] = {"a": 1.5}
    (problem,) = verify.config_problems(loaded, V2)
    assert "sandbox_image = {'a': 1.5}" in problem


@pytest.mark.parametrize(
    ("text", "plugins"),
    [
        ((DATA / "ctr-plugins-1.6.txt").read_text(), {"io.containerd.grpc.v1.cri": "ok"}),
        ("TYPE ID PLATFORMS STATUS\n", {}),
        ("junk\n\nio.containerd.grpc.v1 cri - error\n", {"io.containerd.grpc.v1.cri": "error"}),
    ],
)
def test_parse_plugins(text, plugins):
    parsed = verify.parse_plugins(text)
    assert {key: parsed[key] for key in plugins} == plugins
    assert "TYPE.ID" not in parsed


def test_node_problems_from_what_a_node_prints():
    """The entry point for tests on real nodes: the raw outputs, as read over SSH."""
    version = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
    plugins = (DATA / "ctr-plugins-1.6.txt").read_text()
    wanted = (DATA / "containerd-1.6.20-wanted.dump").read_text()
    drifted = (DATA / "containerd-1.6.20-drifted.dump").read_text()
    assert verify.node_problems(SETTINGS, version, wanted, plugins) == []
    assert len(verify.node_problems(SETTINGS, version, drifted)) == 2
    (problem,) = verify.node_problems(SETTINGS, version, "containerd: failed to load TOML")
    assert problem.startswith("`containerd config dump` printed no TOML: ")


@pytest.mark.parametrize(
    ("containerd", "image"),
    [("1.6.20", "registry.k8s.io/pause:3.10.1"), ("2.1.4", "registry.k8s.io/pause:3.10.1")],
)
def test_loaded_sandbox_image_at_the_key_of_the_config_version(containerd, image):
    """The one reading of the sandbox image from a parsed dump, for both config versions
    (the bootstrap's check before init and join uses it)."""
    assert verify.loaded_sandbox_image(config.config(Settings(), containerd)) == image


@pytest.mark.parametrize(
    "dump",
    [None, {}, {"version": 4}, {"version": 2}, {"version": 3, "plugins": {"x": 1}}],
)
def test_no_loaded_sandbox_image(dump):
    assert verify.loaded_sandbox_image(dump) == ""


def test_loaded_sandbox_image_of_a_drifted_dump():
    drifted = dump("containerd-1.6.20-drifted.dump")
    image = drifted["plugins"][config.CRI_V2]["sandbox_image"]
    assert image and verify.loaded_sandbox_image(drifted) == image
