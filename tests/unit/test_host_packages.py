"""Every command the tests and the lab run on this machine comes from a package on the one
list (tests/lab/host_packages.py), or from Debian's essential set.

The commands are found in the source, not listed by hand: the head of every argv literal
given to a subprocess call (subprocess.run/Popen/check_output, the lab's host.run and
host.spawn, the `run(*argv)` helpers), every argv a `*_argv()` function returns, and every
command a test asks for through shutil.which or require_commands. A command built at run
time (a variable as argv[0]) is not seen: name it in require_commands where a test needs it.
"""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lab.host_packages import ESSENTIAL, HOST_PACKAGES, VIRTUALENV, require_commands

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tests",)  # deploys/ runs nothing here: its commands run on the hosts
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "spawn"}
LOOKUPS = {"which", "require_commands"}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _head(node: ast.expr | None, shell: bool) -> str | None:
    """The command an argv (or a shell string) starts with, where the source says it."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        node = node.elts[0]
        shell = False
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        word = shlex.split(node.value)[0] if shell else node.value
        return os.path.basename(word)
    return None


def commands_in(source: str) -> set[str]:
    """The commands a Python source runs on this machine (see the module docstring)."""
    tree = ast.parse(source)
    # Helpers of the `run(*argv)` kind take the command as their first string argument.
    varargs = {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.args.vararg and n.args.vararg.arg == "argv"
    }
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = _name(node.func)
            if name in varargs and isinstance(node.func, ast.Name):
                found.add(_head(node.args[0], False))
            elif name in LOOKUPS:
                found |= {
                    a.value
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                }
            elif name in RUNNERS:
                shell = any(
                    k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value
                    for k in node.keywords
                )
                # A bare string is a command only for a shell; elsewhere it is some other
                # helper's argument (the deploy harness's `run("debian-12")`).
                if shell or not isinstance(node.args[0], ast.Constant):
                    found.add(_head(node.args[0], shell))
        elif isinstance(node, ast.FunctionDef) and node.name.endswith("argv"):
            found |= {_head(n.value, False) for n in ast.walk(node) if isinstance(n, ast.Return)}
    return found - {None}


def scanned_files() -> list[Path]:
    return sorted(
        path
        for top in SCANNED
        for path in (ROOT / top).rglob("*.py")
        if ".venv" not in path.parts and path.name != Path(__file__).name
    )


RUN_HERE = sorted(set().union(*(commands_in(p.read_text()) for p in scanned_files())))
LISTED = {command for commands in HOST_PACKAGES.values() for command in commands}


def test_the_scan_sees_the_lab_and_the_tests():
    """The scan must find what is known to be run, or it proves nothing."""
    assert {"apt-ftparchive", "debootstrap", "gcc", "gpg", "ip", "ssh", "vagrant"} <= set(RUN_HERE)


@pytest.mark.parametrize(
    "source, expected",
    [
        ('subprocess.run(["frobnicate", "-x"])', {"frobnicate"}),
        ('subprocess.Popen(("/usr/sbin/frob", "-x"))', {"frob"}),
        ('host.run(["frob", "a"], check=False)', {"frob"}),
        ('def run(*argv):\n    pass\nrun("frob", *options, "update")', {"frob"}),
        ('run("debian-12", converged=True)', set()),  # the deploy harness, not a command
        ('subprocess.run("frob --all | sort", shell=True)', {"frob"}),
        ('shutil.which("frob")', {"frob"}),
        ('require_commands("frob", "nicate")', {"frob", "nicate"}),
        ('def ssh_argv(self):\n    return ["frob", "-F", path]', {"frob"}),
        ("subprocess.run(argv)", set()),
        ('lab.ssh("node", "frob --all")', set()),  # runs inside a node, not on this machine
    ],
)
def test_the_scan_finds_a_command(source, expected):
    assert commands_in(source) == expected


@pytest.mark.parametrize("command", RUN_HERE)
def test_every_command_run_here_comes_from_a_listed_package(command):
    assert command in LISTED | ESSENTIAL | VIRTUALENV, (
        f"{command!r} is run by the tests or the lab: add its Debian package to "
        "HOST_PACKAGES in tests/lab/host_packages.py"
    )


@pytest.mark.parametrize(
    "package, command",
    [(package, command) for package, commands in HOST_PACKAGES.items() for command in commands],
)
def test_each_listed_package_provides_its_commands(package, command):
    """The list is true: dpkg says the package ships the command (usr-merged or not)."""
    require_commands(command)
    shipped = subprocess.run(
        ["dpkg-query", "-L", package], capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(
        Path(path).name == command and Path(path).parent.name in ("bin", "sbin") for path in shipped
    ), f"{package} does not ship {command}"


@pytest.mark.parametrize("command", sorted(ESSENTIAL))
def test_essential_commands_are_here(command):
    assert shutil.which(command), f"{command} is not on this machine, yet listed as essential"
