"""Render, without connecting anywhere, every file the deploy would write on each host.

    python -m deploys.render [CLUSTER_FILE] OUT_DIR [--with-secrets]
                             [--os ubuntu-24.04] [--arch amd64] [--containerd-version 1.7.0]

OUT_DIR/<host>/<remote path> gets each file, from the same functions the deploy writes them
with: OS preparation, containerd, the API load balancer (haproxy, keepalived), Kubernetes
(apt source, kubeadm configurations) and the add-ons. CLUSTER_FILE defaults to $CLUSTER or
inventory/cluster.yaml, as for inventory.py.

A few files depend on the host, not on the cluster file; the renderer assumes:
- the OS release: --os (default ubuntu-24.04, the Vagrant box), for the time-sync file and
  Docker's apt source (containerd_source: docker), with --arch (default amd64);
- the containerd version, for config.toml's format: the cluster file's containerd_version
  pin if set, else --containerd-version (default 1.7.0: config version 2, as for every
  supported release's own containerd package; give 2.x for config version 3).

Secrets (the SECRET_SETTINGS of the cluster file) appear as placeholders unless
--with-secrets is given. A node's kubeadm join configuration always shows placeholders for
the bootstrap token, CA certificate hash and certificate key: they are created while a run
joins the node, not taken from the cluster file. Files are written owner-only (0600).

Nothing is written unless the arguments and the cluster file are good: every problem is
reported at once, one `refused:` line each, with exit code 2 like inventory.py (argparse's
usage errors use 2 as well).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

from deploys import distro, versions
from deploys.concerns import CLUSTER
from deploys.context import NodeContext
from deploys.inventory import refusal
from deploys.settings import Cluster, ClusterError, Node, load_cluster, without_secrets

# Marks a directory this renderer wrote, so that rendering again may replace it.
MARKER = ".pyinfra-kubeadm-render"
DEFAULT_OS = "ubuntu-24.04"
DEFAULT_ARCH = "amd64"
DEFAULT_CONTAINERD = "1.7.0"
# dpkg architectures with packages in the Kubernetes repository (pkgs.k8s.io builds for
# x86_64, aarch64, ppc64le and s390x) and in Docker's.
ARCHITECTURES = ("amd64", "arm64", "ppc64el", "s390x")


def node_files(
    cluster: Cluster,
    node: Node,
    os_name: str = DEFAULT_OS,
    arch: str = DEFAULT_ARCH,
    containerd_version: str = DEFAULT_CONTAINERD,
    with_secrets: bool = False,
) -> dict[str, str]:
    """{remote path: content} of every file the deploy writes on `node`."""
    settings = cluster.settings_for(node)
    ctx = NodeContext.from_cluster(
        cluster,
        node,
        release=distro.release(os_name),
        arch=arch,
        containerd_version=settings.containerd_version or containerd_version,
    )
    if not with_secrets:
        ctx = dataclasses.replace(ctx, settings=without_secrets(ctx.settings))
    return {path: text for concern in CLUSTER for path, text in concern.rendered_files(ctx).items()}


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)


class Refused(ClusterError):
    """What stops the renderer before it writes anything: the problems of its arguments and
    of the cluster file."""


def _out_dir_problem(out_dir: Path) -> str | None:
    """Why OUT_DIR cannot take the rendering: not a directory (or below a file), or a
    non-empty directory this renderer did not write."""
    existing = next((p for p in (out_dir, *out_dir.parents) if p.exists()), out_dir)
    if not existing.is_dir():
        where = "" if existing == out_dir else f" ({existing} is a file)"
        return f"OUT_DIR {out_dir}: not a directory{where}"
    try:
        if existing == out_dir and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            return f"OUT_DIR {out_dir}: not empty and not written by the renderer"
    except OSError as exc:
        return f"OUT_DIR {out_dir}: {exc.strerror}"
    return None


def _argument_problems(out_dir: Path, os_name: str, arch: str, containerd_version: str):
    problem = _out_dir_problem(out_dir)
    if problem:
        yield problem
    if os_name not in distro.RELEASES:
        yield f"--os {os_name!r}: not one of {', '.join(distro.RELEASES)}"
    if arch not in ARCHITECTURES:
        yield f"--arch {arch!r}: not one of {', '.join(ARCHITECTURES)}"
    try:
        versions.containerd_config_version(versions.containerd_version(containerd_version))
    except ValueError as exc:
        yield f"--containerd-version {containerd_version!r}: {exc}"


def _prepare(out_dir: Path) -> None:
    """Create OUT_DIR, or empty one this renderer wrote (_out_dir_problem refused others)."""
    if (out_dir / MARKER).is_file():
        shutil.rmtree(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(out_dir / MARKER, "Files rendered by `python -m deploys.render`.\n")


def render(
    cluster_file: str,
    out_dir: str,
    os_name: str = DEFAULT_OS,
    arch: str = DEFAULT_ARCH,
    containerd_version: str = DEFAULT_CONTAINERD,
    with_secrets: bool = False,
) -> dict[str, list[str]]:
    """Write every host's files under out_dir; return {host: [remote paths]}. Refused, with
    every problem of the arguments and the cluster file, before anything is written."""
    root = Path(out_dir)
    problems = list(_argument_problems(root, os_name, arch, containerd_version))
    try:
        cluster = load_cluster(cluster_file)
    except ClusterError as exc:
        problems.extend(exc.problems)
    if problems:
        raise Refused(*problems)
    rendered = {}
    for node in cluster.nodes:
        try:
            rendered[node.name] = node_files(
                cluster, node, os_name, arch, containerd_version, with_secrets
            )
        except ValueError as exc:  # a value that a decision of the deploy refuses
            problems.append(f"{cluster.path}: host {node.name!r}: {exc}")
    if problems:
        raise Refused(*problems)
    try:
        _prepare(root)
        for name, written in rendered.items():
            for remote, content in written.items():
                _write(root / name / remote.lstrip("/"), content)
    except OSError as exc:
        raise Refused(f"OUT_DIR {root}: cannot write {exc.filename}: {exc.strerror}") from None
    return {name: sorted(written) for name, written in rendered.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploys.render",
        description="Write every file the deploy would write, per host, without connecting.",
    )
    parser.add_argument("paths", nargs="+", metavar="[CLUSTER_FILE] OUT_DIR")
    parser.add_argument("--with-secrets", action="store_true", help="write real secrets")
    parser.add_argument("--os", default=DEFAULT_OS, help=f"OS release (default {DEFAULT_OS})")
    parser.add_argument("--arch", default=DEFAULT_ARCH, help=f"dpkg architecture ({DEFAULT_ARCH})")
    parser.add_argument(
        "--containerd-version",
        default=DEFAULT_CONTAINERD,
        help=f"containerd version unless the cluster file pins one (default {DEFAULT_CONTAINERD})",
    )
    args = parser.parse_args(argv)
    if len(args.paths) > 2:
        parser.error("expected [CLUSTER_FILE] OUT_DIR")
    default_cluster = os.environ.get("CLUSTER", "inventory/cluster.yaml")
    cluster_file, out_dir = args.paths if len(args.paths) == 2 else (default_cluster, *args.paths)
    try:
        written = render(
            cluster_file, out_dir, args.os, args.arch, args.containerd_version, args.with_secrets
        )
    except ClusterError as exc:  # Refused
        return refusal(exc.problems)
    for name, paths in written.items():
        print(f"{name}: {len(paths)} files")
        for path in paths:
            print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
