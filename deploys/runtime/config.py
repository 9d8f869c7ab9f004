"""containerd's /etc/containerd/config.toml: one data model, written whole, in the format of
the containerd installed on the node.

containerd 1.6 and 1.7 read config version 2, where the CRI is the single plugin
io.containerd.grpc.v1.cri; containerd 2.x reads version 3, where the CRI's image and runtime
settings moved to io.containerd.cri.v1.images and io.containerd.cri.v1.runtime and the
sandbox image became pinned_images.sandbox. Keys as in containerd's docs/cri/config.md
("Cgroup Driver", "Full configuration" for 1.x and 2.x) and internal/cri/config/config.go.
"""

from __future__ import annotations

from deploys import versions
from deploys.runtime import toml_text
from deploys.settings import Settings

CONFIG_TOML = "/etc/containerd/config.toml"
# containerd's CRI endpoint: the kubelet's (kubeadm's criSocket) and crictl's.
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
# Registry host configuration (one <registry>/hosts.toml each): deploys/runtime/registries.py.
CERTS_DIR = "/etc/containerd/certs.d"
# Where kubernetes-cni and flannel's installer put the CNI plugins and their configuration.
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
# Containers run with runc through the v2 shim and the systemd cgroup driver, the driver
# kubeadm configures the kubelet with (cgroupDriver: systemd); the two must agree.
RUNTIME = "runc"
RUNC = {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}

CRI_V2 = "io.containerd.grpc.v1.cri"
IMAGES_V3 = "io.containerd.cri.v1.images"
RUNTIME_V3 = "io.containerd.cri.v1.runtime"
# The plugins that make up the CRI, per config version; none may be disabled.
CRI_PLUGINS = {2: (CRI_V2,), 3: (IMAGES_V3, RUNTIME_V3, CRI_V2)}
# Where each value the deploy verifies in the loaded configuration sits, per config version.
_RUNC_V2 = ("plugins", CRI_V2, "containerd", "runtimes", RUNTIME)
_RUNC_V3 = ("plugins", RUNTIME_V3, "containerd", "runtimes", RUNTIME)
VERIFIED_KEYS = {
    2: (
        ("plugins", CRI_V2, "sandbox_image"),
        ("plugins", CRI_V2, "registry", "config_path"),
        ("plugins", CRI_V2, "containerd", "default_runtime_name"),
        (*_RUNC_V2, "runtime_type"),
        (*_RUNC_V2, "options", "SystemdCgroup"),
    ),
    3: (
        ("plugins", IMAGES_V3, "pinned_images", "sandbox"),
        ("plugins", IMAGES_V3, "registry", "config_path"),
        ("plugins", RUNTIME_V3, "containerd", "default_runtime_name"),
        (*_RUNC_V3, "runtime_type"),
        (*_RUNC_V3, "options", "SystemdCgroup"),
    ),
}

_HEADER = (
    "# containerd configuration, written whole by pyinfra-kubeadm (deploys/runtime/config.py).\n"
    "# Edits here are replaced on the next run: change the cluster file's settings instead.\n"
)


def sandbox_image(settings: Settings) -> str:
    """The sandbox (pause) image: the one kubeadm of this Kubernetes release expects, from
    the configured image repository. The kubelet's configuration uses the same function."""
    return versions.sandbox_image(settings.image_repository, settings.kubernetes_version)


def config(settings: Settings, containerd_version: str) -> dict:
    """The whole configuration, as data, for containerd `containerd_version` (its
    `containerd --version` output or a version like "1.7.24")."""
    version = versions.containerd_version(containerd_version)
    config_version = versions.containerd_config_version(version)
    cni = {"conf_dir": CNI_CONF_DIR}
    if versions.containerd_cni_bin_dirs(version):
        cni["bin_dirs"] = [CNI_BIN_DIR]
    else:
        cni["bin_dir"] = CNI_BIN_DIR
    runtimes = {"default_runtime_name": RUNTIME, "runtimes": {RUNTIME: RUNC}}
    registry = {"config_path": CERTS_DIR}
    if config_version == 2:
        cri = {"sandbox_image": sandbox_image(settings), "containerd": runtimes}
        plugins = {CRI_V2: {**cri, "cni": cni, "registry": registry}}
    else:
        images = {"pinned_images": {"sandbox": sandbox_image(settings)}, "registry": registry}
        plugins = {IMAGES_V3: images, RUNTIME_V3: {"containerd": runtimes, "cni": cni}}
    return {"version": config_version, "disabled_plugins": [], "plugins": plugins}


def config_toml(settings: Settings, containerd_version: str) -> str:
    """The text of /etc/containerd/config.toml for this node."""
    return _HEADER + "\n" + toml_text.dumps(config(settings, containerd_version))
