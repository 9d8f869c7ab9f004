"""containerd: package, config.toml, registry mirrors, sandbox image."""

from pyinfra.api import deploy


@deploy("containerd")
def converge_containerd():
    pass
