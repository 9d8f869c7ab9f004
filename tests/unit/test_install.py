"""A built wheel is the whole toolkit: installed into a fresh virtualenv outside the checkout,
`python -m deploys.render` renders the example site exactly as the checkout does.

The wheel is built by pyproject.toml's backend, setuptools, from a copy of the checkout (which
so gets no build/ or egg-info), without build isolation: with the setuptools of the test
extras, so that the test needs no package index and takes seconds. It is installed with
--no-deps into a virtualenv without pip, which borrows the dependencies (pyinfra, jinja2, ...)
from the environment running the tests through a path entry (a plain path in a .pth file, so
that environment's own .pth files, among them an editable install of this project, are not
run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from deploys import render
from tests.unit.test_render import rendered_tree

ROOT = Path(__file__).resolve().parents[2]
# Not part of a source tree: virtualenvs, caches, Vagrant and rendering output.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".vagrant", ".kube", "build", "dist", "rendered", "*.egg-info",
    "__pycache__", ".pytest_cache", ".ruff_cache",
)  # fmt: skip


def package_files(package: Path) -> set[str]:
    """Every module, template and other file of a package directory, compiled files aside."""
    return {
        str(path.relative_to(package))
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def run(*command, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_wheel_renders_the_example_site_from_outside_the_checkout(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    pip = (sys.executable, "-m", "pip")
    build = ("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"))
    run(*pip, *build, str(source), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("pyinfra_kubeadm-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    run(*pip, "--python", python, "install", "-q", "--no-deps", str(wheel), cwd=tmp_path)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site.stdout.strip()) / "dependencies.pth").write_text("\n".join(dependencies) + "\n")

    site_dir = tmp_path / "elsewhere"
    site_dir.mkdir()
    shutil.copy(ROOT / "inventory" / "example-mirrored.yaml", site_dir / "site.yaml")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    where = run(python, "-c", "import deploys; print(deploys.__file__)", cwd=site_dir, env=env)
    installed = Path(where.stdout.strip()).parent
    assert installed.is_relative_to(venv), "deploys came from elsewhere"
    assert package_files(installed) == package_files(ROOT / "deploys")
    run(python, "-m", "deploys.render", "site.yaml", "out", cwd=site_dir, env=env)

    render.render(str(ROOT / "inventory" / "example-mirrored.yaml"), str(tmp_path / "here"))
    assert rendered_tree(site_dir / "out") == rendered_tree(tmp_path / "here")
