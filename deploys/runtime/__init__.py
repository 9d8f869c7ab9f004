"""Container runtime: containerd, its registries and the sandbox image guard
(deploys/runtime/containerd.py)."""

from deploys.runtime.containerd import converge, rendered_files

__all__ = ["converge", "rendered_files"]
