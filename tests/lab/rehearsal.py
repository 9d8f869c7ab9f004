"""Reading what the deploy asked of the stand-ins (tests/lab/stand_in_tools.py): every
node's calls log, and the clean slate a rehearsal starts from."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

CALLS_LOG = "/var/log/pyinfra-kubeadm-stand-in/calls.log"
# Subcommands that change a cluster; anything else the deploy runs only reads.
MUTATING = {
    "kubeadm": ("init", "join", "reset", "upgrade", "token create", "token delete",
                "certs renew"),
    "kubectl": ("apply", "create", "delete", "replace", "patch", "edit", "label", "annotate",
                "taint", "cordon", "uncordon", "drain", "scale", "rollout restart"),
}  # fmt: skip
# Options the deploy passes that take a value as the next argument.
# Options followed by a value; kubectl's -f is --filename, kubeadm's -f is --force (none).
KUBECTL_VALUED = {"-f"}
VALUED_OPTIONS = {"--kubeconfig", "-n", "--namespace", "-o", "--output", "--filename",
                  "--timeout", "--for", "--ttl", "--description", "--config", "--cri-socket",
                  "--kubernetes-version", "--image-repository", "--field-selector"}  # fmt: skip
# What a node keeps of an earlier rehearsal or package test, removed before and after.
FORGET = (
    "command -v kubeadm >/dev/null && kubeadm reset -f >/dev/null 2>&1;"
    " apt-mark unhold kubeadm kubelet kubectl >/dev/null 2>&1;"
    " apt-get purge -y -q kubeadm kubelet kubectl cri-tools >/dev/null 2>&1;"
    " rm -rf /etc/kubernetes /var/lib/kubelet /root/.kube /var/log/pyinfra-kubeadm-stand-in"
    " /var/lib/etcd /var/lib/pyinfra-kubeadm"
    " /etc/apt/sources.list.d/kubernetes.list /etc/apt/keyrings/kubernetes-apt-keyring.gpg"
)


@dataclass(frozen=True)
class Call:
    stamp: str  # UTC, microseconds: sorts in time order across nodes (one host clock)
    node: str
    tool: str
    args: list[str]

    @property
    def line(self) -> str:
        return " ".join(self.args)

    @property
    def words(self) -> str:
        """The subcommand and its operands: the arguments without options and their values."""
        words, skip = [], False
        for arg in self.args:
            if skip:
                skip = False
            elif arg.startswith("-"):
                valued = VALUED_OPTIONS | (KUBECTL_VALUED if self.tool == "kubectl" else set())
                skip = "=" not in arg and arg in valued
            else:
                words.append(arg)
        return " ".join(words)

    @property
    def mutating(self) -> bool:
        return any(self.words.startswith(verb) for verb in MUTATING.get(self.tool, ()))


def calls(lab) -> list[Call]:
    """Every call the stand-ins logged on every node of the lab, in time order."""
    found = []
    for name in (node.name for node in lab.nodes):
        text = lab.ssh(name, f"cat {CALLS_LOG} 2>/dev/null || true").stdout
        for line in text.splitlines():
            stamp, tool, *rest = line.split(" ", 2)
            found.append(Call(stamp, name, tool, shlex.split(rest[0]) if rest else []))
    return sorted(found, key=lambda c: c.stamp)


def forget(lab) -> None:
    """Every node of the lab without Kubernetes, the stand-in control plane without a
    cluster: where a rehearsal starts, and what it leaves."""
    for node in lab.nodes:
        lab.ssh(node.name, FORGET, check=False)
    lab.reset_control_plane()
