"""Deploy-level test harness: the real deploy code, pyinfra's real operations, recorded hosts.

`run()` builds a pyinfra State/Inventory from a cluster file exactly as inventory.py does,
runs a @deploy function through pyinfra's API, and then simulates execution in op order:
`_if` conditions are evaluated, `python.call` functions really run, `did_change()` works.
Nothing connects anywhere. Hosts are test doubles:

- Facts come from recorded fixtures, tests/deploy/facts/<os>/*.yaml, each with a `fresh:`
  section (a new machine of that release) and an optional `converged:` section (what
  changes once the deploy has run). Keys are the fact's name and its arguments as pyinfra
  passes them, e.g. `server.LinuxDistribution`, `files.File(path=/etc/fstab)`, or
  `deploys.runtime.facts.ContainerdState` for the project's own facts (names below
  `pyinfra.facts.` are written short). A fixture's `hosts:` section holds what differs per
  machine of the default cluster (`hosts: {w1: {fact: {key: value}}}`, merged over the
  recorded mapping), e.g. each machine's own /etc/machine-id. Tests can override any key
  with `facts=` (all hosts) or `host_facts={host: {...}}`. A fact with no recorded value
  returns the fact's own default() and is listed in `Run.missing_facts` so tests can
  insist on full fixtures.
- Shell commands "run" by the simulated execution, and `host.run_shell_command` calls
  made by `python.call` functions, are answered by `responses=`: a list of
  `(regex, exit_code, stdout)` matched against the command text, first match wins;
  unmatched commands succeed with no output. `stdout` may be a function of the command
  text, for a stateful test double of what a host keeps between commands. A command
  answered with a non-zero exit fails its operation, and the host stops there, as pyinfra
  does.
- `converged=True` first runs the deploy on the fresh host, then runs it again with the
  `converged:` facts plus, for every file the first run uploaded, the facts pyinfra reads
  to compare it (File with the mode/owner set, Sha1File, parent Directory), so a test can
  assert that a converged host yields no changes.

pyinfra counts every `python.call` that runs as a change: guard such calls with `_if=` (or
decide in Python before calling) so that a converged host really reports no changes.

    run = harness.run(system.converge, os="ubuntu-24.04")
    run.commands("node1")            # every command, in order, as pyinfra would send it
    run.changed("node1")             # names of operations that would change something
    run.uploads["node1"]["/etc/sysctl.d/99-kubernetes.conf"]   # uploaded content
    run.stdin["node1"]               # (command, text) for commands fed through `_stdin`
    run.written("node1")             # every whole file written: uploads and stdin writes
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
import shlex
import sys
from dataclasses import dataclass, field
from inspect import getfullargspec
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.facts import FactBase
from pyinfra.api.state import StateStage
from pyinfra.api.util import PYINFRA_INSTALL_DIR
from pyinfra.connectors.util import CommandOutput, OutputLine
from pyinfra.context import ctx_host, ctx_state

from deploys.distro import RELEASES
from deploys.inventory import host_data
from deploys.settings import load_cluster, parse_cluster

FACTS_DIR = Path(__file__).parent / "facts"
# Every supported release (deploys/distro RELEASES) has recorded facts here.
OS_RELEASES = tuple(RELEASES)
# A small default cluster: one control plane and two workers.
DEFAULT_CLUSTER = {
    "hosts": [
        {"name": "cp1", "address": "10.0.0.11", "roles": ["control_plane"]},
        {"name": "w1", "address": "10.0.0.21", "roles": ["worker"]},
        {"name": "w2", "address": "10.0.0.22", "roles": ["worker"]},
    ],
    "settings": {},
}


@dataclass
class OpRecord:
    name: str
    commands: list[str]
    success: bool = True
    error: str = ""
    serial: bool = False  # run host after host (`_serial=True`)

    @property
    def changed(self) -> bool:
        return bool(self.commands)


@dataclass
class Run:
    ops: dict[str, list[OpRecord]] = field(default_factory=dict)
    uploads: dict[str, dict[str, str]] = field(default_factory=dict)
    missing_facts: dict[str, set[str]] = field(default_factory=dict)
    # (command, text) of every command given a `_stdin` (e.g. secret files written that way)
    stdin: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # The facts each host was asked for as under `pyinfra -y`: by the deploy code and by
    # operations executing, not by the change detection that runs operations beforehand.
    reads: dict[str, list[str]] = field(default_factory=dict)
    log: str = ""  # everything pyinfra logged (what an operator would see)

    def commands(self, host: str) -> list[str]:
        return [c for op in self.ops[host] for c in op.commands]

    def written(self, host: str) -> dict[str, str]:
        """{remote path: content} of every whole file the run wrote on `host`: uploaded, or
        fed through stdin into a file (deploys/secret.py writes root-only files that way:
        `... && mv -f PATH.part PATH`)."""
        written = dict(self.uploads.get(host, {}))
        for command, text in self.stdin.get(host, []):
            words = shlex.split(command)
            if words[-4:-2] == ["mv", "-f"]:
                written[words[-1]] = text
        return written

    def changed(self, host: str) -> list[str]:
        return [op.name for op in self.ops[host] if op.changed]

    def op(self, host: str, name: str) -> OpRecord:
        matches = [op for op in self.ops[host] if op.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} operations named {name!r} on {host}")
        return matches[0]

    def op_names(self, host: str) -> list[str]:
        return [op.name for op in self.ops[host]]

    def failed(self, host: str) -> list[OpRecord]:
        return [op for op in self.ops[host] if not op.success]


def load_facts(os_release: str, converged: bool = False) -> dict[str, Any]:
    """The recorded facts of an OS release: every fixture file's `fresh:` (+ `converged:`)."""
    folder = FACTS_DIR / os_release
    if not folder.is_dir():
        raise ValueError(f"no recorded facts for {os_release!r} in {FACTS_DIR}")
    docs = [yaml.safe_load(path.read_text()) or {} for path in sorted(folder.glob("*.yaml"))]

    def section(name: str) -> dict[str, Any]:
        # A mapping fact that several files (concerns) record, e.g. deb.DebPackages, is
        # their combination, not the last file's.
        combined: dict[str, Any] = {}
        for doc in docs:
            for key, value in (doc.get(name) or {}).items():
                if isinstance(value, dict) and isinstance(combined.get(key), dict):
                    value = {**combined[key], **value}
                combined[key] = value
        return combined

    # Every file's `converged:` replaces, fact by fact, what all files record as `fresh:`
    # (so no file's fresh value can hide another file's converged one).
    return {**section("fresh"), **(section("converged") if converged else {})}


def load_host_facts(os_release: str) -> dict[str, dict[str, Any]]:
    """What the fixtures record per host (`hosts: {host: {fact: value}}`): the machine's own
    values, e.g. its /etc/machine-id; a mapping is merged over the recorded one."""
    per_host: dict[str, dict[str, Any]] = {}
    for path in sorted((FACTS_DIR / os_release).glob("*.yaml")):
        for host, facts in ((yaml.safe_load(path.read_text()) or {}).get("hosts") or {}).items():
            per_host.setdefault(host, {}).update(facts)
    return per_host


def _merged(recorded: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = dict(recorded)
    for key, value in own.items():
        base = recorded.get(key)
        merged[key] = {**base, **value} if isinstance(base, dict) else value
    return merged


def fact_key(fact_cls: type[FactBase], args, kwargs) -> str:
    module = fact_cls.__module__.removeprefix("pyinfra.facts.")
    name = f"{module}.{fact_cls.__name__}"
    parts = [str(a) for a in args] + [f"{k}={v}" for k, v in sorted(kwargs.items())]
    return f"{name}({', '.join(parts)})" if parts else name


class RecordedConnector:
    """Test double for pyinfra's SSH connector: answers commands from recorded responses."""

    def __init__(self, responses):
        self.responses = [(re.compile(p), code, out) for p, code, out in responses]
        self.commands: list[str] = []

    def answer(self, command: str) -> tuple[int, str]:
        self.commands.append(command)
        for pattern, code, out in self.responses:
            if pattern.search(command):
                return code, out(command) if callable(out) else out
        return 0, ""

    def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
        text = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
        code, out = self.answer(text)
        lines = [OutputLine("stdout" if code == 0 else "stderr", line) for line in out.splitlines()]
        return code == 0, CommandOutput(lines)


def _cluster(cluster):
    if cluster is None:
        return parse_cluster(DEFAULT_CLUSTER, "<test cluster>")
    if isinstance(cluster, dict):
        return parse_cluster(cluster, "<test cluster>")
    return load_cluster(cluster)


def _state(cluster, limit=None) -> State:
    hosts = [(n.name, host_data(cluster, n)) for n in cluster.nodes]
    groups = {
        "k8s_cluster": ([n.name for n in cluster.nodes], {}),
        "kube_control_plane": ([n.name for n in cluster.nodes if n.is_control_plane], {}),
        "kube_node": ([n.name for n in cluster.nodes if n.is_worker], {}),
    }
    inventory = Inventory((hosts, {}), **groups)
    state = State(inventory, Config())
    if limit is not None:  # as `pyinfra --limit NAME...`: only these run the deploy
        state.limit_hosts = [inventory.get_host(name) for name in limit]
    for host in inventory:
        host.connected = True
        state.activate_host(host)
    return state


def _command_text(command) -> str:
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}"
    if isinstance(command, FunctionCommand):
        return f"call {command.function.__name__}"
    return command.get_masked_value() if isinstance(command, StringCommand) else str(command)


def _operation_order_from_code(state) -> list[int]:
    """Where the operation is called from, as pyinfra's CLI orders operations: the line
    numbers of the calling frames outside pyinfra (a cheap walk, not inspect.stack())."""
    lines = []
    frame = sys._getframe(1)
    while frame is not None:
        if not frame.f_code.co_filename.startswith(PYINFRA_INSTALL_DIR):
            lines.append(frame.f_lineno)
        frame = frame.f_back
    return lines[::-1]


def _prepare(state: State, deploy, deploy_args) -> None:
    """Run the deploy function for each host the way `pyinfra` (the CLI) does: operations
    are identified by where they are called in the code, so an operation that only some
    hosts reach lines up across hosts."""
    state.set_stage(StateStage.Prepare)
    with (
        mock.patch("pyinfra.is_cli", True),
        mock.patch(
            "pyinfra.api.operation.get_operation_order_from_stack", _operation_order_from_code
        ),
        ctx_state.use(state),
    ):
        for host in state.inventory:
            if not state.is_host_in_limit(host):
                continue
            with ctx_host.use(host):
                deploy(*deploy_args)
    state.set_stage(StateStage.Execute)


def _simulate(state: State, deploy, deploy_args, facts_for, responses, run: Run):
    connectors = {host.name: RecordedConnector(responses) for host in state.inventory}
    failed_hosts: set[str] = set()

    def get_fact(state_, host, cls, args=None, kwargs=None, **_):
        key = fact_key(cls, args or (), kwargs or {})
        if state_.is_executing or not host.in_op:
            run.reads.setdefault(host.name, []).append(key)
        known = facts_for(host.name)
        if key in known:
            return known[key]
        run.missing_facts.setdefault(host.name, set()).add(key)
        return cls().default()

    with (
        mock.patch("pyinfra.api.host.get_fact", get_fact),
        mock.patch("pyinfra.api.facts.get_fact", get_fact),
    ):
        for host in state.inventory:
            host.connector = connectors[host.name]
            run.ops[host.name] = []
            run.uploads[host.name] = {}
        _prepare(state, deploy, deploy_args)
        state.is_executing = True
        for op_hash in state.get_op_order():
            op_meta = state.get_op_meta(op_hash)
            name = sorted(op_meta.names)[0].split(" | ")[-1]
            for host in state.inventory:
                if host.name in failed_hosts or op_hash not in state.ops[host]:
                    continue
                op_data = state.get_op_data_for_host(host, op_hash)
                record = OpRecord(
                    name=name, commands=[], serial=op_meta.global_arguments["_serial"]
                )
                with ctx_state.use(state), ctx_host.use(host):
                    try:
                        for command in op_data.command_generator():
                            record.commands.append(_command_text(command))
                            _execute(command, state, host, run, connectors[host.name])
                    except _CommandFailed as exc:
                        record.success, record.error = False, str(exc)
                    except Exception as exc:  # an operation or python.call raising
                        record.success, record.error = False, f"{type(exc).__name__}: {exc}"
                op_data.operation_meta.set_complete(
                    record.success, record.commands, CommandOutput([])
                )
                run.ops[host.name].append(record)
                if not record.success:
                    failed_hosts.add(host.name)
        state.is_executing = False


class _CommandFailed(Exception):
    pass


def _execute(command, state, host, run: Run, connector: RecordedConnector):
    if isinstance(command, FileUploadCommand):
        src = command.src
        if hasattr(src, "read"):
            src.seek(0)
            content = src.read()
            content = content.decode() if isinstance(content, bytes) else content
        else:
            content = Path(src).read_text()
        run.uploads[host.name][command.dest] = content
    elif isinstance(command, FunctionCommand):
        # As pyinfra's FunctionCommand.execute: a function taking (state, host) gets them,
        # and its False fails the operation.
        arguments = getfullargspec(command.function).args
        if "state" in arguments and "host" in arguments:
            if command.function(state, host, *command.args, **command.kwargs) is False:
                said = " ".join(str(a) for a in command.args)  # deploys.failure.fail's message
                raise _CommandFailed(f"{command.function.__name__} failed: {said}")
        else:
            command.function(*command.args, **command.kwargs)
    elif isinstance(command, StringCommand):
        if command.connector_arguments.get("_stdin") is not None:
            text = command.connector_arguments["_stdin"]
            run.stdin.setdefault(host.name, []).append((command.get_masked_value(), text))
        code, out = connector.answer(command.get_raw_value())
        if code != 0:
            raise _CommandFailed(f"exit {code}: {command.get_masked_value()}: {out}")


def _attributes(commands: list[str], path: str, mode: int) -> dict[str, Any]:
    """Mode and owner of `path` after `commands` (its last chmod/chown), else the defaults."""
    user, group = "root", "root"
    for command in commands:
        parts = command.split()
        if parts[-1:] == [path] and parts[0] == "chmod" and len(parts) == 3:
            mode = int(parts[1])
        if parts[-1:] == [path] and parts[0] == "chown" and len(parts) == 3:
            user, _, group = parts[1].partition(":")
            group = group or "root"
    return {"mode": mode, "user": user, "group": group}


def _upload_facts(run: Run) -> dict[str, dict[str, Any]]:
    """For each host: the file facts of a host on which the first run's uploads happened."""
    per_host: dict[str, dict[str, Any]] = {}
    for host, uploads in run.uploads.items():
        facts: dict[str, Any] = {}
        commands = run.commands(host)
        for dest, content in uploads.items():
            facts[f"files.File(path={dest})"] = {
                **_attributes(commands, dest, 644),
                "size": len(content.encode()),
            }
            facts[f"files.Sha1File(path={dest})"] = hashlib.sha1(content.encode()).hexdigest()
            directory = posixpath.dirname(dest)
            facts[f"files.Directory(path={directory})"] = _attributes(commands, directory, 755)
        per_host[host] = facts
    return per_host


def run(
    deploy,
    os: str = "ubuntu-24.04",
    cluster=None,
    facts: dict[str, Any] | None = None,
    host_facts: dict[str, dict[str, Any]] | None = None,
    responses: list[tuple[str, int, str]] | None = None,
    converged: bool = False,
    deploy_args: tuple = (),
    limit: list[str] | None = None,
) -> Run:
    """Run `deploy` on every host of `cluster` (a dict, a path, or the default 3 nodes), or
    on the hosts of `limit` only (`pyinfra --limit`; the others answer facts and commands
    run on them from the deploy's code)."""
    cluster = _cluster(cluster)
    responses = list(responses or [])

    own = load_host_facts(os)

    def facts_source(recorded: dict[str, Any], extra: dict[str, dict[str, Any]]):
        def facts_for(host: str) -> dict[str, Any]:
            return {
                **_merged(recorded, own.get(host, {})),
                **extra.get(host, {}),
                **(facts or {}),
                **(host_facts or {}).get(host, {}),
            }

        return facts_for

    first = _run_once(
        cluster, deploy, deploy_args, facts_source(load_facts(os), {}), responses, limit
    )
    if not converged:
        return first
    extra = _upload_facts(first)
    recorded = load_facts(os, converged=True)
    return _run_once(cluster, deploy, deploy_args, facts_source(recorded, extra), responses, limit)


def _run_once(cluster, deploy, deploy_args, facts_for, responses, limit=None) -> Run:
    result = Run()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("pyinfra")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        state = _state(cluster, limit)
        _simulate(state, deploy, deploy_args, facts_for, responses, result)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    result.log = stream.getvalue()
    return result


__all__ = ["OS_RELEASES", "DEFAULT_CLUSTER", "Run", "OpRecord", "run", "load_facts", "fact_key"]
