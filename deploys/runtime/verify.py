"""Is containerd running the configuration the deploy wants? Pure checks on what containerd
reports, shared by the deploy (deploys/runtime/operations.py) and tests on real nodes:

    problems = node_problems(
        settings,
        ssh("containerd --version"),
        ssh("containerd config dump"),
        ssh("ctr plugins ls"),
    )
    assert problems == []
"""

from __future__ import annotations

from deploys.runtime import config
from deploys.runtime.config import CRI_PLUGINS, VERIFIED_KEYS
from deploys.runtime.toml_text import TOMLDecodeError, literal, loads
from deploys.settings import Settings

_MISSING = object()


def toml_key(path: tuple[str, ...]) -> str:
    """A key path as config.toml spells it: plugins."io.containerd.grpc.v1.cri".sandbox_image."""
    return ".".join(f'"{part}"' if "." in part else part for part in path)


def _lookup(data: dict, path: tuple[str, ...]):
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _shown(value) -> str:
    try:
        return literal(value)
    except TypeError:  # a table or a float where a scalar belongs
        return repr(value)


def loaded_sandbox_image(dump: dict | None) -> str:
    """The sandbox image in containerd's loaded configuration (`containerd config dump`,
    parsed by deploys/runtime/facts.py), at its key for the dump's config version; "" when
    there is none."""
    version = (dump or {}).get("version")
    if version not in VERIFIED_KEYS:
        return ""
    image = _lookup(dump, VERIFIED_KEYS[version][0])  # the sandbox image comes first
    return image if isinstance(image, str) else ""


def parse_plugins(text: str) -> dict[str, str]:
    """`ctr plugins ls` output as {"<type>.<id>": status}, e.g. {"io.containerd.grpc.v1.cri":
    "ok"}; the heading line is skipped."""
    plugins = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] != "TYPE":
            plugins[f"{parts[0]}.{parts[1]}"] = parts[-1]
    return plugins


def config_problems(dump: dict | None, wanted: dict, plugins: dict | None = None) -> list[str]:
    """How the loaded configuration (`containerd config dump`, parsed) differs from the
    wanted one (deploys.runtime.config.config()), one line per key; [] when it matches.
    With `plugins` (parse_plugins() of `ctr plugins ls`, from the running daemon) the CRI
    plugins must also have loaded."""
    if not dump:
        return ["`containerd config dump` gave no configuration"]
    version = wanted["version"]
    if dump.get("version") != version:
        return [f"version = {dump.get('version')!r}, wanted {version} (the config.toml format)"]
    problems = []
    for path in VERIFIED_KEYS[version]:
        loaded, want = _lookup(dump, path), _lookup(wanted, path)
        if loaded != want:
            shown = "is missing" if loaded is _MISSING else f"= {_shown(loaded)}"
            problems.append(f"{toml_key(path)} {shown}, wanted {_shown(want)}")
    disabled = set(dump.get("disabled_plugins") or ())
    for plugin in CRI_PLUGINS[version]:
        short = plugin.rsplit(".", 1)[-1]
        if disabled & {plugin, short}:
            problems.append(f"disabled_plugins disables the CRI plugin {plugin}")
        elif plugins is not None and plugins.get(plugin) != "ok":
            status = plugins.get(plugin, "not loaded")
            problems.append(f"the CRI plugin {plugin} is {status} in the running containerd")
    return problems


def node_problems(
    settings: Settings, version_output: str, dump_output: str, plugins_output: str | None = None
) -> list[str]:
    """config_problems() from the text a node prints for `containerd --version`,
    `containerd config dump` and (optionally) `ctr plugins ls`, e.g. read over SSH."""
    try:
        dump = loads(dump_output)
    except TOMLDecodeError as exc:
        return [f"`containerd config dump` printed no TOML: {exc}"]
    plugins = None if plugins_output is None else parse_plugins(plugins_output)
    return config_problems(dump, config.config(settings, version_output), plugins)
