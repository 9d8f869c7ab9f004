"""What the Kuboard server's host has, read in one round trip before any change."""

from __future__ import annotations

from pyinfra.api import FactBase


class KuboardServerState(FactBase):
    """{"initialised": Kuboard's data directory holds its etcd data (not new),
    "password_file": the initial admin password file is there, "active"/"enabled": the
    service's state, "images": the images in containerd's kuboard namespace}."""

    def command(self) -> str:
        from deploys.kuboard import CTR, DATA_DIR, NAMESPACE, PASSWORD_FILE, SERVICE

        return "\n".join(
            (
                f'if [ -e {DATA_DIR}/etcd-data ]; then echo "initialised yes"; fi',
                f'if [ -e {PASSWORD_FILE} ]; then echo "password-file yes"; fi',
                f'echo "active $(systemctl is-active {SERVICE} 2>/dev/null)"',
                f'echo "enabled $(systemctl is-enabled {SERVICE} 2>/dev/null)"',
                f"if [ -x {CTR} ]; then {CTR} --namespace {NAMESPACE} images ls -q 2>/dev/null"
                " | sed 's/^/image /'; fi",
                "true",
            )
        )

    def default(self) -> dict:
        return {
            "initialised": False,
            "password_file": False,
            "active": False,
            "enabled": False,
            "images": [],
        }

    def process(self, output) -> dict:
        state = self.default()
        for line in output:
            key, _, value = line.strip().partition(" ")
            if key == "initialised":
                state["initialised"] = value == "yes"
            elif key == "password-file":
                state["password_file"] = value == "yes"
            elif key == "active":
                state["active"] = value == "active"
            elif key == "enabled":
                state["enabled"] = value == "enabled"
            elif key == "image" and value:
                state["images"].append(value)
        return state
